"""The five commands, free of any argument-parsing library.

Both command lines (``cli.py``, typer; ``fastcli.py``, the fast path) parse
with the option table in ``options.py`` and call ``run(name, values)``; each
command here takes one keyword argument per option of its table entry, plus
``options`` (the policy record), so the two parsers cannot disagree on
behaviour.  Work on many objects goes through ``batch.run_batch``; results
and messages are emitted in input order, so output does not depend on
``--jobs``.  Rendering is ``report/``'s.

Exit status: 0 success, 1 when check finds fallback sites, verify a mismatch
or diff a new fallback site, 2 for input or usage errors.
"""
from __future__ import annotations

import os
import sys

from .batch import Outcome, run_batch, scan_one, verify_one, write_one
from .errors import ScallError, UsageError, error_line, warning_line
from .inputs import expand, show
from .model import Options


#: what ``write DIR`` looks for: objects, not archives (whose members are
#: never written; ``--include '*.a'`` makes each one an error)
WRITE_INCLUDE = ["*.o", "*.ko"]


# ---------------------------------------------------------------- plumbing
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


def _emit_messages(lines: list[str]) -> None:
    if lines:
        sys.stderr.write("".join(m + "\n" for m in lines))
        sys.stderr.flush()


def _deliver(messages: list[str], text: str, output: str | None) -> bool:
    """Messages to stderr, the report to stdout or OUTPUT (``-``: stdout; a
    device or FIFO is written into, a regular file replaced atomically); False
    if it failed."""
    from .fileio import UnsafeWrite, write_output
    _emit_messages(messages)
    try:
        if output is None or output == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_output(output, text.encode())
    except OSError as e:
        _emit_messages([error_line(f"{show(output)}: cannot write: {e.strerror}")])
        return False
    except UnsafeWrite as e:
        _emit_messages([error_line(f"{show(output)}: {e}")])
        return False
    return True


def _collect(paths: list[str], include: list[str] | None, archives: bool = True):
    """The inputs, and one error line for each path that could not be expanded."""
    inputs, errors = expand(paths, include, archives)
    return inputs, [error_line(f"{show(e.path)}: {e.message}" if e.path else e.message)
                    for e in errors]


def _batch(worker, paths, include, args: tuple, jobs, output=None, refuse=None):
    """Run a batch: (results of the inputs that worked, every stderr line in input
    order, the error lines among them).  ``output`` (-o) must not be an input;
    ``refuse(result)`` may name a reason to count a result as an error instead."""
    check_output(output, [])
    inputs, errors = _collect(paths, include)
    check_output(output, [i.path for i in inputs])
    results, messages = [], list(errors)
    for o in run_batch(worker, inputs, args, jobs):
        why = refuse(o.result) if refuse and o.ok and o.result is not None else None
        if why:
            o = Outcome(o.display, ok=False, messages=[error_line(f"{o.display}: {why}")])
        messages.extend(o.messages)
        if o.ok and o.result is not None:
            results.append(o.result)
        else:
            errors.extend(o.messages)
    return results, messages, errors


def _policy_warning(report, other_policy: dict, what: str) -> list[str]:
    from .findings import policy_mismatch
    diffs = policy_mismatch(report.policy, other_policy)
    if not diffs:
        return []
    from .report import esc
    return [esc(warning_line(report.path, f"{what} was taken with different options "
                                          f"({'; '.join(diffs)}); its fallback sites may "
                                          "not match"))]


# ----------------------------------------------------------------- commands
def scan(paths: list[str], options: Options, format: str = "text", output: str | None = None,
         include: list[str] | None = None, jobs: int | None = None,
         stats: bool = False, candidates: str = "auto") -> int:
    """Report every site: 0, or 2 when an input failed (the report is still written)."""
    results, messages, errors = _batch(scan_one, paths, include, (options, candidates), jobs,
                                       output)
    if format == "json":
        from .report.jsondoc import scan_json
        text = scan_json(results, options)
    elif format == "openmetrics":
        from .report.jsondoc import scan_doc
        from .report.openmetrics import render_openmetrics
        text = render_openmetrics(scan_doc(results, options))
    else:
        from .report.text import scan_text, stats_text
        text = scan_text(results, options) + (stats_text(results) if stats else "")
    ok = _deliver(messages, text, output)
    return 0 if ok and not errors else 2


def verify(paths: list[str], options: Options, format: str = "text",
           output: str | None = None, include: list[str] | None = None,
           jobs: int | None = None, candidates: str = "auto") -> int:
    """Check existing tables: 1 on any mismatch or missing site, 2 on errors."""
    verdicts, messages, errors = _batch(verify_one, paths, include, (options, candidates),
                                        jobs, output)
    if format == "json":
        from .report.jsondoc import verify_json
        text = verify_json(verdicts, options)
    else:
        from .report.text import verify_text
        text = verify_text(verdicts, options)
    if not _deliver(messages, text, output) or errors:
        return 2
    return 1 if any(not v.ok for v in verdicts) else 0


def write(paths: list[str], options: Options, output: str | None = None,
          dry_run: bool = False, backup: bool = False, force: bool = False,
          quiet: bool = False, include: list[str] | None = None,
          jobs: int | None = None) -> int:
    """Write each object's table: 0, or 2 when an input failed."""
    check_output(output, [])
    if output is not None and len(paths) != 1:
        raise UsageError("-o/--output takes exactly one input file")
    # archives are not expanded: one is refused as a whole (write_path), and a
    # directory walk does not look for them unless --include asks
    inputs, messages = _collect(paths, include or WRITE_INCLUDE, archives=False)
    if output is not None and (len(inputs) != 1 or inputs[0].path != paths[0]):
        raise UsageError("-o/--output takes exactly one input file")
    if output is not None:
        check_output(output, [inputs[0].path])
    quiet = quiet or output == "-"          # the object itself goes to stdout
    if not dry_run:
        # stale temporaries: one listing per directory, before the workers fork
        # (they inherit what was cleaned)
        from .fileio import clean_directory
        dirs = {os.path.dirname(os.path.abspath(i.path)) for i in inputs}
        if output not in (None, "-"):
            dirs = {os.path.dirname(os.path.abspath(output))}
        for d in sorted(dirs):
            clean_directory(d)
    from .report.text import write_lines
    outs = run_batch(write_one, inputs, (options, output, force, dry_run, backup), jobs)
    failed = bool(messages) or any(not o.ok for o in outs)
    lines = []
    for o in outs:
        messages.extend(o.messages)
        if o.ok and not quiet:
            lines.extend(write_lines(o.display, o.result, options, len(inputs) == 1))
    _emit_messages(messages)
    if lines:
        sys.stdout.write("".join(x + "\n" for x in lines))
        sys.stdout.flush()
    return 2 if failed else 0


def check(paths: list[str], options: Options, format: str = "text", output: str | None = None,
          baseline: str | None = None, max_fallback: int = 0, stats: bool = False,
          source_root: str | None = None, include: list[str] | None = None,
          jobs: int | None = None, candidates: str = "auto") -> int:
    """The CI gate: 0 pass, 1 fail, 2 errors (the report is still written)."""
    from . import findings
    from .model import summarize
    from .report.jsondoc import load_report
    if max_fallback < 0:
        raise UsageError(f"--max-fallback must not be negative, not {max_fallback}")
    check_output(output, [])
    base = None
    if baseline is not None:
        base = load_report(baseline)               # InputError: exit 2 (run_guarded)
    # an object without machine code (slim LTO) has nothing to check: not a pass
    results, messages, errors = _batch(scan_one, paths, include, (options, candidates), jobs,
                                       output, refuse=lambda r: r.no_code)
    if base is not None:
        messages[:0] = _policy_warning(base, options.to_json(), "the baseline")
    summary = {"objects": len(results), **summarize(results, per_object=True)}
    verdict = findings.check(findings.sites_from_results(results), max_fallback, base)
    plain = [e.removeprefix(error_line("")) for e in errors]
    if format == "sarif":
        from .report.sarif import sarif_json
        text = sarif_json(verdict, options, summary, plain, source_root)
    elif format in ("json", "openmetrics"):
        from .report import dump
        from .report.jsondoc import check_doc
        doc = check_doc(verdict, summary, options, plain)
        if format == "json":
            text = dump(doc)
        else:
            from .report.openmetrics import render_openmetrics
            text = render_openmetrics(doc)
    else:
        from .report.text import check_text, stats_text
        text = (check_text(verdict, summary, options.policy, source_root)
                + (stats_text(results) if stats else ""))
    if not _deliver(messages, text, output) or errors:
        return 2
    return 0 if verdict.passed else 1


def diff(old: str, new: str, format: str = "text", output: str | None = None) -> int:
    """Compare two reports: 0 no new fallback site, 1 a new one, 2 errors."""
    from . import findings
    from .report.jsondoc import diff_json, load_report
    from .report.text import diff_text
    check_output(output, [old, new])
    rep_old = load_report(old)
    rep_new = load_report(new)
    d = findings.diff(rep_old.sites, rep_new.sites)
    text = diff_json(d, old, new) if format == "json" else diff_text(d)
    if not _deliver(_policy_warning(rep_old, rep_new.policy, "OLD"), text, output):
        return 2
    return 1 if d.new_fallback else 0


def dashboard(reports: list[str], output: str | None = None,
              label: list[str] | None = None) -> int:
    """Render reports as one HTML page: 0, or 2 on a bad report."""
    from .report.dashboard import dashboard_from_files
    check_output(output, reports)
    page = dashboard_from_files(reports, label)
    return 0 if _deliver([], page, output) else 2


def runtime_path() -> int:
    """Print the directory of the C runtime shipped with the package."""
    from .runtime import path
    sys.stdout.write(f"{path()}\n")
    return 0


COMMANDS = {"scan": scan, "verify": verify, "write": write, "check": check, "diff": diff,
            "dashboard": dashboard, "runtime-path": runtime_path}


def run(name: str, values: dict) -> int:
    """Carry out command ``name`` with ``values`` by option dest (from the option
    table); usage problems become one error line and exit 2."""
    from .options import COMMANDS as TABLE
    from .options import POLICY
    try:
        kw = dict(values)
        if TABLE[name].policy:
            kw["options"] = Options(**{o.dest: kw.pop(o.dest) for o in POLICY})
        return COMMANDS[name](**kw)
    except ScallError as e:
        _emit_messages([error_line(str(e))])
        return 2
