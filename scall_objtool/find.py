"""Find stage: trampolines, and the relocations that point at them.

A trampoline is a GLOBAL symbol whose name starts with the trampoline prefix
(objtool marks exactly these).  Every relocation whose symbol is a
trampoline -- or a section symbol whose target lands on a trampoline defined
in that section -- is a *candidate*; the decode stage proves or rejects it.

The common case, an object with no static calls at all, is answered from the
string table alone: when the prefix does not occur in ``.strtab`` no symbol
can carry it, and the decoder is never imported.
"""
from __future__ import annotations

from dataclasses import dataclass

from .elf import (SHF_EXECINSTR, SHN_LORESERVE, STB_GLOBAL, STT_SECTION, ElfFile, Section,
                  Symbol)


@dataclass(slots=True)
class Candidate:
    section: Section            # the section the relocation applies to
    offset: int                 # r_offset
    sym_index: int
    rtype: int
    addend: int
    tramp: Symbol               # the trampoline the relocation may reach
    sym_value_bias: int         # value of the relocation symbol minus tramp entry

    @property
    def executable(self) -> bool:
        return bool(self.section.flags & SHF_EXECINSTR)


def may_have_trampolines(elf: ElfFile, prefix: bytes) -> bool:
    """Cheap test: can any symbol name start with ``prefix``?"""
    return elf.symtab is not None and prefix in elf.strtab


def find_trampolines(elf: ElfFile, prefix: bytes) -> dict[int, Symbol]:
    """Global symbols named prefix+something, by symbol index."""
    if not may_have_trampolines(elf, prefix):
        return {}
    info = elf.syms.info
    out = {}
    for idx in elf.names_with_prefix(prefix):
        if info[idx] >> 4 != STB_GLOBAL:
            continue
        sym = elf.symbol(idx)
        if len(sym.name_bytes) > len(prefix):       # the bare prefix names no call
            out[idx] = sym
    return out


def find_candidates(elf: ElfFile, tramps: dict[int, Symbol]) -> list[Candidate]:
    """Relocations that may transfer control to (or refer to) a trampoline,
    sorted by (section index, offset)."""
    if not tramps:
        return []
    # Section symbols of sections that define a trampoline: a reference
    # through them (addend landing on the trampoline) counts too.
    defined: dict[int, dict[int, Symbol]] = {}
    for sym in tramps.values():
        if 0 < sym.shndx < SHN_LORESERVE:
            defined.setdefault(sym.shndx, {})[sym.value] = sym
    secsym_to_sec: dict[int, int] = {}
    if defined:
        cols = elf.syms
        for i, info in enumerate(cols.info):
            if info & 0xF == STT_SECTION and cols.shndx[i] in defined:
                secsym_to_sec[i] = cols.shndx[i]
    wanted = set(tramps) | set(secsym_to_sec)

    table = elf.section_by_name(".static_call_sites")
    out: list[Candidate] = []
    for rsec in elf.relocation_sections():
        target = elf.sections[rsec.info]
        if table is not None and target.index == table.index:
            continue        # an existing table's own entries are not uses
        rel = elf.relocations(rsec)
        for i, s in enumerate(rel.sym):
            if s not in wanted:
                continue
            off, rt, add = rel.offset[i], rel.type[i], rel.implicit_addend(i)
            if s in tramps:
                out.append(Candidate(target, off, s, rt, add, tramps[s], 0))
                continue
            # section symbol: which trampoline does symbol+addend+4 land on?
            t = defined[secsym_to_sec[s]].get(add + 4)
            if t is not None:
                out.append(Candidate(target, off, s, rt, add, t, -t.value))
    out.sort(key=lambda c: (c.section.index, c.offset))
    return out
