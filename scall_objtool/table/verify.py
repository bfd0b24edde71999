"""Read an existing ``.static_call_sites`` table and verify it.

In a relocatable object the table is read through its relocations (each
field is an R_X86_64_PC32 against a symbol + addend); in a linked image it is
read from the bytes between ``__start_static_call_sites`` and
``__stop_static_call_sites``, each s32 field relative to its own address,
with the flags in the low bits of the key.

``verify`` checks every entry against what the scan proves: the entry points
at an instruction start, that instruction calls or jumps to the trampoline of
the entry's key, and the tail flag matches.  Sites the policy would list but
the table lacks are reported as missing -- except, in a linked image with a
seed table, a site that is patchable only at its final address: the tables
were written per object, before the link, where its section's alignment could
not prove it (a `depends` site), so its absence is no fault of the table.
Those are listed as *unlisted*, apart from failures.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core import TAIL_KINDS, ObjectResult, Options, Site, location
from ..core.elf import (ADDRESS_MASK, R_X86_64_PC32, SHT_REL, SHT_RELA, STT_SECTION, ElfFile,
                        display_name)
from ..errors import InputError
from ..vocabulary import KIND_TABLE
from . import (ENTRY, ENTRY_SIZE, FLAG_MASK, FLAG_TAIL, TABLE, image_table_bounds, key_name,
               object_table_section)


@dataclass(slots=True)
class TableEntry:
    index: int
    section_index: int | None = None
    section: str | None = None
    offset: int | None = None
    address: int | None = None
    key: str | None = None          # the key symbol's name (or the trampoline's)
    flags: int = 0
    problem: str | None = None      # the entry could not be read

    def where(self) -> str:
        loc = location(self.section, self.offset, None)
        addr = None if self.address is None else f"{self.address:#x}"
        if loc is not None:
            return f"{loc} ({addr})" if addr is not None else loc
        return addr or "?"


def read_table(elf: ElfFile, options: Options) -> list[TableEntry] | None:
    """The table's entries in order, or None when the object has none."""
    if elf.linked:
        return _read_image_table(elf, options)
    return _read_object_table(elf)


def _read_object_table(elf: ElfFile) -> list[TableEntry] | None:
    sec = object_table_section(elf)
    if sec is None:
        return None
    entries = [TableEntry(i) for i in range(sec.size // ENTRY_SIZE)]
    rsecs = [r for r in elf.relocation_sections()
             if r.info == sec.index and r.type in (SHT_RELA, SHT_REL)]
    fields: dict[int, list] = {}
    for rsec in rsecs:
        rel = elf.relocations(rsec)
        for i in range(len(rel)):
            fields.setdefault(rel.offset[i], []).append(
                (rel.sym[i], rel.type[i], rel.implicit_addend(i)))
    for e in entries:
        addr = fields.get(ENTRY_SIZE * e.index, [])
        key = fields.get(ENTRY_SIZE * e.index + 4, [])
        if len(addr) != 1 or len(key) != 1:
            e.problem = (f"expected one relocation for each field, found {len(addr)} and "
                         f"{len(key)}")
            continue
        (asym, atype, aadd), (ksym, ktype, kadd) = addr[0], key[0]
        if atype != R_X86_64_PC32 or ktype != R_X86_64_PC32:
            e.problem = "fields are not filled by R_X86_64_PC32 relocations"
            continue
        if not (0 <= asym < elf.num_symbols and 0 <= ksym < elf.num_symbols):
            e.problem = "relocation symbol index out of range"
            continue
        a = elf.symbol(asym)
        if not 0 < a.shndx < len(elf.sections):
            e.problem = f"site symbol {a.name} is not defined in a section"
            continue
        e.section_index = a.shndx
        e.section = elf.sections[a.shndx].name
        e.offset = (0 if a.type == STT_SECTION else a.value) + aadd
        k = elf.symbol(ksym)
        e.key = k.name
        e.flags = kadd
    return entries


def _read_image_table(elf: ElfFile, options: Options) -> list[TableEntry] | None:
    bounds = image_table_bounds(elf)
    if bounds is None:
        return None
    start, stop = bounds
    raw = elf.read_at(start, stop - start) if stop > start else b""
    if raw is None:
        raise InputError(f"the table at {start:#x}..{stop:#x} is not in the file", elf.path)
    names: dict[int, str] = {}
    for prefix in (options.key_prefix.encode(), options.tramp_prefix.encode()):
        for i in elf.names_with_prefix(prefix):
            s = elf.symbol(i)
            if 0 < s.shndx:
                names.setdefault(s.value, s.name)
    entries = []
    for i, (rel_addr, rel_key) in enumerate(ENTRY.iter_unpack(raw)):
        at = start + ENTRY_SIZE * i
        e = TableEntry(i)
        e.address = (at + rel_addr) & ADDRESS_MASK
        key = (at + 4 + rel_key) & ADDRESS_MASK
        e.flags = key & FLAG_MASK
        key &= ~FLAG_MASK & ADDRESS_MASK
        e.key = names.get(key, f"{key:#x}")
        sec = elf.section_at(e.address)
        if sec is None:
            e.problem = f"site address {e.address:#x} is outside every section"
        else:
            e.section_index, e.section, e.offset = sec.index, sec.name, e.address - sec.addr
        entries.append(e)
    return entries


@dataclass
class Verdict:
    """What verify found in one object.

    ``mismatches`` and ``missing`` say the table is wrong or incomplete (``ok``
    is false).  ``policy_findings`` are entries for sites the requested policy
    would not patch: a kernel table lists tail calls and crossing calls that the
    seed policy leaves alone, which is no fault of the table.  ``table_policy``
    is the policy the table was written under, as far as its entries show:
    ``kernel`` when it lists a site the requested policy would not."""
    path: str
    entries: int = 0
    mismatches: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    policy_findings: list[str] = field(default_factory=list)
    table_policy: str | None = None
    unlisted: list[str] = field(default_factory=list)   # linked image, seed: see above

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.missing

    def to_json(self) -> dict:
        return {"path": self.path, "entries": self.entries, "ok": self.ok,
                "mismatches": self.mismatches, "missing": self.missing,
                "policy_findings": self.policy_findings, "table_policy": self.table_policy,
                "unlisted": self.unlisted}


def verify(elf: ElfFile, result: ObjectResult, options: Options) -> Verdict:
    """Check an object's table against the sites the scan proved."""
    v = Verdict(elf.path)
    entries = read_table(elf, options)
    if entries is None:
        listed = [s for s in result.sites if s.patchable]
        if listed:
            v.missing.append(f"no {TABLE} table, but {len(listed)} site(s) to list")
        return v
    v.entries = len(entries)
    sites = {(s.section_index, s.offset): s for s in result.sites}
    seen: dict[tuple[int, int], int] = {}
    unexplained: list[tuple[int, str, TableEntry]] = []   # (mismatch slot, tag, entry)
    for e in entries:
        tag = f"entry {e.index} ({e.where()})"
        if e.problem:
            v.mismatches.append(f"{tag}: {e.problem}")
            continue
        where = (e.section_index, e.offset)
        if where in seen:
            v.mismatches.append(f"{tag}: lists the same site as entry {seen[where]}")
            continue
        seen[where] = e.index
        site = sites.get(where)
        if site is None:
            unexplained.append((len(v.mismatches), tag, e))
            v.mismatches.append("")         # filled below, once every function is decoded
            continue
        want_key = key_name(elf.symbol(site.tramp_sym).name_bytes, options)
        if e.key not in (display_name(want_key), site.trampoline):
            v.mismatches.append(f"{tag}: key {e.key} does not belong to {site.trampoline}, "
                                f"which the instruction {_verb(site)}")
        tail = bool(e.flags & FLAG_TAIL)
        if tail != (site.kind in TAIL_KINDS):
            v.mismatches.append(f"{tag}: tail flag is {int(tail)} but the instruction is a "
                                f"{site.kind}")
        if not site.patchable:
            v.policy_findings.append(f"{tag}: the site is not patchable under policy "
                                     f"{options.policy}: {site.reason}")
    explained = _explain_all(elf, [e for _slot, _tag, e in unexplained])
    for slot, tag, e in unexplained:
        v.mismatches[slot] = f"{tag}: {explained[e.index]}"
    # the table lists what its own policy lists: a table with an entry the
    # requested policy would not patch is a kernel one, which lists every
    # direct call and tail call
    v.table_policy = "kernel" if v.policy_findings else options.policy
    kernel = v.table_policy == "kernel"
    for s in result.sites:
        listed = KIND_TABLE[s.kind].direct if kernel else s.patchable
        if listed and (s.section_index, s.offset) not in seen:
            what = f"{_site_where(s)}: {s.kind} to {s.trampoline} is not in the table"
            if elf.linked and not kernel and s.kind == "call":
                v.unlisted.append(f"{what} (patchable at its final address; its object's "
                                  "table could not prove it before the link)")
            else:
                v.missing.append(what)
    return v


def _verb(site: Site) -> str:
    return KIND_TABLE[site.kind].verb


def _site_where(s: Site) -> str:
    loc = location(s.section, s.offset)
    if s.function:
        loc += f" ({location(s.function, s.function_offset)})"
    return loc


def _explain_all(elf: ElfFile, entries: list[TableEntry]) -> dict[int, str]:
    """Why each entry does not point at a proven site, by entry index.  The
    instructions are found section by section, each function decoded once."""
    from ..core.decode import instructions_at
    wanted: dict[int, list[int]] = {}
    for e in entries:
        wanted.setdefault(e.section_index, []).append(e.offset)
    found = {}
    for index, offsets in wanted.items():
        sec = elf.sections[index]
        if sec.executable:
            found[index] = instructions_at(elf, sec, offsets)
    return {e.index: _explain(elf.sections[e.section_index], e.offset,
                              found.get(e.section_index, {}).get(e.offset)) for e in entries}


def _explain(sec, offset: int, found: tuple | None) -> str:
    """Why an entry at ``sec``+``offset`` is not a site, given the instruction
    decoding found there (None: not reached)."""
    if not sec.executable:
        return f"points into {sec.name}, which is not executable"
    if found is None:
        return "points where decoding its function does not reach"
    start, length, mnem, func = found
    if start != offset:
        return (f"is not an instruction start: it points {offset - start} byte(s) into "
                f"'{mnem}' at {location(sec.name, start)}{func}")
    return f"the instruction there ('{mnem}'{func}) is not a call or jump to a trampoline"
