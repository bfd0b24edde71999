"""The commands (scan, write, verify, check, diff, dashboard, runtime-path),
free of any argument-parsing library.

Both command lines (``cli/typer_cli.py``, typer; ``cli/__init__.py``, the fast path) parse
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

from ..core import Options
from ..errors import PROG, ScallError, UsageError, error_line, warning_line
from ..inputs import expand, show
from ..inputs.batch import Outcome, job_count, run_batch, scan_one, verify_one, write_one
from ..records import record


#: what ``write DIR`` looks for: objects, not archives (whose members are
#: never written; ``--include '*.a'`` makes each one an error)
WRITE_INCLUDE = ["*.o", "*.ko"]


# ---------------------------------------------------------------- plumbing
def check_output(output: str | None, inputs: list[str]) -> None:
    """-o must name something, and never one of the inputs (objects, baselines,
    reports): the same device and inode, or, when the output does not exist
    yet, the same resolved path.  UsageError, before any work."""
    if output is None or output == "-":
        return
    if output == "":
        raise UsageError("-o/--output must not be empty (use - for standard output)")
    import stat
    try:
        st = os.stat(output)
    except (OSError, ValueError):
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        return                  # a device, FIFO or terminal is written into, not replaced
    from ..inputs.fileio import same_file
    def resolved(path: str) -> str | None:
        try:
            return os.path.realpath(path)
        except OSError:             # a relative path in a deleted directory
            return None
    real = resolved(output) if st is None else None
    for p in inputs:
        if same_file(output, p) if st is not None else (real is not None
                                                        and resolved(p) == real):
            raise UsageError(f"-o {show(output)}: is also an input ({show(p)}); "
                             "refusing to overwrite it")


def _emit_messages(lines: list[str]) -> None:
    if lines:                       # a quiet run on a clean object prints nothing
        from .streams import err
        err(lines)


def _deliver(messages: list[str], text: str, output: str | None,
             machine: bool = False) -> bool:
    """Messages to stderr, the report to stdout or OUTPUT (``-``: stdout; a
    device or FIFO is written into, a regular file replaced atomically); False
    if OUTPUT could not be written.  ``machine``: a format for programs
    (JSON, SARIF, OpenMetrics, HTML), UTF-8 on stdout whatever the locale.
    A failure to write stdout or stderr is an OutputError (``streams``), after
    the report has been tried all the same."""
    from . import streams
    from .streams import OutputError
    broken = None
    try:
        _emit_messages(messages)
    except OutputError as e:
        broken = e                      # stderr is gone: the report may still arrive
    if output is None or output == "-":
        streams.out(text, machine)      # its failure is an OutputError
    else:
        from ..inputs.fileio import UnsafeWrite, write_output
        try:
            write_output(output, streams.encode(text))
        except OSError as e:
            _emit_messages([error_line(f"{show(output)}: cannot write: {e.strerror}")])
            return False
        except UnsafeWrite as e:
            _emit_messages([error_line(f"{show(output)}: {e}")])
            return False
    if broken is not None:
        raise broken
    return True


@record
class Collected:
    """The inputs of a command line: the error line of each path that could
    not be expanded, the warning of each symlink a walk did not follow out of
    its tree, what was passed over (``skipped`` counts for the summary: Kbuild
    repeats, parts of a linked artifact read instead, links out of the tree,
    the same file again) and the inputs left out as the same file as another
    (display, display kept)."""
    inputs: list
    errors: list
    warnings: list
    skipped: dict
    duplicates: list


def _collect(paths: list[str], include: list[str] | None, archives: bool = True,
             linked: bool = False) -> Collected:
    found = expand(paths, include, archives, linked)
    errors = [error_line(f"{show(e.path)}: {e.message}" if e.path else e.message)
              for e in found.errors]
    warnings = [warning_line(link, f"a symlink out of the directory walked (to {target}): "
                                   "skipped, neither read nor written")
                for link, target in found.outside]
    skipped = {"repeated": len(found.repeats) - found.linked, "linked": found.linked,
               "outside": len(found.outside), "duplicate": len(found.duplicates)}
    return Collected(found.inputs, errors, warnings, skipped, found.duplicates)


@record
class Run:
    """A batch's results: those of the inputs that worked, every stderr line in
    input order, the error lines among them, what a walk passed over, and the
    file of each object whose name in reports is not its path (escaped)."""
    results: list
    messages: list
    errors: list
    skipped: dict
    files: dict


def _line_jobs(sources: str, jobs: int | None) -> None:
    """A linked image's source lines may be split over the --jobs processes
    (``lines.lookup``); the scan of every input imports the pipeline anyway."""
    if sources != "none":
        from ..core import pipeline
        pipeline.LINE_JOBS = job_count(jobs)


def _batch(worker, paths, include, args: tuple, jobs, output=None, refuse=None,
           linked: bool = False) -> Run:
    """Run a batch.  ``output`` (-o) must not be an input; ``refuse(result)`` may
    name a reason to count a result as an error instead; ``linked``: a walk
    reads linked artifacts instead of their parts (``expand``)."""
    check_output(output, [])
    got = _collect(paths, include, linked=linked)
    check_output(output, [i.path for i in got.inputs])
    inputs, errors = got.inputs, got.errors
    run = Run([], got.warnings + errors, errors, {"foreign": 0, **got.skipped},
              {i.display: i.path for i in inputs if not i.is_member and i.display != i.path})
    for o in run_batch(worker, inputs, args, jobs):
        why = refuse(o.result) if refuse and o.ok and o.result is not None else None
        if why:
            o = Outcome(o.display, ok=False, messages=[error_line(f"{o.display}: {why}")])
        run.messages.extend(o.messages)
        if o.skipped:
            run.skipped["foreign"] += 1
        elif o.ok and o.result is not None:
            run.results.append(o.result)
        else:
            errors.extend(o.messages)
    run.skipped = {k: v for k, v in run.skipped.items() if v}
    return run


def _unmatched_baseline(base, results) -> list[str]:
    """A warning when the baseline names objects, but none of the inputs: it was
    most likely recorded from another directory, and would match nothing."""
    from ..report.findings import norm_object
    recorded = {norm_object(s.object) for s in base.sites}
    if not recorded or recorded & {norm_object(r.path) for r in results}:
        return []
    example = sorted(recorded)[0]
    return [warning_line(base.path, f"no object of the baseline is among the inputs (it "
                                    f"names {example}, ...): every site counts as new; "
                                    "record it with scan -o FILE, which keeps its paths "
                                    "relative to the file")]


def _policy_warning(report, other_policy: dict, what: str) -> list[str]:
    from ..report.findings import policy_mismatch
    diffs = policy_mismatch(report.policy, other_policy)
    if not diffs:
        return []
    # escaped with every stderr line (streams.err)
    return [warning_line(report.path, f"{what} was taken with different options "
                                      f"({'; '.join(diffs)}); its fallback sites may "
                                      "not match")]


# ----------------------------------------------------------------- commands
def scan(paths: list[str], options: Options, format: str = "text", output: str | None = None,
         include: list[str] | None = None, jobs: int | None = None,
         stats: bool = False, quiet: bool = False,
         group_by: str | None = None, source_root: str | None = None,
         no_lines: bool = False) -> int:
    """Report every site: 0, or 2 when an input failed (the report is still written).
    A build tree is read as check reads it (linked artifacts), so that a scan
    report is a baseline for check."""
    # of the scan's outputs only JSON shows source lines: the DWARF is read for it alone
    sources = "all" if format == "json" and not no_lines else "none"
    _line_jobs(sources, jobs)
    run = _batch(scan_one, paths, include, (options, sources), jobs, output,
                 linked=True)
    if format == "json":
        from ..report.jsondoc import paths_base, scan_json
        text = scan_json(run.results, options, run.skipped, paths_base(output), source_root)
    elif format == "openmetrics":
        from ..report.jsondoc import scan_doc
        from ..report.openmetrics import render_openmetrics
        text = render_openmetrics(scan_doc(run.results, options, run.skipped), checked=True)
    else:
        from ..report.text import scan_text
        text = scan_text(run.results, options, run.skipped, quiet, group_by, stats)
    ok = _deliver(run.messages, text, output, machine=format != "text")
    return 0 if ok and not run.errors else 2


def verify(paths: list[str], options: Options, format: str = "text",
           output: str | None = None, include: list[str] | None = None,
           jobs: int | None = None, quiet: bool = False,
           strict: bool = False, by_table: bool = False) -> int:
    """Check existing tables: 1 when one is wrong (with ``strict``, also when it
    lists a site the policy would not patch), 2 on errors.  ``by_table``: each
    table is judged by its own policy (a kernel table lists the sites the seed
    policy leaves alone: they are no findings)."""
    run = _batch(verify_one, paths, include, (options,), jobs, output)
    verdicts = run.results
    if by_table:
        for v in verdicts:
            if v.table_policy != options.policy:
                v.policy_findings = []
    if format == "json":
        from ..report.jsondoc import verify_json
        text = verify_json(verdicts, options, run.skipped)
    else:
        from ..report.text import verify_text
        text = verify_text(verdicts, options, run.skipped, quiet, by_table)
    if not _deliver(run.messages, text, output, machine=format != "text") or run.errors:
        return 2
    failed = any(not v.ok or (strict and v.policy_findings) for v in verdicts)
    return 1 if failed else 0


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
    got = _collect(paths, include or WRITE_INCLUDE, archives=False)
    inputs, messages = got.inputs, got.warnings + got.errors
    if output is not None and (len(inputs) != 1 or inputs[0].path != paths[0]):
        raise UsageError("-o/--output takes exactly one input file")
    if output is not None:
        check_output(output, [inputs[0].path])
    # the object itself goes to stdout (-o -, /dev/stdout, the file stdout is
    # redirected to): no summary there
    if output is not None:
        from ..inputs.fileio import stream_of
        quiet = quiet or stream_of(output) == 1
    around = None
    if not dry_run:
        # stale temporaries: one listing per directory, before the workers fork
        # (they inherit what was cleaned); each directory synced once, after
        # the last file replaced in it
        from ..inputs.fileio import clean_directory, deferred_sync
        around = deferred_sync
        try:
            dirs = {os.path.dirname(os.path.abspath(i.path)) for i in inputs}
            if output not in (None, "-"):
                dirs = {os.path.dirname(os.path.abspath(output))}
        except OSError:     # a relative path, and the current directory is gone
            dirs = set()    # (the write then fails on its path, one line)
        for d in sorted(dirs):
            clean_directory(d)
    outs = run_batch(write_one, inputs, (options, output, force, dry_run, backup, not quiet),
                     jobs, around)
    failed = bool(got.errors) or any(not o.ok for o in outs)
    written = [o for o in outs if o.ok and o.result is not None]
    lines = []
    for o in outs:
        messages.extend(o.messages)
    if not quiet:
        from ..report.text import write_lines
        for o in written:
            lines.extend(write_lines(o.display, o.result, options, len(inputs) == 1))
        messages.extend(_added_keys_warning([(o.display, o.result.added_keys)
                                             for o in written if o.result.added_keys]))
        messages.extend(warning_line(d, f"the same file as {kept} (a link, or named "
                                        "twice): written once, as that")
                        for d, kept in got.duplicates)
    _emit_messages(messages)
    if lines:
        from .streams import out
        out("".join(x + "\n" for x in lines))
    return 2 if failed else 0


def _added_keys_warning(lacking: list[tuple[str, list[str]]]) -> list[str]:
    """One warning for every key added as an undefined global, over the batch."""
    if not lacking:
        return []
    if len(lacking) == 1:
        display, keys = lacking[0]
        return [warning_line(display, f"key{'s' if len(keys) > 1 else ''} {', '.join(keys)} "
                                      f"{'are' if len(keys) > 1 else 'is'} not in the "
                                      "object; added as an undefined global symbol")]
    distinct = sorted({k for _, keys in lacking for k in keys})
    return [f"{PROG}: warning: {len(lacking)} objects call through keys they do not "
            f"define ({len(distinct)} distinct, e.g. {distinct[0]} in {lacking[0][0]}): added "
            "as undefined global symbols (--module for the parts of a kernel module; "
            "--strict-keys makes it an error)"]


def check(paths: list[str], options: Options, format: str = "text", output: str | None = None,
          baseline: str | None = None, max_fallback: int = 0, stats: bool = False,
          source_root: str | None = None, include: list[str] | None = None,
          jobs: int | None = None, quiet: bool = False,
          group_by: str | None = None, layout_gate: str = "auto",
          no_lines: bool = False) -> int:
    """The CI gate: 0 pass, 1 fail, 2 errors (the report is still written)."""
    from ..report import findings
    from ..core import summarize
    from ..report.jsondoc import load_report
    if max_fallback < 0:
        raise UsageError(f"--max-fallback must not be negative, not {max_fallback}")
    check_output(output, [] if baseline is None else [baseline])
    base = None
    if baseline is not None:
        base = load_report(baseline)               # InputError: exit 2 (run_guarded)
    # an object without machine code (slim LTO) has nothing to check: not a pass
    # the findings (fallback sites) show source lines in text (a line each),
    # JSON and SARIF; a summary, --group-by and OpenMetrics do not read the DWARF
    shown = format in ("json", "sarif") or (format == "text" and not quiet and not group_by)
    sources = "fallback" if shown and not no_lines else "none"
    _line_jobs(sources, jobs)
    run = _batch(scan_one, paths, include, (options, sources), jobs, output,
                 refuse=lambda r: r.no_code, linked=True)
    results, messages, errors = run.results, run.messages, run.errors
    if base is not None:
        messages[:0] = (_policy_warning(base, options.to_json(), "the baseline")
                        + _unmatched_baseline(base, results))
    summary = {"objects": len(results), **summarize(results, per_object=True),
               "placement": findings.exactness(results)}
    if run.skipped:
        summary["skipped"] = run.skipped
    verdict = findings.check(findings.sites_from_results(results), max_fallback, base,
                             errors=len(errors), objects=len(results), layout_mode=layout_gate,
                             policy=options.policy, cache_line=options.cache_line)
    plain = [e.removeprefix(error_line("")) for e in errors]
    if format == "sarif":
        from ..report.sarif import sarif_json
        text = sarif_json(verdict, options, summary, plain, source_root, run.files)
    elif format in ("json", "openmetrics"):
        from ..report import dump
        from ..report.jsondoc import check_doc
        doc = check_doc(verdict, summary, options, plain, source_root)
        if format == "json":
            text = dump(doc)
        else:
            from ..report.openmetrics import render_openmetrics
            text = render_openmetrics(doc, checked=True)
    else:
        from ..report.text import check_text, stats_text
        text = check_text(verdict, summary, options.policy, source_root, quiet, group_by,
                          stats_text(results) if stats else "", line=options.cache_line)
    if not _deliver(messages, text, output, machine=format != "text") or not verdict.complete:
        return 2
    return 0 if verdict.passed else 1


def diff(old: str, new: str, format: str = "text", output: str | None = None,
         quiet: bool = False, old_root: str | None = None,
         new_root: str | None = None) -> int:
    """Compare two reports: 0 no new fallback site, 1 a new one, 2 errors."""
    from ..report import findings
    from ..report.jsondoc import diff_json, load_report
    from ..report.text import diff_text
    check_output(output, [old, new])
    for opt, root in (("--old-root", old_root), ("--new-root", new_root)):
        if root is not None and not os.path.isdir(root):
            raise UsageError(f"{opt} {show(root)}: not a directory")
    rep_old = load_report(old)
    rep_new = load_report(new)
    warnings = _policy_warning(rep_old, rep_new.policy, "OLD")
    d = findings.diff(rep_old.sites, rep_new.sites, old_root, new_root)
    matched = d.unchanged or d.changed
    if not matched and rep_old.sites and rep_new.sites and old_root is new_root is None:
        # two trees (or releases) in different places: match on the paths below
        # each report's common directory
        roots = findings.common_root(rep_old.sites), findings.common_root(rep_new.sites)
        again = findings.diff(rep_old.sites, rep_new.sites, *roots)
        if again.unchanged or again.changed:
            d, matched = again, True
            warnings.append(warning_line(show(new), "no object path of OLD is in NEW; matched on "
                                              f"the paths below {show(roots[0])} (OLD) and "
                                              f"{show(roots[1])} (NEW) "
                                              "(--old-root/--new-root choose them)"))
    if not matched and rep_old.sites and rep_new.sites:
        warnings.append(warning_line(show(new), "no site of OLD matches one of NEW: every site is "
                                          "added or removed (reports of different trees? "
                                          "--old-root and --new-root re-root them)"))
    text = diff_json(d, old, new) if format == "json" else diff_text(d, quiet)
    if not _deliver(warnings, text, output, machine=format == "json"):
        return 2
    return 1 if d.new_fallback else 0


def dashboard(reports: list[str], output: str | None = None,
              label: list[str] | None = None) -> int:
    """Render reports as one HTML page: 0, or 2 on a bad report.  Without -o
    the page goes to standard output, unless that is a terminal (a page of
    HTML is no use there): a usage error (``-o -`` insists)."""
    from ..report.dashboard import dashboard_from_files
    if output is None and _isatty(sys.stdout):
        raise UsageError("dashboard: standard output is a terminal; name the page with "
                         "-o FILE (or -o - to print the HTML anyway)")
    check_output(output, reports)
    page = dashboard_from_files(reports, label)
    return 0 if _deliver([], page, output, machine=True) else 2


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def runtime_path() -> int:
    """Print the directory of the C runtime shipped with the package."""
    from ..runtime import path
    from .streams import out
    out(os.fsencode(path()) + b"\n")      # a path: its bytes, for $(...)
    return 0


COMMANDS = {"scan": scan, "verify": verify, "write": write, "check": check, "diff": diff,
            "dashboard": dashboard, "runtime-path": runtime_path}


def run(name: str, values: dict) -> int:
    """Carry out command ``name`` with ``values`` by option dest (from the option
    table); usage problems become one error line and exit 2."""
    from ..options import COMMANDS as TABLE
    from ..options import options_of
    try:
        kw = dict(values)
        if TABLE[name].policy:
            by_table = TABLE[name].policy_of_table and kw["policy"] is None
            if by_table:
                del kw["policy"]
                kw["by_table"] = True
            options, kw = options_of(TABLE[name], kw)
            kw["options"] = options
        return COMMANDS[name](**kw)
    except ScallError as e:         # OutputError too: exit 2, or 141 for a closed pipe
        from .streams import failed
        return failed(e)
