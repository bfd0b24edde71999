"""The data that flows between the stages: options, sites, references."""
from __future__ import annotations

from ..options import PLACEMENTS, POLICIES, Options  # noqa: F401  (beside its option table)
from ..records import LIST, record
from ..vocabulary import KINDS, REASONS, TAIL_KINDS  # noqa: F401  (one table each)

CROSSINGS = ("never", "always", "depends")
#: the one prefix a cs-prefixed call site (design 1, the prefix patcher) has
CS_PREFIX = b"\x2e"


def location(name: str | None, offset: int | None, default: str | None = "?") -> str | None:
    """``name+0x1c``: a place as a function, symbol or section name and an
    offset from it; ``default`` when either is unknown.  Every output (text,
    findings, SARIF, verify, messages) writes a place with this."""
    return f"{name}+{offset:#x}" if name is not None and offset is not None else default


def where(s) -> str:
    """Where a site, reference or finding ``s`` is: ``func+0x1c``, or
    ``section+0x1c`` outside any function."""
    return location(s.function, s.function_offset, None) or location(s.section, s.offset)


@record
class Site:
    """One proven control transfer to a trampoline's entry."""
    section: str
    section_index: int
    offset: int                 # instruction start within the section
    address: int | None         # final address (linked images only)
    function: str | None
    function_offset: int | None
    trampoline: str
    tramp_sym: int              # symbol index of the trampoline
    key: str
    kind: str
    length: int
    prefixes: bytes
    reloc_type: str
    alignment: int              # effective placement alignment (gcd with line)
    crossing: str | None = None
    patchable: bool = False
    reason: str | None = None
    source: dict | None = None  # {"file", "line"} of the caller after inlining (lines.py)
    inlined: list = LIST        # [{"function", "file", "line"}], innermost frame first
    placement: dict | None = None  # what the crossing verdict rests on (placement.py)

    def to_json(self) -> dict:
        return {
            "section": self.section, "offset": self.offset, "address": self.address,
            "function": self.function, "function_offset": self.function_offset,
            "trampoline": self.trampoline, "key": self.key, "kind": self.kind,
            "length": self.length, "prefixes": self.prefixes.hex(),
            "crossing": self.crossing, "patchable": self.patchable, "reason": self.reason,
            "alignment": self.alignment, "reloc_type": self.reloc_type,
            "source": self.source, "inlined": self.inlined,
            "placement": None if self.placement is None else dict(self.placement),
        }


@record
class Reference:
    """A relocation to a trampoline that is not a proven site."""
    section: str
    offset: int
    function: str | None
    function_offset: int | None
    symbol: str
    reloc_type: str
    kind: str                   # address | data | unproven
    detail: str

    def to_json(self) -> dict:
        return {"section": self.section, "offset": self.offset, "function": self.function,
                "function_offset": self.function_offset, "symbol": self.symbol,
                "reloc_type": self.reloc_type, "kind": self.kind, "detail": self.detail}


@record
class ObjectResult:
    """What the scan found in one object."""
    path: str
    elf_type: str
    sites: list[Site] = LIST
    references: list[Reference] = LIST
    existing_table: dict | None = None
    warnings: list[str] = LIST
    no_code: str | None = None      # why the object has no machine code to check (LTO)
    compiler: str | None = None     # gcc or clang, from .comment (objects with sites)

    def summary(self) -> dict:
        return summarize([self])

    def to_json(self) -> dict:
        return {"path": self.path, "elf_type": self.elf_type,
                "sites": [s.to_json() for s in self.sites],
                "references": [r.to_json() for r in self.references],
                "existing_table": self.existing_table,
                "compiler": self.compiler,
                "summary": self.summary()}


def summarize(objects, per_object: bool = False) -> dict:
    """Counts over ``objects``: sites, patchable, fallback, references, and the
    breakdowns ``by_kind`` (sites), ``by_reason`` (fallback sites) and
    ``by_trampoline`` (sites, patchable, fallback of each trampoline).  With
    ``per_object`` also ``by_object``: one entry per object, in input order."""
    sites = patchable = refs = 0
    by_kind: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    by_tramp: dict[str, dict[str, int]] = {}
    by_object = []
    for obj in objects:
        refs += len(obj.references)
        o_sites = o_patchable = 0
        for s in obj.sites:
            o_sites += 1
            o_patchable += s.patchable
            by_kind[s.kind] = by_kind.get(s.kind, 0) + 1
            if s.reason:
                by_reason[s.reason] = by_reason.get(s.reason, 0) + 1
            t = by_tramp.setdefault(s.trampoline, {"sites": 0, "patchable": 0, "fallback": 0})
            t["sites"] += 1
            t["patchable" if s.patchable else "fallback"] += 1
        sites += o_sites
        patchable += o_patchable
        if per_object:
            by_object.append({"path": obj.path, "sites": o_sites, "patchable": o_patchable,
                              "fallback": o_sites - o_patchable,
                              "references": len(obj.references)})
    out = {"sites": sites, "patchable": patchable, "fallback": sites - patchable,
           "references": refs, "by_kind": dict(sorted(by_kind.items())),
           "by_reason": dict(sorted(by_reason.items())),
           "by_trampoline": dict(sorted(by_tramp.items()))}
    if per_object:
        out["by_object"] = by_object
    return out
