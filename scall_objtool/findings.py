"""Findings, the ``check`` verdict, baseline matching and ``diff``.

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

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache


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


def base_dir(root: str | None = None) -> str | None:
    """The absolute directory that paths are shown relative to: ``root``, else
    the current directory; None when it cannot be known (the current directory
    was deleted, and ``root`` is relative or not given): paths stay as they are."""
    try:        # getcwd is absolute and normalized already (and ~4x quicker per site)
        return os.path.abspath(root) if root else os.getcwd()
    except OSError:
        return None


def norm_object(path: str) -> str:
    return relative_below(path, base_dir())


@lru_cache(maxsize=1 << 16)
def relative_below(path: str, base: str | None) -> str:
    """``path`` normalized, and relative to ``base`` when it is absolute and lies
    below it (cached: matching asks for the same few paths once per site)."""
    p = os.path.normpath(path)
    if os.path.isabs(p) and base is not None:
        try:
            rel = os.path.relpath(p, base)
        except ValueError:
            return p
        if rel != ".." and not rel.startswith(".." + os.sep):
            return rel
    return p


def norm_function(name: str | None, section: str) -> str:
    if name is None:
        return f"[{section}]"
    return _CLONE_NUMBER.sub("", name)


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


#: policy fields that change which sites are fallback
POLICY_FIELDS = ("name", "allow_tail", "cache_line", "assume_align", "tramp_prefix", "placement")


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


