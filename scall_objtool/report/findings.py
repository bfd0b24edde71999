"""Findings, the ``check`` verdict, baseline matching and ``diff``.

A *finding* is a fallback site under the active policy.  Findings are of
two kinds, gated apart:

* **structural** (``tail-call``, ``conditional-tail-call``, ``prefixed``,
  ``indirect``): they change only when the code changes; a new one fails;
* **layout** (``crosses-cache-line``, ``may-cross-cache-line``): they change
  with any edit before the call.  By default (``--layout-gate auto``, build
  not pinned) their *count* is compared with what uniform placement gives
  (``LayoutGate``); strictly (every new one fails) with ``--layout-gate
  strict``, or with ``auto`` when the build pins alignment (every judged
  section at least cache-line aligned).

A site's **stable identity** survives unrelated edits: code added above it
moves its offset, its function's position and its source line, but not *what*
it is::

    (object path, function, trampoline, kind, ordinal)

the ordinal counting the sites of the same (object, function, trampoline,
kind) in offset order.  The verdict is not part of it: a site that turned
from patchable to fallback is the same site, *changed*.  Object paths are
compared normalized (``os.path.normpath``) and relative to a root (the
current directory, or ``--old-root``/``--new-root``), function names
without GCC's clone numbers (``foo.constprop.0`` -> ``foo.constprop``), and
a site outside any function by its section.  When a function gains a site,
the extra one is the last in the function.
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field

from ..core import where
from ..vocabulary import KIND_TABLE, reasons_of
from .paths import base_dir, relative_below


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
    length: int | None = field(default=None, compare=False, hash=False)
    alignment: int | None = field(default=None, compare=False, hash=False)
    placement: dict | None = field(default=None, compare=False, hash=False)

    @property
    def placement_basis(self) -> str | None:
        """What the crossing verdict rests on: ``alignment``, ``model``, ``address``."""
        return self.placement.get("basis") if isinstance(self.placement, dict) else None
    compiler: str | None = field(default=None, compare=False, hash=False)  # from .comment

    @property
    def identity(self) -> tuple:
        """What the site is, without its ordinal: (object, function, trampoline,
        kind), the object relative to the current directory."""
        return site_key(self)

    @property
    def coarse_identity(self) -> tuple:
        return site_key(self)[:3]

    @property
    def layout(self) -> bool:
        """A layout finding (crossing), as opposed to a structural one."""
        return self.reason in LAYOUT_REASONS

    @property
    def order(self) -> tuple:
        return (self.section, self.offset)

    @property
    def where(self) -> str:
        """``func+0x1c`` (``section+0x1c`` outside any function)."""
        return where(self)

    def remedy(self, line: int = 64):
        """What makes this site patchable (remedy.Remedy), None when it is."""
        from ..core.remedy import remedy
        return None if self.reason is None else remedy(self.reason, self.compiler, line,
                                                       self.kind)

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
    return relative_below(path, base_dir())


#: fallback reasons that any edit before the call can change
LAYOUT_REASONS = reasons_of("layout")
#: fallback reasons that only a change of the code itself changes
STRUCTURAL_REASONS = reasons_of("structural")


_COMPRESSED = (".ko.xz", ".ko.zst", ".ko.gz")


def object_key(path: str, root: str | None = None) -> str:
    """An object path as identities compare it: normalized, relative to ``root``
    (an absolute, normalized directory; default: the current directory) when
    below it, a compressed module as the module (``x.ko.xz`` is ``x.ko``)."""
    p = norm_object(path) if root is None else relative_below(os.path.abspath(path), root)
    for ext in _COMPRESSED:
        if p.endswith(ext):
            return p[:-len(ext)] + ".ko"
    return p


def site_key(s, root: str | None = None) -> tuple:
    """A site's identity without its ordinal: (object relative to ``root``
    (default: the current directory), function, trampoline, kind)."""
    return (object_key(s.object, root), norm_function(s.function, s.section), s.trampoline,
            s.kind)


def common_root(sites) -> str | None:
    """The deepest directory that holds every site's object (None: no sites)."""
    dirs = {os.path.dirname(os.path.abspath(s.object)) for s in sites}
    if not dirs:
        return None
    try:
        return os.path.commonpath(sorted(dirs))
    except ValueError:
        return None


def keyer(root: str | None):
    """``site_key`` with its root: the key function of ``match``."""
    if root is None:
        return site_key
    root = os.path.normpath(os.path.abspath(root))
    return lambda s: site_key(s, root)


def ordinals(sites, key=site_key) -> dict[int, int]:
    """Each site's ordinal among the sites of its key, in (section, offset)
    order, by ``id(site)``: the last part of its stable identity."""
    out = {}
    for group in _groups(sites, key).values():
        for i, s in enumerate(group):
            out[id(s)] = i
    return out


def norm_function(name: str | None, section: str) -> str:
    if name is None:
        return f"[{section}]"
    return _CLONE_NUMBER.sub("", name)


# ------------------------------------------------------------------ sources
def sites_from_results(results) -> list[LintSite]:
    return [LintSite(object=r.path, section=s.section, offset=s.offset, function=s.function,
                     function_offset=s.function_offset, trampoline=s.trampoline, key=s.key,
                     kind=s.kind, patchable=s.patchable, reason=s.reason,
                     crossing=s.crossing, source=s.source, inlined=s.inlined,
                     length=s.length, alignment=s.alignment, placement=s.placement,
                     compiler=r.compiler)
            for r in results for s in r.sites]


def exactness(results) -> dict:
    """How many sites were judged exactly (a final address, the module loader's
    layout) and how many provisionally (the section's alignment only: an
    object linked into nothing the run read), with the provisional objects."""
    exact = provisional = 0
    objects = []
    for r in results:
        n = 0
        for s in r.sites:
            basis = s.placement.get("basis") if isinstance(s.placement, dict) else None
            if not KIND_TABLE[s.kind].direct:       # no placement to judge
                continue
            if basis in ("address", "model"):
                exact += 1
            else:
                n += 1
        if n:
            provisional += n
            objects.append({"path": r.path, "sites": n})
    return {"exact": exact, "provisional": provisional, "provisional_objects": objects}


@dataclass
class Report:
    """A JSON report (``scan --format json``) read back."""
    path: str
    policy: dict
    sites: list[LintSite]


#: policy fields that change which sites are fallback
POLICY_FIELDS = ("name", "allow_tail", "allow_prefixed", "cache_line", "assume_align",
                 "tramp_prefix", "placement")


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
        v.sort(key=lambda s: s.order)
    return g


def match(current, previous, key=site_key, prev_key=None):
    """Pair sites of equal key, counted, in offset order within a key (so by
    ordinal).  ``prev_key`` (default ``key``) keys the previous sites.

    Returns (pairs [(previous, current)], unmatched current, unmatched previous),
    each in a deterministic order."""
    cur = _groups(current, key)
    prev = _groups(previous, prev_key or key)
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


# ------------------------------------------------------------- layout gate
#: how many standard deviations of the chance count the layout gate tolerates
TOLERANCE_SIGMAS = 3


def chance(site, cache_line: int) -> float:
    """The probability that uniform placement at the site's known granularity
    makes it a layout finding: (length - 1) / g, g its alignment (at most the
    line; a final address or a modelled module: the line itself)."""
    g = min(site.alignment or cache_line, cache_line)
    length = site.length or 5
    return min(1.0, (length - 1) / g)


@dataclass
class LayoutGate:
    """The gate on layout findings.  ``chance``: the count of layout findings
    may not exceed ``limit`` = the larger of the chance expectation and the
    baseline's count, plus ``TOLERANCE_SIGMAS`` standard deviations of the
    chance count (a sum of one Bernoulli trial per judged call), rounded up.
    Chance alone exceeds it with probability at most 10% (Cantelli's bound,
    whatever the distribution: a tree of a few calls), about 0.1% on a large
    tree (normal); ``strict``: every new one fails (counted in
    ``CheckResult.failing``)."""
    mode: str                      # "chance" or "strict"
    pinned: bool                   # the build pins alignment (auto chose strict)
    calls: int                     # sites whose verdict rests on crossing
    findings: int                  # layout findings now
    new: int                       # of them, not in the baseline
    expected: float                # under uniform placement
    sigma: float
    baseline: int | None           # the baseline's layout findings
    limit: int | None              # chance mode: most allowed

    @property
    def excess(self) -> int:
        if self.mode != "chance" or self.limit is None:
            return 0
        return max(0, self.findings - self.limit)

    def to_json(self) -> dict:
        return {"mode": self.mode, "pinned": self.pinned, "calls": self.calls,
                "findings": self.findings, "new": self.new,
                "expected": round(self.expected, 3), "sigma": round(self.sigma, 3),
                "baseline": self.baseline, "limit": self.limit, "excess": self.excess}


def _judged(s, policy: str) -> bool:
    """Does the site's verdict rest on crossing (seed policy)?"""
    if policy != "seed" or s.crossing is None:
        return False
    return s.layout or (s.patchable and s.kind in ("call", "tail"))


def layout_gate(sites, new: int, baseline_sites, mode: str, policy: str,
                cache_line: int) -> LayoutGate:
    import math
    judged = [s for s in sites if _judged(s, policy)]
    found = sum(s.layout for s in judged)
    p = [chance(s, cache_line) for s in judged]
    expected = sum(p)
    sigma = math.sqrt(sum(x * (1 - x) for x in p))
    base = None if baseline_sites is None else sum(s.layout for s in baseline_sites)
    # pinned: every judged site sits in a section at least line-aligned, as
    # the assembler's padding flags leave it (-malign-branch-boundary)
    pinned = bool(judged) and all(s.alignment is not None and s.alignment >= cache_line
                                  and s.placement_basis == "alignment" for s in judged)
    if mode == "auto":
        mode = "strict" if pinned else "chance"
    limit = None
    if mode == "chance":
        limit = math.ceil(max(expected, base or 0) + TOLERANCE_SIGMAS * sigma - 1e-9)
    return LayoutGate(mode, pinned, len(judged), found, new, expected, sigma, base, limit)


# -------------------------------------------------------------------- check
#: a finding's state against the baseline (SARIF's baselineState; ``absent``
#: is a baseline finding that is gone, see ``CheckResult.gone``)
NEW, UNCHANGED, UPDATED = "new", "unchanged", "updated"


@dataclass
class Finding:
    site: LintSite
    state: str | None = None       # new / unchanged / updated; None without a baseline
    ordinal: int = 0               # among the sites of its identity
    fails: bool = False            # counts against --max-fallback

    @property
    def baselined(self) -> bool:
        """Covered by the baseline (unchanged, or updated: fallback there too)."""
        return self.state in (UNCHANGED, UPDATED)

    @property
    def gate(self) -> str:
        return "layout" if self.site.layout else "structural"

    @property
    def stable_id(self) -> tuple:
        return (*self.site.identity, self.ordinal)


@dataclass
class CheckResult:
    findings: list[Finding]
    failing: int                   # findings that count against --max-fallback
    max_fallback: int
    baseline: str | None
    gone: list[LintSite]           # baseline findings no longer present
    errors: int = 0                # inputs that could not be checked
    objects: int | None = None     # objects read (None: not counted, a library call)
    layout: LayoutGate | None = None
    gone_ordinals: list[int] = field(default_factory=list)   # of ``gone``, in the baseline

    @property
    def complete(self) -> bool:
        """Every input was read, and there was at least one: a check that read
        nothing, or not everything, never passes."""
        return not self.errors and self.objects != 0

    @property
    def passed(self) -> bool:
        return (self.complete and self.failing <= self.max_fallback
                and not (self.layout and self.layout.excess))

    @property
    def status(self) -> str:
        """``passed``, ``failed`` or ``incomplete`` (an input error, or no object
        read: exit 2 whatever was found)."""
        if not self.complete:
            return "incomplete"
        return "passed" if self.passed else "failed"

    @property
    def baselined(self) -> int:
        return sum(f.baselined for f in self.findings)

    @property
    def new(self) -> int:
        return sum(not f.baselined for f in self.findings)


def check(sites: list[LintSite], max_fallback: int = 0,
          baseline: Report | None = None, errors: int = 0,
          objects: int | None = None, layout_mode: str = "auto", policy: str = "seed",
          cache_line: int = 64) -> CheckResult:
    """The verdict on ``sites`` (every site, patchable ones too: they give the
    ordinals and the chance rate).  Structural findings fail when new; layout
    findings go through the layout gate (``layout_mode`` auto, chance or
    strict).  ``errors`` (inputs that failed) and ``objects`` (objects read)
    make it incomplete when there were errors or nothing read."""
    ords = ordinals(sites)
    fallback = [s for s in sites if not s.patchable]
    gone: list[LintSite] = []
    state: dict[int, str] = {}
    if baseline is not None:
        pairs, _, unmatched = match(sites, baseline.sites)
        for prev, cur in pairs:
            if not cur.patchable:
                state[id(cur)] = (NEW if prev.patchable
                                  else UNCHANGED if prev.reason == cur.reason else UPDATED)
            elif not prev.patchable:
                gone.append(prev)
        gone.extend(s for s in unmatched if not s.patchable)
        gone.sort(key=lambda s: (norm_object(s.object), s.order))
        bords = ordinals(baseline.sites)
    findings = [Finding(s, state.get(id(s), NEW) if baseline is not None else None,
                        ords[id(s)]) for s in fallback]
    gate = layout_gate(sites, sum(f.site.layout and not f.baselined for f in findings),
                       None if baseline is None else baseline.sites, layout_mode, policy,
                       cache_line)
    for f in findings:
        f.fails = not f.baselined and (not f.site.layout or gate.mode == "strict")
    return CheckResult(findings, sum(f.fails for f in findings), max_fallback,
                       None if baseline is None else baseline.path, gone, errors, objects,
                       gate, [bords[id(s)] for s in gone] if baseline is not None else [])


# --------------------------------------------------------------------- diff
@dataclass
class Diff:
    added: list[LintSite]
    removed: list[LintSite]
    changed: list[tuple[LintSite, LintSite]]      # (old, new)
    unchanged: list[tuple[LintSite, LintSite]]    # (old, new), same identity and verdict

    @property
    def moved(self) -> int:
        return sum(1 for o, n in self.unchanged
                   if (o.section, o.offset) != (n.section, n.offset) or o.source != n.source)

    @property
    def new_fallback(self) -> list[LintSite]:
        """Fallback sites of NEW that were not fallback in OLD: what fails the
        diff (and ``check NEW --baseline OLD``)."""
        return ([s for s in self.added if not s.patchable]
                + [n for o, n in self.changed
                   if not n.patchable and (o.patchable or o.kind != n.kind)])


def diff(old: list[LintSite], new: list[LintSite], old_root: str | None = None,
         new_root: str | None = None) -> Diff:
    """Sites of equal stable identity are the same site: unchanged (moved when
    their place differs) or changed (their verdict differs); of the rest, those
    in the same object and function with the same trampoline are changed (their
    kind differs); what remains is added or removed.  Object paths are taken
    relative to ``old_root`` and ``new_root`` (default: the current
    directory)."""
    kn, ko = keyer(new_root), keyer(old_root)
    same, rest_new, rest_old = match(new, old, kn, ko)
    unchanged = [(o, n) for o, n in same if (o.patchable, o.reason) == (n.patchable, n.reason)]
    changed = [(o, n) for o, n in same if (o.patchable, o.reason) != (n.patchable, n.reason)]
    kinds, added, removed = match(rest_new, rest_old, lambda s: kn(s)[:3], lambda s: ko(s)[:3])
    order = {id(s): i for i, s in enumerate(new)}
    changed = sorted(changed + kinds, key=lambda on: order[id(on[1])])
    return Diff(added, removed, changed, unchanged)
