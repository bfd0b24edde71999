"""Lint logic for CI: findings, the ``check`` verdict, baselines and ``diff``.

A *finding* is a fallback site under the active policy.  ``check`` fails
when there are findings (more than ``--max-fallback``); with a baseline it
fails only on findings the baseline lacks.

Matching (baseline and ``diff``) must survive unrelated edits: code added
above a site moves its offset, its function's position in the section and
its source line, but not *what* it is.  A site is therefore identified by::

    (object path, function, trampoline, kind, reason)

and these identities are **counted**: three fallback tail calls to
``__SCT__foo`` in ``bar()`` of ``x.o`` in the baseline cover three such
sites now, not four.  Object paths are compared normalized
(``os.path.normpath``; an absolute path under the current directory as a
relative one), function names without GCC's clone numbers
(``foo.constprop.0`` -> ``foo.constprop``), and a site outside any function
by its section.  Within one identity, sites pair up in (section, offset)
order, so when a function gains a site the extra one reported as new is the
last in the function.
"""
from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field

from .errors import InputError
from .model import KINDS, REASONS

_CLONE_NUMBER = re.compile(r"\.\d+(?=\.|$)")


@dataclass(frozen=True)
class LintSite:
    """A site as the lint sees it, from a scan or from a JSON report."""
    object: str
    section: str
    offset: int
    function: str | None
    function_offset: int | None
    trampoline: str
    key: str
    kind: str
    patchable: bool
    reason: str | None
    crossing: str | None
    source: dict | None = field(default=None, compare=False, hash=False)
    inlined: list = field(default_factory=list, compare=False, hash=False)

    @property
    def identity(self) -> tuple:
        return (norm_object(self.object), norm_function(self.function, self.section),
                self.trampoline, self.kind, self.reason)

    @property
    def coarse_identity(self) -> tuple:
        return (norm_object(self.object), norm_function(self.function, self.section),
                self.trampoline)

    @property
    def order(self) -> tuple:
        return (self.section, self.offset)

    @property
    def where(self) -> str:
        """``func+0x1c`` (``section+0x1c`` outside any function)."""
        if self.function is not None and self.function_offset is not None:
            return f"{self.function}+{self.function_offset:#x}"
        return f"{self.section}+{self.offset:#x}"

    @property
    def message(self) -> str:
        return f"static call to {self.trampoline} is not patchable: {self.reason}"

    def to_json(self) -> dict:
        return {"object": self.object, "section": self.section, "offset": self.offset,
                "function": self.function, "function_offset": self.function_offset,
                "trampoline": self.trampoline, "key": self.key, "kind": self.kind,
                "patchable": self.patchable, "reason": self.reason,
                "crossing": self.crossing, "source": self.source, "inlined": self.inlined}


def norm_object(path: str) -> str:
    p = os.path.normpath(path)
    if os.path.isabs(p):
        try:
            rel = os.path.relpath(p)
        except ValueError:
            return p
        if rel != ".." and not rel.startswith(".." + os.sep):
            return rel
    return p


def norm_function(name: str | None, section: str) -> str:
    if name is None:
        return f"[{section}]"
    return _CLONE_NUMBER.sub("", name)


def check_schema() -> dict:
    """The JSON Schema of ``check --format json``, as shipped in the package."""
    from importlib import resources
    return json.loads(resources.files("scall_objtool").joinpath("schema/check-v1.json")
                      .read_text())


# ------------------------------------------------------------------ sources
def sites_from_results(results) -> list[LintSite]:
    return [LintSite(object=r.path, section=s.section, offset=s.offset, function=s.function,
                     function_offset=s.function_offset, trampoline=s.trampoline, key=s.key,
                     kind=s.kind, patchable=s.patchable, reason=s.reason,
                     crossing=s.crossing, source=s.source, inlined=s.inlined)
            for r in results for s in r.sites]


@dataclass
class Report:
    """A JSON report (``scan --format json``) read back."""
    path: str
    policy: dict
    sites: list[LintSite]


def load_report(path: str) -> Report:
    """Read a schema-1 JSON report; InputError for anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InputError("cannot open: No such file or directory", path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"not a JSON report: {e}", path) from None
    return report_from_json(data, path)


def report_from_json(data, path: str) -> Report:
    def bad(why: str):
        raise InputError(f"not a scall-objtool JSON report (scan --format json): {why}", path)

    if not isinstance(data, dict):
        bad("the top level is not an object")
    if data.get("schema_version") != 1:
        bad(f"schema_version is {data.get('schema_version')!r}, expected 1")
    objects = data.get("objects")
    if not isinstance(objects, list):
        bad("no 'objects' list")
    policy = data.get("policy") if isinstance(data.get("policy"), dict) else {}
    sites = []
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict) or not isinstance(obj.get("path"), str) \
                or not isinstance(obj.get("sites"), list):
            bad(f"objects[{i}] has no 'path' and 'sites'")
        for j, s in enumerate(obj["sites"]):
            where = f"objects[{i}].sites[{j}]"
            if not isinstance(s, dict):
                bad(f"{where} is not an object")
            try:
                site = LintSite(
                    object=obj["path"], section=_str(s["section"]), offset=_int(s["offset"]),
                    function=_opt(s.get("function"), str),
                    function_offset=_opt(s.get("function_offset"), int),
                    trampoline=_str(s["trampoline"]), key=_str(s.get("key", "")),
                    kind=_enum(s["kind"], KINDS), patchable=_bool(s["patchable"]),
                    reason=_opt_enum(s.get("reason"), REASONS),
                    crossing=_opt(s.get("crossing"), str),
                    source=s.get("source") if isinstance(s.get("source"), dict) else None,
                    inlined=s.get("inlined") if isinstance(s.get("inlined"), list) else [])
            except (KeyError, TypeError, ValueError) as e:
                bad(f"{where}: {e.args[0] if e.args else e}")
            if site.patchable == (site.reason is not None):
                bad(f"{where}: 'patchable' and 'reason' disagree")
            sites.append(site)
    return Report(path, policy, sites)


def _str(v):
    if not isinstance(v, str):
        raise TypeError(f"expected a string, not {v!r}")
    return v


def _int(v):
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise TypeError(f"expected a non-negative integer, not {v!r}")
    return v


def _bool(v):
    if not isinstance(v, bool):
        raise TypeError(f"expected true or false, not {v!r}")
    return v


def _opt(v, typ):
    if v is None:
        return None
    if typ is int:
        return _int(v)
    return _str(v)


def _enum(v, allowed):
    if v not in allowed:
        raise ValueError(f"unknown value {v!r}")
    return v


def _opt_enum(v, allowed):
    return None if v is None else _enum(v, allowed)


#: policy fields that change which sites are fallback
POLICY_FIELDS = ("name", "allow_tail", "cache_line", "assume_align", "tramp_prefix")


def policy_mismatch(a: dict, b: dict) -> list[str]:
    """The classification-relevant policy fields where two reports differ."""
    out = []
    for k in POLICY_FIELDS:
        if k in a and k in b and a[k] != b[k]:
            out.append(f"{'policy' if k == 'name' else k} {a[k]!r} vs {b[k]!r}")
    return out


# ----------------------------------------------------------------- matching
def _groups(sites, key):
    g = defaultdict(list)
    for s in sites:
        g[key(s)].append(s)
    for v in g.values():
        v.sort(key=lambda s: (norm_object(s.object), s.order))
    return g


def match(current, previous, key=lambda s: s.identity):
    """Pair sites of equal identity, counted.

    Returns (pairs [(previous, current)], unmatched current, unmatched previous),
    each in a deterministic order."""
    cur = _groups(current, key)
    prev = _groups(previous, key)
    pairs, extra, missing = [], [], []
    for k in sorted(set(cur) | set(prev), key=_sort_key):
        c, p = cur.get(k, []), prev.get(k, [])
        n = min(len(c), len(p))
        pairs.extend(zip(p[:n], c[:n]))
        extra.extend(c[n:])
        missing.extend(p[n:])
    order = {id(s): i for i, s in enumerate(current)}
    extra.sort(key=lambda s: order[id(s)])
    porder = {id(s): i for i, s in enumerate(previous)}
    missing.sort(key=lambda s: porder[id(s)])
    pairs.sort(key=lambda pc: order[id(pc[1])])
    return pairs, extra, missing


def _sort_key(k: tuple) -> tuple:
    return tuple("" if v is None else v for v in k)


# -------------------------------------------------------------------- check
@dataclass
class Finding:
    site: LintSite
    baselined: bool = False        # covered by the baseline: does not fail the check


@dataclass
class CheckResult:
    findings: list[Finding]
    failing: int                   # findings that count against --max-fallback
    max_fallback: int
    baseline: str | None
    gone: list[LintSite]           # baseline findings no longer present

    @property
    def passed(self) -> bool:
        return self.failing <= self.max_fallback

    @property
    def baselined(self) -> int:
        return sum(f.baselined for f in self.findings)


def check(sites: list[LintSite], max_fallback: int = 0,
          baseline: Report | None = None) -> CheckResult:
    fallback = [s for s in sites if not s.patchable]
    if baseline is None:
        findings = [Finding(s) for s in fallback]
        return CheckResult(findings, len(findings), max_fallback, None, [])
    base = [s for s in baseline.sites if not s.patchable]
    pairs, new, gone = match(fallback, base)
    covered = {id(c) for _, c in pairs}
    findings = [Finding(s, baselined=id(s) in covered) for s in fallback]
    return CheckResult(findings, len(new), max_fallback, baseline.path, gone)


# --------------------------------------------------------------------- diff
@dataclass
class Diff:
    added: list[LintSite]
    removed: list[LintSite]
    changed: list[tuple[LintSite, LintSite]]      # (old, new)
    unchanged: list[tuple[LintSite, LintSite]]    # (old, new), same identity

    @property
    def moved(self) -> int:
        return sum(1 for o, n in self.unchanged
                   if (o.section, o.offset) != (n.section, n.offset) or o.source != n.source)

    @property
    def new_fallback(self) -> list[LintSite]:
        """Fallback sites of NEW whose identity OLD lacks: what fails the diff
        (and ``check NEW --baseline OLD``)."""
        return ([s for s in self.added if not s.patchable]
                + [n for _, n in self.changed if not n.patchable])


def diff(old: list[LintSite], new: list[LintSite]) -> Diff:
    same, rest_new, rest_old = match(new, old)
    changed, added, removed = match(rest_new, rest_old, key=lambda s: s.coarse_identity)
    return Diff(added, removed, changed, same)


# --------------------------------------------------------------- rendering
def display_path(path: str, root: str | None = None) -> str:
    """A source or object path as shown to a user: relative to ``root`` (the
    current directory by default) when it lies below it."""
    p = os.path.normpath(path)
    if os.path.isabs(p):
        base = os.path.abspath(root or os.curdir)
        try:
            rel = os.path.relpath(p, base)
        except ValueError:
            return p
        if rel != ".." and not rel.startswith(".." + os.sep):
            return rel
    return p


# -- source lines (issue 12): the caller after inlining, then the inline chain
def location_text(file: str | None, line: int | None, root: str | None = None) -> str | None:
    """``file:line``, ``file`` when the line is unknown (never ``:0``), None
    when neither is known."""
    if file is None:
        return None if not line else f"??:{line}"
    shown = display_path(file, root)
    return f"{shown}:{line}" if line else shown


def via_text(inlined: list, root: str | None = None) -> str:
    """`` (via include/linux/sched.h:2085 cond_resched, ...)``: the inline
    chain, innermost frame first; empty when the site is not inlined."""
    parts = []
    for f in inlined:
        loc = location_text(f.get("file"), f.get("line"), root) or "??"
        parts.append(f"{loc} {f['function']}" if f.get("function") else loc)
    return f" (via {', '.join(parts)})" if parts else ""


def finding_line(site: LintSite, root: str | None = None) -> str:
    """One finding in the form compilers (source known: the caller's line,
    the inline chain, then the object and function) or objtool (object) use."""
    loc = location_text(site.source.get("file"), site.source.get("line"), root) \
        if site.source else None
    if loc is None:
        return f"{site.object}: {site.where}: warning: {site.message} [scall-objtool]"
    return (f"{loc}: warning: {site.message}{via_text(site.inlined, root)} "
            f"[{site.object}: {site.where}]")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_check_text(res: CheckResult, summary: dict, policy: str,
                      root: str | None = None) -> str:
    lines = [finding_line(f.site, root) for f in res.findings if not f.baselined]
    head = (f"summary: {_plural(summary['objects'], 'object')}, "
            f"{_plural(summary['sites'], 'site')}, {summary['patchable']} patchable, "
            f"{summary['fallback']} fallback (policy {policy})")
    if res.baseline is not None:
        head += f"; baseline {res.baseline}: {res.baselined} known, {res.failing} new"
        if res.gone:
            head += f", {len(res.gone)} fixed"
    what = "new fallback site" if res.baseline is not None else "fallback site"
    detail = _plural(res.failing, what)
    if res.failing or res.max_fallback:
        detail += f", at most {res.max_fallback} allowed"
    lines.append(f"{head}; check {'passed' if res.passed else 'failed'}: {detail}")
    return "\n".join(lines) + "\n"


def render_check_json(res: CheckResult, summary: dict, options, errors: list[str]) -> str:
    from . import __version__
    doc = {
        "schema_version": 1,
        "tool": {"name": "scall-objtool", "version": __version__},
        "policy": options.to_json(),
        "check": {"passed": res.passed and not errors, "findings": len(res.findings),
                  "failing": res.failing, "max_fallback": res.max_fallback,
                  "baseline": res.baseline, "baselined": res.baselined,
                  "fixed": len(res.gone), "errors": errors},
        "findings": [{**f.site.to_json(), "baselined": f.baselined} for f in res.findings],
        "summary": summary,
    }
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def _site_text(s: LintSite) -> str:
    verdict = "patchable" if s.patchable else f"fallback: {s.reason}"
    loc = location_text(s.source.get("file"), s.source.get("line")) if s.source else None
    src = f" ({loc})" if loc else ""
    return f"{s.object}: {s.where}: {s.kind} {s.trampoline}: {verdict}{src}"


def render_diff_text(d: Diff) -> str:
    lines = []
    newfb = {id(s) for s in d.new_fallback}
    for s in d.added:
        mark = "  [new fallback]" if id(s) in newfb else ""
        lines.append(f"added    {_site_text(s)}{mark}")
    for s in d.removed:
        lines.append(f"removed  {_site_text(s)}")
    for o, n in d.changed:
        was = "patchable" if o.patchable else f"fallback: {o.reason}"
        now = "patchable" if n.patchable else f"fallback: {n.reason}"
        kind = f"{o.kind} -> {n.kind}" if o.kind != n.kind else n.kind
        loc = location_text(n.source.get("file"), n.source.get("line")) if n.source else None
        src = f" ({loc})" if loc else ""
        mark = "  [new fallback]" if id(n) in newfb else ""
        lines.append(f"changed  {n.object}: {n.where}: {kind} {n.trampoline}: "
                     f"{was} -> {now}{src}{mark}")
    lines.append(f"summary: {len(d.added)} added, {len(d.removed)} removed, "
                 f"{len(d.changed)} changed, {len(d.unchanged)} unchanged "
                 f"({d.moved} moved); {_plural(len(d.new_fallback), 'new fallback site')}")
    return "\n".join(lines) + "\n"


def render_diff_json(d: Diff, old: str, new: str) -> str:
    from . import __version__
    doc = {
        "tool": {"name": "scall-objtool", "version": __version__},
        "old": old, "new": new,
        "added": [s.to_json() for s in d.added],
        "removed": [s.to_json() for s in d.removed],
        "changed": [{"old": o.to_json(), "new": n.to_json()} for o, n in d.changed],
        "summary": {"added": len(d.added), "removed": len(d.removed),
                    "changed": len(d.changed), "unchanged": len(d.unchanged),
                    "moved": d.moved, "new_fallback": len(d.new_fallback)},
    }
    return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
