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
#: what ``write DIR`` looks for: objects, not archives (whose members are
#: never written; ``--include '*.a'`` makes each one an error)
WRITE_INCLUDE = ["*.o", "*.ko"]


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


def _run_chunk(task):
    kind, inputs, options, params = task
    if kind == "scan":
        return [scan_one(i, options, params or "auto") for i in inputs]
    if kind == "verify":
        return [verify_one(i, options, params or "auto") for i in inputs]
    return [write_one(i, options, params) for i in inputs]


def run_batch(kind: str, inputs: list[Input], options: Options, params=None,
              jobs: int | None = None) -> list[Outcome]:
    """Process every input; outcomes come back in input order."""
    jobs = default_jobs() if jobs is None else max(1, jobs)
    jobs = min(jobs, len(inputs))
    progress = _progress(len(inputs)) if len(inputs) > 1 else None
    try:
        if jobs <= 1:
            outs = []
            for inp in inputs:
                outs.extend(_run_chunk((kind, [inp], options, params)))
                if progress:
                    progress(1)
            return outs
        import concurrent.futures as cf
        import multiprocessing as mp
        # small chunks keep both workers busy; order is restored below
        size = max(1, min(32, len(inputs) // (jobs * 8) or 1))
        chunks = [inputs[i:i + size] for i in range(0, len(inputs), size)]
        results: list[list[Outcome] | None] = [None] * len(chunks)
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                    initializer=_die_with_parent) as pool:
            futs = {pool.submit(_run_chunk, (kind, c, options, params)): k
                    for k, c in enumerate(chunks)}
            for fut in cf.as_completed(futs):
                k = futs[fut]
                results[k] = fut.result()
                if progress:
                    progress(len(chunks[k]))
        return [o for chunk in results for o in chunk]
    finally:
        if progress:
            progress(None)


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
def check_output(output: str | None, inputs: list[str]) -> None:
    """-o must name something, and never one of the inputs (same device and
    inode): UsageError, before any work."""
    if output is None or output == "-":
        return
    if output == "":
        raise UsageError("-o/--output must not be empty (use - for standard output)")
    import stat
    try:
        st = os.stat(output)
    except (OSError, ValueError):
        return
    if not stat.S_ISREG(st.st_mode):
        return                  # a device, FIFO or terminal is written into, not replaced
    for p in inputs:
        try:
            s = os.stat(p)
        except (OSError, ValueError):
            continue
        if (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino):
            raise UsageError(f"-o {show(output)}: is also an input ({show(p)}); "
                             "refusing to overwrite it")


def _write_text(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from .fileio import write_output
    write_output(output, text.encode())


def _emit_messages(lines: list[str]) -> None:
    if lines:
        sys.stderr.write("".join(m + "\n" for m in lines))
        sys.stderr.flush()


def collect(paths: list[str], include: list[str] | None, archives: bool = True):
    inputs, errors = expand(paths, include, archives)
    return inputs, [err_line(f"{show(e.path)}: {e.message}" if e.path else e.message)
                    for e in errors]


def _batch_results(kind: str, paths, include, options, params, jobs, output=None):
    """Run a batch; (results of the inputs that worked, stderr lines, failed?)."""
    check_output(output, [])
    inputs, messages = collect(paths, include)
    check_output(output, [i.path for i in inputs])
    outs = run_batch(kind, inputs, options, params, jobs)
    results = [o.result for o in outs if o.ok and o.result is not None]
    failed = bool(messages) or any(not o.ok for o in outs)
    for o in outs:
        messages.extend(o.messages)
    return results, messages, failed


def _deliver(messages: list[str], text: str, output: str | None) -> bool:
    """Messages to stderr, the report to stdout or OUTPUT; False if it failed."""
    from .fileio import UnsafeWrite
    _emit_messages(messages)
    try:
        _write_text(text, output)
    except OSError as e:
        _emit_messages([err_line(f"{show(output)}: cannot write: {e.strerror}")])
        return False
    except UnsafeWrite as e:
        _emit_messages([err_line(f"{show(output)}: {e}")])
        return False
    return True


def cmd_scan(paths: list[str], options: Options, fmt: str = "text", output: str | None = None,
             include: list[str] | None = None, jobs: int | None = None,
             stats: bool = False, candidates_from: str = "auto") -> int:
    results, messages, failed = _batch_results("scan", paths, include, options,
                                               candidates_from, jobs, output)
    from .report import render_json, render_text
    if fmt == "json":
        text = render_json(results, options)
    else:
        text = render_text(results, options)
        if stats:
            from .report import render_stats
            text += render_stats(results)
    if not _deliver(messages, text, output):
        return 2
    return 2 if failed else 0


def cmd_write(paths: list[str], options: Options, params: WriteParams,
              include: list[str] | None = None, jobs: int | None = None) -> int:
    check_output(params.output, [])
    if params.output is not None and len(paths) != 1:
        raise UsageError("-o/--output takes exactly one input file")
    # archives are not expanded: one is refused as a whole (write_path), and
    # a directory walk does not look for them unless --include asks
    inputs, messages = collect(paths, include or WRITE_INCLUDE, archives=False)
    if params.output is not None and (len(inputs) != 1 or inputs[0].path != paths[0]):
        raise UsageError("-o/--output takes exactly one input file")
    if params.output is not None:
        check_output(params.output, [inputs[0].path])
    params = WriteParams(**{**params.__dict__, "details": len(inputs) == 1,
                            "quiet": params.quiet or params.output == "-"})
    if not params.dry_run:
        # stale temporaries: one listing per directory, before the workers
        # fork (they inherit what was cleaned)
        from .fileio import clean_directory
        dirs = {os.path.dirname(os.path.abspath(i.path)) for i in inputs}
        if params.output not in (None, "-"):
            dirs = {os.path.dirname(os.path.abspath(params.output))}
        for d in sorted(dirs):
            clean_directory(d)
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


def cmd_verify(paths: list[str], options: Options, fmt: str = "text",
               output: str | None = None, include: list[str] | None = None,
               jobs: int | None = None, candidates_from: str = "auto") -> int:
    """Check existing tables; exit 1 on any mismatch or missing site."""
    verdicts, messages, failed = _batch_results("verify", paths, include, options,
                                                candidates_from, jobs, output)
    if fmt == "json":
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


def run_guarded(fn) -> int:
    """Run a command; usage problems become one error line and exit 2."""
    try:
        return fn()
    except ScallError as e:
        _emit_messages([err_line(str(e))])
        return 2
