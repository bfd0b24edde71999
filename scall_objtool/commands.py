"""The commands behind the CLI, free of any argument-parsing library.

``cli.py`` (typer) and ``fastcli.py`` (a small parser for the hot path) both
parse into the same calls here, so they cannot disagree on behaviour.  Work on
many objects is spread over ``jobs`` processes; results and messages are
always emitted in input order, so the output does not depend on ``jobs``.
"""
from __future__ import annotations

import os
import sys

from ._record import LIST, record
from .errors import InputError, ScallError, UsageError
from .inputs import Input, expand, show
from .model import ObjectResult, Options

PROG = "scall-objtool"


@record
class Outcome:
    """What processing one input produced (picklable, for worker processes)."""
    display: str
    ok: bool = True
    result: ObjectResult | None = None
    messages: list[str] = LIST    # stderr lines, in order
    line: str | None = None                                # write's stdout summary
    details: list[str] = LIST


def err_line(msg: str) -> str:
    return f"{PROG}: error: {msg}"


def _debug() -> bool:
    return bool(os.environ.get("SCALL_OBJTOOL_DEBUG"))


def guarded(display: str, fn, outcome: Outcome):
    """Run ``fn``; any failure becomes one error line on the outcome."""
    try:
        return fn()
    except InputError as e:
        # the input's display name, already escaped, rather than the raw path
        outcome.messages.append(err_line(f"{display}: {e.message}"))
    except UsageError as e:
        outcome.messages.append(err_line(str(e)))
    except MemoryError:
        outcome.messages.append(err_line(f"{display}: out of memory"))
    except RecursionError:
        outcome.messages.append(err_line(f"{display}: input too deeply nested"))
    except Exception as e:  # never a traceback for a user; SCALL_OBJTOOL_DEBUG shows it
        if _debug():
            raise
        outcome.messages.append(err_line(f"{display}: internal error: "
                                         f"{type(e).__name__}: {e}"))
    outcome.ok = False
    return None


# ---------------------------------------------------------------- per input
def scan_one(inp: Input, options: Options, candidates_from: str = "auto") -> Outcome:
    from .elf import ElfFile
    from .scan import scan_elf
    out = Outcome(inp.display)

    def work():
        res = scan_elf(ElfFile(inp.read(), inp.display), options, candidates_from)
        res.elf = None              # not carried back across processes
        return res
    out.result = guarded(inp.display, work, out)
    if out.result is not None:
        out.messages.extend(f"{PROG}: warning: {inp.display}: {w}"
                            for w in out.result.warnings)
    return out


def verify_one(inp: Input, options: Options, candidates_from: str = "auto") -> Outcome:
    from .elf import ElfFile
    from .scan import scan_elf
    from .table import verify
    out = Outcome(inp.display)

    def work():
        elf = ElfFile(inp.read(), inp.display)
        res = scan_elf(elf, options, candidates_from, sources=False)
        verdict = verify(elf, res, options)
        res.elf = None
        return verdict
    out.result = guarded(inp.display, work, out)
    return out


@record(frozen=True)
class WriteParams:
    output: str | None = None
    force: bool = False
    dry_run: bool = False
    backup: bool = False
    quiet: bool = False
    details: bool = False


def write_one(inp: Input, options: Options, params: WriteParams) -> Outcome:
    from .write import write_path
    out = Outcome(inp.display)
    if inp.is_member:
        out.ok = False
        out.messages.append(err_line(f"{inp.display}: archive members are scanned, not "
                                     "rewritten; run write on the objects before archiving"))
        return out
    res = guarded(inp.display, lambda: write_path(inp.path, options, params.output,
                                                  params.force, params.dry_run,
                                                  params.backup), out)
    if res is None:
        return out
    res.result.elf = None
    out.result = res.result
    for w in res.warnings:
        out.messages.append(f"{PROG}: warning: {inp.display}: {w}")
    if params.quiet:
        return out
    s = res.result.summary()
    counts = f"{s['sites']} sites, {s['patchable']} patchable, {s['fallback']} fallback"
    verb = {"written": f"wrote {res.entries} entries",
            "dry-run": f"would write {res.entries} entries",
            "unchanged": "unchanged",
            "copied": "copied unchanged",
            "skipped-existing": "table exists, unchanged"}[res.action]
    target = f" -> {show(res.output)}" if res.output != inp.path else ""
    out.line = f"{inp.display}{target}: {verb} ({counts}; policy {options.policy})"
    if params.details and res.action in ("written", "dry-run"):
        for site in res.result.sites:
            tag = "entry" if site.patchable else f"fallback: {site.reason}"
            func = (f"{site.function}+{site.function_offset:#x}" if site.function
                    else "?")
            out.details.append(f"  {site.section}+{site.offset:#x} {func} {site.kind} "
                               f"{site.trampoline} crossing {site.crossing or '-'}: {tag}")
    return out


# ------------------------------------------------------------------ batches
def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _die_with_parent() -> None:
    """Worker initializer: a worker must not outlive a killed parent (Linux)."""
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)      # PR_SET_PDEATHSIG
        if os.getppid() == 1:                            # the parent is already gone
            os._exit(1)
    except (OSError, AttributeError):
        pass
    from .interrupt import install_worker
    install_worker()


def _run_chunk(task):
    """Process a chunk of inputs; after a signal no new input is started."""
    from . import interrupt
    kind, inputs, options, params = task
    one = {"scan": lambda i: scan_one(i, options, params or "auto"),
           "verify": lambda i: verify_one(i, options, params or "auto")}.get(
        kind, lambda i: write_one(i, options, params))
    outs = []
    for inp in inputs:
        with interrupt.busy():
            outs.append(one(inp))
    return outs


def run_batch(kind: str, inputs: list[Input], options: Options, params=None,
              jobs: int | None = None) -> list[Outcome]:
    """Process every input; outcomes come back in input order.  A signal
    (see ``interrupt``) stops the batch with ``Interrupted``."""
    from . import interrupt
    jobs = default_jobs() if jobs is None else max(1, jobs)
    jobs = min(jobs, len(inputs))
    progress = _progress(len(inputs)) if len(inputs) > 1 else None
    try:
        if jobs <= 1:
            outs = []
            for inp in inputs:
                outs.extend(_run_chunk((kind, [inp], options, params)))
                interrupt.check()       # a signal deferred during a replacement
                if progress:
                    progress(1)
            return outs
        return _run_pool(kind, inputs, options, params, jobs, progress)
    finally:
        if progress:
            progress(None)


def _run_pool(kind, inputs, options, params, jobs, progress) -> list[Outcome]:
    import concurrent.futures as cf
    import multiprocessing as mp
    import signal
    from . import interrupt
    # small chunks keep both workers busy; order is restored below
    size = max(1, min(32, len(inputs) // (jobs * 8) or 1))
    chunks = [inputs[i:i + size] for i in range(0, len(inputs), size)]
    results: list[list[Outcome] | None] = [None] * len(chunks)
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with interrupt.polling():           # the handler only records; we check below
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                      initializer=_die_with_parent)
        try:
            futs = {pool.submit(_run_chunk, (kind, c, options, params)): k
                    for k, c in enumerate(chunks)}
            pending = set(futs)
            while pending:
                interrupt.check()
                done, pending = cf.wait(pending, timeout=0.05,
                                        return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    k = futs[fut]
                    results[k] = fut.result()
                    if progress:
                        progress(len(chunks[k]))
            interrupt.check()
        except BaseException:
            # stop the workers: each abandons (or, mid-replacement, completes) its
            # object and starts no other; then wait for them, so none outlives us
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except OSError:
                    pass
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return [o for chunk in results for o in chunk]


def _progress(total: int):
    """A rich progress bar on stderr when it is a terminal; else None."""
    if os.environ.get("SCALL_OBJTOOL_NO_PROGRESS") or not sys.stderr.isatty():
        return None
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    except ImportError:
        return None
    prog = Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
    prog.start()
    task = prog.add_task("objects", total=total)

    def step(n):
        if n is None:
            prog.stop()
        else:
            prog.advance(task, n)
    return step


# ----------------------------------------------------------------- commands
def _write_text(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from .fileio import atomic_write
    atomic_write(output, text.encode())


def _emit_messages(lines: list[str]) -> None:
    if lines:
        sys.stderr.write("".join(m + "\n" for m in lines))
        sys.stderr.flush()


def collect(paths: list[str], include: list[str] | None, archives: bool = True):
    inputs, errors = expand(paths, include, archives)
    return inputs, [err_line(f"{show(e.path)}: {e.message}" if e.path else e.message)
                    for e in errors]


def _batch_results(kind: str, paths, include, options, params, jobs):
    """Run a batch; (results of the inputs that worked, stderr lines, failed?)."""
    inputs, messages = collect(paths, include)
    outs = run_batch(kind, inputs, options, params, jobs)
    results = [o.result for o in outs if o.ok and o.result is not None]
    failed = bool(messages) or any(not o.ok for o in outs)
    for o in outs:
        messages.extend(o.messages)
    return results, messages, failed


def _deliver(messages: list[str], text: str, output: str | None) -> bool:
    """Messages to stderr, the report to stdout or OUTPUT; False if it failed."""
    _emit_messages(messages)
    try:
        _write_text(text, output)
    except OSError as e:
        _emit_messages([err_line(f"{show(output)}: cannot write: {e.strerror}")])
        return False
    return True


def scan(paths: list[str], options: Options, format: str = "text", output: str | None = None,
         include: list[str] | None = None, jobs: int | None = None,
         stats: bool = False, candidates: str = "auto") -> int:
    results, messages, failed = _batch_results("scan", paths, include, options,
                                               candidates, jobs)
    from .report import render_json, render_text
    if format == "json":
        text = render_json(results, options)
    else:
        text = render_text(results, options)
        if stats:
            from .report import render_stats
            text += render_stats(results)
    if not _deliver(messages, text, output):
        return 2
    return 2 if failed else 0


def write(paths: list[str], options: Options, output: str | None = None,
          dry_run: bool = False, backup: bool = False, force: bool = False,
          quiet: bool = False, include: list[str] | None = None,
          jobs: int | None = None) -> int:
    params = WriteParams(output=output, force=force, dry_run=dry_run, backup=backup,
                         quiet=quiet)
    if params.output is not None and len(paths) != 1:
        raise UsageError("-o/--output takes exactly one input file")
    inputs, messages = collect(paths, include)
    if params.output is not None and (len(inputs) != 1 or inputs[0].path != paths[0]):
        raise UsageError("-o/--output takes exactly one input file")
    params = WriteParams(**{**params.__dict__, "details": len(inputs) == 1})
    outs = run_batch("write", inputs, options, params, jobs)
    failed = bool(messages) or any(not o.ok for o in outs)
    lines = []
    for o in outs:
        messages.extend(o.messages)
        if o.line:
            lines.append(o.line)
            lines.extend(o.details)
    _emit_messages(messages)
    if lines:
        sys.stdout.write("".join(x + "\n" for x in lines))
        sys.stdout.flush()
    return 2 if failed else 0


def verify(paths: list[str], options: Options, format: str = "text",
           output: str | None = None, include: list[str] | None = None,
           jobs: int | None = None, candidates: str = "auto") -> int:
    """Check existing tables; exit 1 on any mismatch or missing site."""
    verdicts, messages, failed = _batch_results("verify", paths, include, options,
                                                candidates, jobs)
    if format == "json":
        import json
        doc = {"schema_version": 1, "policy": options.to_json(),
               "objects": [v.to_json() for v in verdicts],
               "summary": {"objects": len(verdicts),
                           "entries": sum(v.entries for v in verdicts),
                           "failed": sum(not v.ok for v in verdicts)}}
        text = json.dumps(doc, indent=2) + "\n"
    else:
        lines = []
        for v in verdicts:
            if v.ok:
                lines.append(f"{v.path}: OK ({v.entries} entries)")
                continue
            lines.append(f"{v.path}: FAILED ({v.entries} entries, {len(v.mismatches)} "
                         f"mismatched, {len(v.missing)} missing)")
            lines.extend(f"{v.path}: mismatch: {m}" for m in v.mismatches)
            lines.extend(f"{v.path}: missing: {m}" for m in v.missing)
        bad = sum(not v.ok for v in verdicts)
        lines.append(f"verify: {len(verdicts)} objects, {sum(v.entries for v in verdicts)} "
                     f"entries, {bad} failed (policy {options.policy})")
        text = "".join(x + "\n" for x in lines)
    if not _deliver(messages, text, output):
        return 2
    if failed:
        return 2
    return 1 if any(not v.ok for v in verdicts) else 0


def _policy_warning(report, other_policy: dict, what: str) -> list[str]:
    from .lint import policy_mismatch
    diffs = policy_mismatch(report.policy, other_policy)
    if not diffs:
        return []
    return [f"{PROG}: warning: {report.path}: {what} was taken with different options "
            f"({'; '.join(diffs)}); its fallback sites may not match"]


def check(paths: list[str], options: Options, format: str = "text", output: str | None = None,
              baseline: str | None = None, max_fallback: int = 0, stats: bool = False,
              source_root: str | None = None, include: list[str] | None = None,
              jobs: int | None = None, candidates: str = "auto") -> int:
    """``check``: 0 pass, 1 fail, 2 errors (the report is still written)."""
    from . import lint
    from .model import summarize
    if max_fallback < 0:
        raise UsageError(f"--max-fallback must not be negative, not {max_fallback}")
    messages: list[str] = []
    base = None
    if baseline is not None:
        base = lint.load_report(baseline)           # InputError: exit 2 (run_guarded)
        messages.extend(_policy_warning(base, options.to_json(), "the baseline"))
    inputs, errors = collect(paths, include)
    outs = run_batch("scan", inputs, options, candidates, jobs)
    results = []
    for o in outs:
        if o.ok and o.result is not None:
            results.append(o.result)
            messages.extend(o.messages)     # the scan's warnings (e.g. unreadable DWARF)
        else:
            errors.extend(o.messages)
    messages.extend(errors)
    summary = {"objects": len(results), **summarize(results, per_object=True)}
    verdict = lint.check(lint.sites_from_results(results), max_fallback, base)
    plain = [e.removeprefix(f"{PROG}: error: ") for e in errors]
    if format == "sarif":
        from .sarif import render_sarif
        text = render_sarif(verdict, options, summary, plain, source_root)
    elif format == "json":
        text = lint.render_check_json(verdict, summary, options, plain)
    else:
        text = lint.render_check_text(verdict, summary, options.policy, source_root)
        if stats:
            from .report import render_stats
            text += render_stats(results)
    if not _deliver(messages, text, output) or errors:
        return 2
    return 0 if verdict.passed else 1


def diff(old: str, new: str, format: str = "text", output: str | None = None) -> int:
    """``diff``: 0 no new fallback site, 1 a new one, 2 errors."""
    from . import lint
    rep_old = lint.load_report(old)
    rep_new = lint.load_report(new)
    d = lint.diff(rep_old.sites, rep_new.sites)
    text = (lint.render_diff_json(d, old, new) if format == "json"
            else lint.render_diff_text(d))
    if not _deliver(_policy_warning(rep_old, rep_new.policy, "OLD"), text, output):
        return 2
    return 1 if d.new_fallback else 0


COMMANDS = {"scan": scan, "verify": verify, "write": write, "check": check, "diff": diff}


def run(name: str, values: dict) -> int:
    """Carry out command ``name`` with ``values`` by option dest (from the option
    table); usage problems become one error line and exit 2."""
    def call():
        from .options import COMMANDS as TABLE, POLICY
        kw = dict(values)
        if TABLE[name].policy:
            kw["options"] = Options(**{o.dest: kw.pop(o.dest) for o in POLICY})
        return COMMANDS[name](**kw)
    return run_guarded(call)


def run_guarded(fn) -> int:
    """Run a command; usage problems become one error line and exit 2."""
    try:
        return fn()
    except ScallError as e:
        _emit_messages([err_line(str(e))])
        return 2
