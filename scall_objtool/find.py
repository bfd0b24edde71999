"""Find stage: trampolines, and the relocations that point at them.

A trampoline is a GLOBAL symbol whose name starts with the trampoline prefix
(objtool marks exactly these).  Every relocation whose symbol is a
trampoline -- or a section symbol whose target lands on a trampoline defined
in that section -- is a *candidate*; the decode stage proves or rejects it.

The common case, an object with no static calls at all, is answered from the
string table alone: when the prefix does not occur in ``.strtab`` no symbol
can carry it, and neither numpy nor the decoder is imported.
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
    import numpy as np
    strtab = elf.strtab
    starts = []
    pos = strtab.find(prefix)
    while pos >= 0:
        starts.append(pos)
        pos = strtab.find(prefix, pos + 1)
    syms = elf.symbols
    mask = np.isin(syms["name"], np.asarray(starts, dtype=np.uint32))
    mask &= (syms["info"] >> 4) == STB_GLOBAL
    out = {}
    for idx in np.flatnonzero(mask).tolist():
        sym = elf.symbol(idx)
        if len(sym.name_bytes) > len(prefix):       # the bare prefix names no call
            out[idx] = sym
    return out


def find_candidates(elf: ElfFile, tramps: dict[int, Symbol]) -> list[Candidate]:
    """Relocations that may transfer control to (or refer to) a trampoline,
    sorted by (section index, offset)."""
    if not tramps:
        return []
    import numpy as np
    tramp_idx = np.asarray(sorted(tramps), dtype=np.int64)

    # Section symbols of sections that define a trampoline: a reference
    # through them (addend landing on the trampoline) counts too.
    defined: dict[int, dict[int, Symbol]] = {}
    for sym in tramps.values():
        if 0 < sym.shndx < SHN_LORESERVE:
            defined.setdefault(sym.shndx, {})[sym.value] = sym
    secsym_to_sec: dict[int, int] = {}
    if defined:
        syms = elf.symbols
        is_sec = np.flatnonzero((syms["info"] & 0xF) == STT_SECTION)
        if len(is_sec):
            shndx = elf.section_index_of(is_sec)
            for si, sh in zip(is_sec.tolist(), shndx.tolist()):
                if sh in defined:
                    secsym_to_sec[si] = sh
    secsym_idx = np.asarray(sorted(secsym_to_sec), dtype=np.int64)

    table = elf.section_by_name(".static_call_sites")
    out: list[Candidate] = []
    nsyms = elf.num_symbols
    for rsec in elf.relocation_sections():
        target = elf.sections[rsec.info]
        if table is not None and target.index == table.index:
            continue        # an existing table's own entries are not uses
        offset, sym, rtype, addend = elf.relocations(rsec)
        hit = np.isin(sym, tramp_idx)
        if len(secsym_idx):
            hit |= np.isin(sym, secsym_idx)
        for i in np.flatnonzero(hit).tolist():
            s = int(sym[i])
            if s >= nsyms:
                continue
            off, rt, add = int(offset[i]), int(rtype[i]), int(addend[i])
            if s in tramps:
                out.append(Candidate(target, off, s, rt, add, tramps[s], 0))
                continue
            # section symbol: which trampoline does symbol+addend+4 land on?
            entries = defined[secsym_to_sec[s]]
            t = entries.get(add + 4)
            if t is not None:
                out.append(Candidate(target, off, s, rt, add, t, -t.value))
    out.sort(key=lambda c: (c.section.index, c.offset))
    return out
