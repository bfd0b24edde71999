"""The text a person reads: scan, --stats, verify, check, diff and write."""
from __future__ import annotations

from collections import Counter

from ..core import ObjectResult, Options, location, summarize
from ..vocabulary import KINDS
from . import esc, plural, verdict

#: the kind column: as wide as the longest kind, and "reference"
KIND_WIDTH = max(map(len, (*KINDS, "reference")))


def _lines(lines: list[str]) -> str:
    return "".join(x + "\n" for x in lines)


# ------------------------------------------------------------------ shared
def skipped_text(skipped: dict | None) -> str:
    """``; skipped 3 of another ELF class or machine, 2 repeats of other objects
    (Kbuild), 1 symlink out of the tree, 1 duplicate of other inputs (same file)``."""
    if not skipped:
        return ""
    parts = []
    if skipped.get("foreign"):
        parts.append(f"{skipped['foreign']} of another ELF class or machine")
    if skipped.get("repeated"):
        parts.append(f"{plural(skipped['repeated'], 'repeat')} of other objects (Kbuild)")
    if skipped.get("outside"):
        parts.append(f"{plural(skipped['outside'], 'symlink')} out of the tree")
    if skipped.get("duplicate"):
        parts.append(f"{plural(skipped['duplicate'], 'duplicate')} of other inputs "
                     "(same file)")
    if skipped.get("linked"):
        parts.append(f"{plural(skipped['linked'], 'part')} of vmlinux or modules "
                     "(judged there)")
    return "; skipped " + ", ".join(parts)


#: --group-by: what a site is grouped by, from its object path (relative to the
#: objects' common directory) and the site
GROUPS = {
    "dir": lambda obj, s: _object_dir(obj),
    "trampoline": lambda obj, s: s.trampoline,
    "kind": lambda obj, s: s.kind,
    "reason": lambda obj, s: s.reason or "patchable",
}


def _table(head: tuple, rows: list[tuple]) -> list[str]:
    """Rows under a header, the first column left-aligned, the others right."""
    cells = [tuple(str(c) for c in head)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    out = []
    for n, r in enumerate(cells):
        first = r[0].ljust(widths[0])
        rest = "  ".join(c.rjust(w) for c, w in zip(r[1:], widths[1:]))
        out.append(f"  {first}  {rest}".rstrip())
        if n == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def _object_dir(rel: str) -> str:
    from .readback import object_dir
    return object_dir(rel)


def _grouped(pairs, group_by: str, counts, head: tuple) -> list[str]:
    """A table of (object, site) pairs grouped by ``group_by``: ``counts(sites)``
    gives a group's numbers, the rows sorted by them (largest first)."""
    from .readback import common_root, relative_to
    key = GROUPS[group_by]
    root = common_root([obj for obj, _ in pairs])
    groups: dict[str, list] = {}
    for obj, site in pairs:
        groups.setdefault(esc(key(relative_to(obj, root), site)), []).append(site)
    rows = [(name, *counts(sites)) for name, sites in groups.items()]
    rows.sort(key=lambda r: (tuple(-c for c in r[1:]), r[0]))
    return [f"by {group_by}:"] + _table((group_by, *head), rows) if rows else []


# --------------------------------------------------------------------- scan
def _has_something_to_say(r: ObjectResult) -> bool:
    return bool(r.sites or r.references or r.existing_table is not None)


def scan_text(results: list[ObjectResult], options: Options, skipped: dict | None = None,
              quiet: bool = False, group_by: str | None = None, stats: bool = False) -> str:
    """The objects that have sites, references or a table, a line a site (or,
    with ``group_by``, one table of groups), the ``--stats`` tables, and a
    summary line last."""
    lines = []
    if group_by and not quiet:
        lines += _grouped([(r.path, s) for r in results for s in r.sites], group_by,
                          lambda sites: (len(sites), sum(not s.patchable for s in sites)),
                          ("sites", "fallback"))
    elif not quiet:
        for r in filter(_has_something_to_say, results):
            lines.extend(_object_lines(r))
    if stats:
        lines.append(stats_text(results).rstrip("\n"))
    t = summarize(results)
    lines.append(f"summary: {plural(len(results), 'object')}, "
                 f"{plural(t['sites'], 'site')}, {t['patchable']} patchable, "
                 f"{t['fallback']} fallback, {plural(t['references'], 'reference')} "
                 f"(policy {options.policy})"
                 f"{skipped_text(skipped)}")
    return _lines(lines)


def _object_lines(r: ObjectResult) -> list[str]:
    s = r.summary()
    head = (f"{r.path}: {plural(s['sites'], 'site')} "
            f"({s['patchable']} patchable, {s['fallback']} fallback), "
            f"{plural(s['references'], 'reference')}")
    if r.existing_table is not None:
        head += f"; has a table of {plural(r.existing_table['entries'], 'entry')}"
    lines = [head]
    for site in r.sites:
        cross = site.crossing or "-"
        pre = f" [{site.prefixes.hex()}]" if site.prefixes else ""
        where = (f"{site.address:#x}" if site.address is not None
                 else location(site.section, site.offset))
        lines.append(f"  {where:<22} "
                     f"{location(site.function, site.function_offset):<32} "
                     f"{site.kind:<{KIND_WIDTH}} {site.trampoline}{pre}  len {site.length}  "
                     f"crossing {cross} ({_placed(site)})  "
                     f"{verdict(site.patchable, site.reason)}")
    for ref in r.references:
        lines.append(f"  {location(ref.section, ref.offset):<22} "
                     f"{location(ref.function, ref.function_offset):<32} "
                     f"{'reference':<{KIND_WIDTH}} {ref.symbol}  {ref.reloc_type}  {ref.kind}: "
                     f"{ref.detail}")
    return lines


def _placed(site) -> str:
    """What a site's crossing verdict rests on: ``module text+0x1c3, model 6.1``
    for a module laid out by the loader model, else the known alignment."""
    p = site.placement
    if p and p.get("basis") == "model":
        return f"module {location(p['region'], p['offset'] + site.offset)}, model {p['model']}"
    return f"align {site.alignment}"


def stats_text(results: list[ObjectResult]) -> str:
    """The ``--stats`` tables: sites per trampoline, kind, reason and object.
    Trampolines and objects are listed when they have something to say (a
    fallback site; for objects, a reference too), largest fallback first;
    each table ends with its total, and says how many rows it left out."""
    t = summarize(results, per_object=True)
    out: list[str] = []

    def table(title: str, head: tuple, rows: list[tuple], total: tuple,
              quiet: int = 0, what: str = "") -> None:
        if not rows and not quiet:
            return
        out.append(f"{title}:")
        out.extend(_table(head, rows + [("total", *total)]))
        if quiet:
            out.append(f"  ({plural(quiet, what)} without fallback not listed)")

    tramps = [(k, v["sites"], v["patchable"], v["fallback"])
              for k, v in t["by_trampoline"].items()]
    loud = sorted((r for r in tramps if r[3]), key=lambda r: (-r[3], r[0]))
    table("by trampoline", ("trampoline", "sites", "patchable", "fallback"), loud,
          (t["sites"], t["patchable"], t["fallback"]), len(tramps) - len(loud), "trampoline")
    table("by kind", ("kind", "sites"), list(t["by_kind"].items()), (t["sites"],))
    table("by reason", ("reason", "fallback"), list(t["by_reason"].items()), (t["fallback"],))
    objs = [(o["path"], o["sites"], o["patchable"], o["fallback"], o["references"])
            for o in t["by_object"] if o["sites"] or o["references"]]
    loud = sorted((r for r in objs if r[3] or r[4]), key=lambda r: (-r[3], -r[4], r[0]))
    table("by object", ("object", "sites", "patchable", "fallback", "references"), loud,
          (t["sites"], t["patchable"], t["fallback"], t["references"]),
          len(objs) - len(loud), "object")
    return _lines(out)


# ------------------------------------------------------------------- verify
def verify_text(verdicts, options: Options, skipped: dict | None = None,
                quiet: bool = False, by_table: bool = False) -> str:
    """The objects whose table is wrong or incomplete, or has policy findings,
    and a summary line last (``by_table``: each table judged by its own
    policy, which the summary counts)."""
    lines = []
    for v in verdicts:
        if not v.ok:
            lines.append(f"{v.path}: FAILED ({plural(v.entries, 'entry')}, {len(v.mismatches)} "
                         f"mismatched, {len(v.missing)} missing)")
            if not quiet:
                lines.extend(f"{v.path}: mismatch: {m}" for m in v.mismatches)
                lines.extend(f"{v.path}: missing: {m}" for m in v.missing)
        if v.policy_findings and not quiet:
            lines.extend(f"{v.path}: policy: {m}" for m in v.policy_findings)
        if v.unlisted and not quiet:
            lines.extend(f"{v.path}: unlisted: {m}" for m in v.unlisted)
    bad = sum(not v.ok for v in verdicts)
    findings = sum(bool(v.policy_findings) for v in verdicts)
    lines.append(f"verify: {plural(len(verdicts), 'object')}, "
                 f"{plural(sum(v.entries for v in verdicts), 'entry')}, {bad} failed, "
                 f"{findings} with policy findings ({_policies(verdicts, options, by_table)})"
                 f"{skipped_text(skipped)}")
    return _lines(lines)


def _policies(verdicts, options: Options, by_table: bool) -> str:
    if not by_table:
        return f"policy {options.policy}"
    tables = Counter(v.table_policy for v in verdicts if v.table_policy)
    return "policy of each table" + (": " + ", ".join(
        f"{n} {p}" for p, n in sorted(tables.items())) if tables else "")


# -------------------------------------------------------------------- write
_WRITE_VERBS = {"written": "wrote {}", "dry-run": "would write {}",
                "unchanged": "unchanged", "copied": "copied unchanged",
                "skipped-existing": "table exists, unchanged"}


def write_lines(display: str, outcome, options: Options, details: bool) -> list[str]:
    """What ``write`` prints for one object: a summary line, and with ``details``
    one line a site."""
    from ..inputs import show
    s = outcome.result.summary()
    counts = f"{plural(s['sites'], 'site')}, {s['patchable']} patchable, {s['fallback']} fallback"
    verb = _WRITE_VERBS[outcome.action].format(plural(outcome.entries, "entry"))
    target = f" -> {show(outcome.output)}" if outcome.output != outcome.path else ""
    lines = [f"{display}{target}: {verb} ({counts}; policy {options.policy})"]
    if details and outcome.action in ("written", "dry-run"):
        for site in outcome.result.sites:
            tag = "entry" if site.patchable else verdict(False, site.reason)
            lines.append(f"  {location(site.section, site.offset)} "
                         f"{location(site.function, site.function_offset)} {site.kind} "
                         f"{site.trampoline} crossing {site.crossing or '-'}: {tag}")
    return lines


# -------------------------------------------------------------- check, diff
def display_path(path: str, root: str | None = None) -> str:
    """A source or object path as shown to a user: relative to ``root`` (the
    current directory by default) when it lies below it."""
    from .paths import base_dir, relative_below
    return relative_below(path, base_dir(root))


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


def finding_line(site, root: str | None = None) -> str:
    """One finding in the form compilers (source known: the caller's line, the
    inline chain, then the object and function) or objtool (object) use."""
    loc = _finding_location(site, root)
    if loc is None:
        return esc(f"{site.object}: {site.where}: warning: {site.message} [scall-objtool]")
    return esc(f"{loc}: warning: {site.message}{via_text(site.inlined, root)} "
               f"[{site.object}: {site.where}]")


def remedy_line(site, root: str | None = None, line: int = 64) -> str:
    """The line after a finding: ``LOCATION: note: remedy: ...`` (the
    remedy for the site's reason and its object's compiler, remedy.py)."""
    loc = _finding_location(site, root) or f"{site.object}: {site.where}"
    return esc(f"{loc}: note: remedy: {site.remedy(line).text}")


def _finding_location(site, root: str | None) -> str | None:
    return location_text(site.source.get("file"), site.source.get("line"), root) \
        if site.source else None


def check_text(res, summary: dict, policy: str, root: str | None = None,
               quiet: bool = False, group_by: str | None = None, stats: str = "",
               line: int = 64) -> str:
    """The findings that fail the check, a line each followed by its remedy (or,
    with ``group_by``, a table of groups of findings), and a summary line last.
    Layout findings within the chance limit do not fail and are not listed
    (``scan`` lists every site); when the limit is exceeded the new ones are."""
    gate = res.layout
    over = bool(gate and gate.excess)
    shown = [f for f in res.findings if f.fails or (over and f.site.layout and not f.baselined)]
    if quiet:
        lines = []
    elif group_by:
        known = {id(f.site) for f in res.findings if f.baselined}
        lines = _grouped([(f.site.object, f.site) for f in res.findings], group_by,
                         lambda sites: (sum(id(s) not in known for s in sites), len(sites)),
                         ("new" if res.baseline is not None else "failing", "findings"))
    else:
        lines = [text for f in shown
                 for text in (finding_line(f.site, root), remedy_line(f.site, root, line))]
    head = (f"summary: {plural(summary['objects'], 'object')}, "
            f"{plural(summary['sites'], 'site')}, {summary['patchable']} patchable, "
            f"{summary['fallback']} fallback (policy {policy})"
            f"{skipped_text(summary.get('skipped'))}")
    placed = summary.get("placement")
    mixed = placed and placed["exact"] and placed["provisional"]
    if placed and placed["exact"]:
        head += (f"; {placed['exact']} sites judged exactly, "
                 f"{placed['provisional']} provisional")
        if mixed and not quiet:
            lines.extend(provisional_lines(placed["provisional_objects"]))
    if res.baseline is not None:
        head += f"; baseline {res.baseline}: {res.baselined} known, {res.new} new"
        if res.gone:
            head += f", {len(res.gone)} fixed"
    if stats:
        lines.append(stats.rstrip("\n"))
    chance = bool(gate and gate.calls and gate.mode == "chance")
    what = (("new " if res.baseline is not None else "")
            + ("structural " if chance else "") + "fallback site")
    detail = plural(res.failing, what)
    if res.failing or res.max_fallback:
        detail += f", at most {res.max_fallback} allowed"
    if gate and gate.calls:
        detail += f"; {layout_text(gate)}"
    lines.append(f"{head}; {check_status(res, detail)}")
    return _lines(lines)


#: provisional objects listed by name; the JSON summary lists them all
PROVISIONAL_SHOWN = 10


def provisional_lines(objects: list[dict]) -> list[str]:
    """Which sites are provisional, and why: objects linked into no artifact the
    run read, whose crossing verdicts rest on section alignment."""
    out = [esc(f"provisional: {o['path']}: {plural(o['sites'], 'site')} (not linked into "
               "vmlinux or a module in the tree: crossing by section alignment)")
           for o in objects[:PROVISIONAL_SHOWN]]
    if len(objects) > PROVISIONAL_SHOWN:
        out.append(f"provisional: ... and {len(objects) - PROVISIONAL_SHOWN} more objects "
                   "(the JSON summary lists them)")
    return out


def layout_text(gate) -> str:
    """``layout: 3 crossing of 120 calls, chance 7.5, limit 16`` (``over the
    limit of 16`` when it fails), or, strict, ``layout (strict, pinned
    alignment): 3 crossing of 120 calls, 1 new``."""
    counts = f"{gate.findings} crossing of {plural(gate.calls, 'call')}"
    if gate.mode == "chance":
        limit = f"over the limit of {gate.limit}" if gate.excess else f"limit {gate.limit}"
        return f"layout: {counts}, chance {gate.expected:.1f}, {limit}"
    why = ", pinned alignment" if gate.pinned else ""
    return f"layout (strict{why}): {counts}, {gate.new} new"


def check_status(res, detail: str) -> str:
    """The verdict at the end of check's summary line: ``check passed: ...``,
    ``check failed: ...``, or, when an input could not be read or none was,
    ``check incomplete: 2 input errors`` (never a pass), with what was found
    in the rest."""
    if res.status != "incomplete":
        return f"check {res.status}: {detail}"
    why = [plural(res.errors, "input error")] if res.errors else []
    if not res.objects:
        why.append("no object read")
    found = f" ({detail} in the objects read)" if res.objects else ""
    return f"check incomplete: {', '.join(why)}{found}"


def _source(s) -> str:
    loc = location_text(s.source.get("file"), s.source.get("line")) if s.source else None
    return f" ({loc})" if loc else ""


def diff_text(d, quiet: bool = False) -> str:
    """Added, removed and changed sites (none with ``quiet``), a summary last."""
    lines = []
    newfb = {id(s) for s in d.new_fallback}

    def mark(s) -> str:
        return "  [new fallback]" if id(s) in newfb else ""

    def site(s) -> str:
        return esc(f"{display_path(s.object)}: {s.where}: {s.kind} {s.trampoline}: "
                   f"{verdict(s.patchable, s.reason)}{_source(s)}")

    for s in d.added if not quiet else ():
        lines.append(f"added    {site(s)}{mark(s)}")
    for s in d.removed if not quiet else ():
        lines.append(f"removed  {site(s)}")
    for o, n in d.changed if not quiet else ():
        kind = f"{o.kind} -> {n.kind}" if o.kind != n.kind else n.kind
        lines.append(esc(f"changed  {display_path(n.object)}: {n.where}: {kind} {n.trampoline}: "
                         f"{verdict(o.patchable, o.reason)} -> "
                         f"{verdict(n.patchable, n.reason)}{_source(n)}{mark(n)}"))
    lines.append(f"summary: {len(d.added)} added, {len(d.removed)} removed, "
                 f"{len(d.changed)} changed, {len(d.unchanged)} unchanged "
                 f"({d.moved} moved); {plural(len(d.new_fallback), 'new fallback site')}")
    return _lines(lines)
