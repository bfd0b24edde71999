"""The words whose set may grow, each defined once: instruction kinds, fallback
reasons, kernel module loader models and output formats.

Everything that depends on one of these sets takes it from here: the stages
(``classify``, ``verify``, ``emit``, ``placement``, ``findings``), the SARIF
rules (``report/sarif.py``), the option choices (``options.py``) and the
dashboard, whose page gets the reason texts and instruction bytes as data
when it is built (``report/dashboard.py``).  The JSON schemas' enums are
written from these tables by ``scripts/schema_enums.py``.  What cannot be
derived -- the remedy of each reason (``remedy.REMEDIES``, code rather than
words), the decoder's opcodes, the commands' writers, the documents' tables
-- is checked against them by ``tests/test_vocabulary.py``, so a word added
in one place only fails the tests.

This is a module of its own, with no imports beyond ``records``, because
``options.py`` needs the models and formats and is on the per-object fast
path; ``core/__init__.py`` imports ``options.py`` (for ``Options``), so the tables
cannot live in ``core/__init__.py`` without an import cycle.
"""
from __future__ import annotations

from .records import record


@record(frozen=True)
class Kind:
    """How an instruction reaches a trampoline."""
    name: str
    text: str                   # in a sentence: "conditional tail call"
    verb: str                   # what the instruction does to its target: "calls"
    #: the bytes of the opcode (after any prefix), as the dashboard draws
    #: them: hex, ``?`` for a nibble the report does not tell
    opcode: tuple[str, ...]
    tail: bool = False          # its table entry carries the tail flag
    #: has a rel32 to patch (objtool lists it under the kernel policy)
    direct: bool = True
    #: the reason every such site is fallback under the seed policy, whatever
    #: its placement (None: judged by its prefixes and its crossing)
    reason: str | None = None


@record(frozen=True)
class Reason:
    """Why a site is fallback: the report's word, the gate that judges it in
    ``check`` (structural: changes with the code only; layout: with any edit
    before the call), the SARIF rule and the dashboard's one-line meaning."""
    name: str
    gate: str
    rule: str                   # SARIF rule name
    short: str                  # SARIF shortDescription
    full: str                   # SARIF fullDescription
    meaning: str                # the dashboard's text


@record(frozen=True)
class LoaderModel:
    """A kernel's module loader layout (placement.py lays it out): the
    releases it is used for by default, (major, minor) inclusive."""
    name: str
    releases: tuple[tuple[int, int], tuple[int, int]]


@record(frozen=True)
class Format:
    """An output format and the commands that write it."""
    name: str
    commands: tuple[str, ...]
    help: str | None = None     # added to --format's help where offered


def _table(*items) -> dict:
    return {i.name: i for i in items}


KIND_TABLE: dict[str, Kind] = _table(
    Kind("call", "call", "calls", ("e8",)),
    Kind("prefixed-call", "prefixed call", "calls", ("e8",)),
    Kind("tail", "tail call", "jumps to", ("e9",), tail=True, reason="tail-call"),
    Kind("jcc-tail", "conditional tail call", "jumps to", ("0f", "8?"), tail=True,
         reason="conditional-tail-call"),
    Kind("indirect", "indirect call", "jumps to", ("ff", "?5"), direct=False,
         reason="indirect"),
)

GATES = ("structural", "layout")

REASON_TABLE: dict[str, Reason] = _table(
    Reason(
        "tail-call", "structural", "TailCall",
        "Tail call to a static-call trampoline is not patched",
        "The site is a jmp (E9 rel32) to the trampoline, a tail call. The seed policy "
        "patches only direct calls, so this site keeps jumping through the out-of-line "
        "trampoline, which costs one extra jump on every call.",
        "a jmp to the trampoline: the seed policy patches only calls (--allow-tail does)"),
    Reason(
        "conditional-tail-call", "structural", "ConditionalTailCall",
        "Conditional tail call to a static-call trampoline is not patched",
        "The site is a conditional jump (0F 8x rel32) straight to the trampoline, a "
        "conditional tail call the compiler formed. A seed-style patcher rewrites only "
        "E8/E9 instructions, so the site always goes through the trampoline.",
        "a conditional jump to the trampoline: never patched in place"),
    Reason(
        "prefixed", "structural", "PrefixedCall",
        "Call to a static-call trampoline carries prefix bytes",
        "The call (E8 rel32) has prefix bytes (for example 2E or 67) before the opcode, "
        "so it is longer than 5 bytes and a 5-byte patch cannot replace it safely; the "
        "seed policy leaves it calling the trampoline.",
        "prefix bytes before the call: its displacement is not where a patcher writes"),
    Reason(
        "indirect", "structural", "IndirectCall",
        "Indirect call to a static-call trampoline through the GOT",
        "The site calls or jumps through a memory operand (for example "
        "call *__SCT__x@GOTPCREL(%rip)), usually because the object was built as "
        "position-independent code. There is no rel32 to rewrite, so the site can never "
        "be patched.",
        "a call through the GOT: nothing to patch in place"),
    Reason(
        "crosses-cache-line", "layout", "CrossesCacheLine",
        "Call to a static-call trampoline crosses a cache line",
        "The call instruction straddles a cache-line boundary wherever the section is "
        "placed, so rewriting its 4-byte displacement is not atomic for concurrently "
        "executing CPUs. The site keeps calling the trampoline.",
        "the instruction straddles a cache line at every placement"),
    Reason(
        "may-cross-cache-line", "layout", "MayCrossCacheLine",
        "Call to a static-call trampoline may cross a cache line",
        "Whether the call straddles a cache-line boundary depends on where the linker and "
        "loader place the section (its known alignment is smaller than the cache line), "
        "so it cannot be proven safe to patch. A kernel module's layout is modelled from "
        "its vermagic; there this verdict means the model did not apply (see the "
        "warning).",
        "the instruction straddles a cache line at some placements"),
)

#: Read from Debian's 6.1 and 6.12 sources and proven on both kernels by
#: scripts/module-placement: 6.1's layout_sections(), which 6.2-6.3 have too
#: (the mod_mem rework is 6.4), and 6.12's __layout_sections(), 6.4 onwards
LOADER_MODEL_TABLE: dict[str, LoaderModel] = _table(
    LoaderModel("6.1", ((6, 1), (6, 3))),
    LoaderModel("6.4", ((6, 4), (6, 12))),
)

FORMAT_TABLE: dict[str, Format] = _table(
    Format("text", ("scan", "verify", "check", "diff")),
    Format("json", ("scan", "verify", "check", "diff")),
    Format("sarif", ("check",)),
    Format("openmetrics", ("scan", "check"),
           "openmetrics: counts per directory, trampoline, kind and reason for "
           "node_exporter's textfile collector"),
)

KINDS = tuple(KIND_TABLE)
REASONS = tuple(REASON_TABLE)
LOADER_MODELS = tuple(LOADER_MODEL_TABLE)
FORMATS = tuple(FORMAT_TABLE)
#: kinds whose table entry carries the tail flag (1) in the key addend
TAIL_KINDS = frozenset(k.name for k in KIND_TABLE.values() if k.tail)


def reasons_of(gate: str) -> frozenset:
    """The reasons ``check`` judges by ``gate`` (one of GATES)."""
    return frozenset(r.name for r in REASON_TABLE.values() if r.gate == gate)


def formats_of(command: str) -> tuple[str, ...]:
    """The output formats ``command`` writes, in the table's order."""
    return tuple(f.name for f in FORMAT_TABLE.values() if command in f.commands)


def release_range(model: LoaderModel) -> str:
    """``6.1-6.3``: the releases a model is used for."""
    (a, b), (c, d) = model.releases
    return f"{a}.{b}-{c}.{d}"
