"""The data that flows between the stages: options, sites, references."""
from __future__ import annotations

from .records import LIST, record

KINDS = ("call", "prefixed-call", "tail", "jcc-tail", "indirect")
CROSSINGS = ("never", "always", "depends")
REASONS = ("tail-call", "conditional-tail-call", "prefixed", "indirect",
           "crosses-cache-line", "may-cross-cache-line")
POLICIES = ("seed", "kernel")
#: where a kernel module's sections are placed (see placement.py): auto picks
#: the loader model from the module's vermagic, off uses section alignment
#: only, a model name forces that model
PLACEMENTS = ("auto", "off", "6.1", "6.4")

#: the one prefix a cs-prefixed call site (design 1, the prefix patcher) has
CS_PREFIX = b"\x2e"

#: kinds whose table entry carries the tail flag (1) in the key addend
TAIL_KINDS = frozenset({"tail", "jcc-tail"})


@record(frozen=True)
class Options:
    """Everything that changes what the tool finds, classifies or writes."""
    policy: str = "seed"
    allow_tail: bool = False
    allow_prefixed: bool = False
    cache_line: int = 64
    assume_align: int | None = None
    tramp_prefix: str = "__SCT__"
    key_prefix: str = "__SCK__"
    module: bool = False
    strict_keys: bool = False
    placement: str = "auto"

    def __post_init__(self):
        from .errors import UsageError
        if self.policy not in POLICIES:
            raise UsageError(f"unknown policy {self.policy!r} (choose from {', '.join(POLICIES)})")
        if self.cache_line <= 0 or self.cache_line & (self.cache_line - 1):
            raise UsageError(f"--cache-line must be a power of two, not {self.cache_line}")
        if self.assume_align is not None and (
                self.assume_align <= 0 or self.assume_align & (self.assume_align - 1)):
            raise UsageError(f"--assume-align must be a power of two, not {self.assume_align}")
        if self.placement not in PLACEMENTS:
            raise UsageError(f"unknown placement {self.placement!r} "
                             f"(choose from {', '.join(PLACEMENTS)})")
        if not self.tramp_prefix:
            raise UsageError("--tramp-prefix must not be empty")
        if not self.key_prefix:
            raise UsageError("--key-prefix must not be empty")

    def to_json(self) -> dict:
        return {"name": self.policy, "allow_tail": self.allow_tail,
                "allow_prefixed": self.allow_prefixed,
                "cache_line": self.cache_line, "assume_align": self.assume_align,
                "module": self.module, "strict_keys": self.strict_keys,
                "tramp_prefix": self.tramp_prefix, "key_prefix": self.key_prefix,
                "placement": self.placement}


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
