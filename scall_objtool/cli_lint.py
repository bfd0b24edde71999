"""The CI commands, registered on the main typer app:

    scall-objtool check PATH... [--format text|json|sarif] [-o FILE]
                                [--baseline REPORT.json] [--max-fallback N] [--stats]
    scall-objtool diff OLD.json NEW.json [--format text|json] [-o FILE]

``check`` exits 1 when there are more fallback sites (not in the baseline)
than ``--max-fallback`` allows, 0 when not, 2 on errors.  ``diff`` exits 1
when NEW has a fallback site that OLD lacks, 0 when not, 2 on errors.
"""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from .cli import (AllowTailOpt, AssumeAlignOpt, CacheLineOpt, CandOpt, Candidates, IncludeOpt,
                  JobsOpt, KeyOpt, ModuleOpt, PathsArg, Policy, PolicyOpt, StrictOpt, TrampOpt,
                  _finish, _options, app)
from .commands import PROG, _deliver, check_output, collect, run_batch, run_guarded
from .errors import UsageError


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


class DiffFormat(str, Enum):
    text = "text"
    json = "json"


OutputOpt = Annotated[Optional[str], typer.Option("-o", "--output", metavar="FILE",
                                                  help="write the output to FILE")]


def _policy_warning(report, other_policy: dict, what: str) -> list[str]:
    from .lint import policy_mismatch
    diffs = policy_mismatch(report.policy, other_policy)
    if not diffs:
        return []
    return [f"{PROG}: warning: {report.path}: {what} was taken with different options "
            f"({'; '.join(diffs)}); its fallback sites may not match"]


def cmd_check(paths: list[str], options, fmt: str = "text", output: str | None = None,
              baseline: str | None = None, max_fallback: int = 0, stats: bool = False,
              source_root: str | None = None, include: list[str] | None = None,
              jobs: int | None = None, candidates_from: str = "auto") -> int:
    """``check``: 0 pass, 1 fail, 2 errors (the report is still written)."""
    from . import lint
    from .model import summarize
    if max_fallback < 0:
        raise UsageError(f"--max-fallback must not be negative, not {max_fallback}")
    check_output(output, [])
    messages: list[str] = []
    base = None
    if baseline is not None:
        base = lint.load_report(baseline)           # InputError: exit 2 (run_guarded)
        messages.extend(_policy_warning(base, options.to_json(), "the baseline"))
    inputs, errors = collect(paths, include)
    check_output(output, [i.path for i in inputs])
    outs = run_batch("scan", inputs, options, candidates_from, jobs)
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
    if fmt == "sarif":
        from .sarif import render_sarif
        text = render_sarif(verdict, options, summary, plain, source_root)
    elif fmt == "json":
        text = lint.render_check_json(verdict, summary, options, plain)
    else:
        text = lint.render_check_text(verdict, summary, options.policy, source_root)
        if stats:
            from .report import render_stats
            text += render_stats(results)
    if not _deliver(messages, text, output) or errors:
        return 2
    return 0 if verdict.passed else 1


def cmd_diff(old: str, new: str, fmt: str = "text", output: str | None = None) -> int:
    """``diff``: 0 no new fallback site, 1 a new one, 2 errors."""
    from . import lint
    check_output(output, [old, new])
    rep_old = lint.load_report(old)
    rep_new = lint.load_report(new)
    d = lint.diff(rep_old.sites, rep_new.sites)
    text = (lint.render_diff_json(d, old, new) if fmt == "json"
            else lint.render_diff_text(d))
    if not _deliver(_policy_warning(rep_old, rep_new.policy, "OLD"), text, output):
        return 2
    return 1 if d.new_fallback else 0


@app.command()
def check(paths: PathsArg,
          format: Annotated[CheckFormat, typer.Option("--format", "-f",
                                                      help="output format")]
          = CheckFormat.text,
          output: OutputOpt = None,
          baseline: Annotated[Optional[str], typer.Option(
              "--baseline", metavar="REPORT.json",
              help="a report from `scan --format json`: fail only on fallback sites it "
                   "lacks")] = None,
          max_fallback: Annotated[int, typer.Option(
              "--max-fallback", metavar="N",
              help="fail only when there are more than N (new) fallback sites")] = 0,
          stats: Annotated[bool, typer.Option(
              "--stats", help="text format: add tables of sites per trampoline, kind, "
                              "reason and object")] = False,
          source_root: Annotated[Optional[str], typer.Option(
              "--source-root", metavar="DIR",
              help="show paths relative to DIR (default: the current directory)")] = None,
          policy: PolicyOpt = Policy.seed, allow_tail: AllowTailOpt = False,
          cache_line: CacheLineOpt = 64, assume_align: AssumeAlignOpt = None,
          tramp_prefix: TrampOpt = "__SCT__", key_prefix: KeyOpt = "__SCK__",
          module: ModuleOpt = False, strict_keys: StrictOpt = False,
          include: IncludeOpt = None, jobs: JobsOpt = None,
          candidates: CandOpt = Candidates.auto):
    """Fail (exit 1) when a static-call site is fallback under the policy: a CI gate."""
    _finish(run_guarded(lambda: cmd_check(
        paths, _options(policy, allow_tail, cache_line, assume_align, tramp_prefix,
                        key_prefix, module, strict_keys),
        format.value, output, baseline, max_fallback, stats, source_root, include, jobs,
        candidates.value)))


@app.command()
def diff(old: Annotated[str, typer.Argument(metavar="OLD.json",
                                            help="the earlier `scan --format json` report")],
         new: Annotated[str, typer.Argument(metavar="NEW.json", help="the later report")],
         format: Annotated[DiffFormat, typer.Option("--format", "-f", help="output format")]
         = DiffFormat.text,
         output: OutputOpt = None):
    """Compare two JSON reports: added, removed and changed sites (exit 1 on a new
    fallback site)."""
    _finish(run_guarded(lambda: cmd_diff(old, new, format.value, output)))
