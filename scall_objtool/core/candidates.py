"""Find stage: trampolines, and the relocations that point at them.

A trampoline is a GLOBAL symbol whose name starts with the trampoline prefix
(objtool marks exactly these in an object).  In a linked image a LOCAL code
symbol counts too: a trampoline with hidden visibility (the shipped runtime's)
or from a static link is made LOCAL by the linker.  Every relocation whose symbol is a
trampoline -- or a section symbol whose target lands on a trampoline defined
in that section -- is a *candidate*; the decode stage proves or rejects it.

The common case, an object with no static calls at all, is answered from the
string table alone: when the prefix does not occur in ``.strtab`` no symbol
can carry it, and the decoder is never imported.
"""
from __future__ import annotations

from ..records import record
from .elf import (
    ADDRESS_MASK,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHN_LORESERVE,
    SHT_PROGBITS,
    STB_GLOBAL,
    STB_LOCAL,
    STT_FUNC,
    STT_NOTYPE,
    STT_SECTION,
    ElfFile,
    Section,
    Symbol,
)


@record
class Candidate:
    section: Section            # the section the relocation applies to
    offset: int                 # r_offset
    sym_index: int
    rtype: int
    addend: int
    tramp: Symbol               # the trampoline the relocation may reach
    sym_value_bias: int         # value of the relocation symbol minus tramp entry
    from_code: bool = False     # found in a linked image's code, not a relocation

    @property
    def executable(self) -> bool:
        return bool(self.section.flags & SHF_EXECINSTR)


def may_have_trampolines(elf: ElfFile, prefix: bytes) -> bool:
    """Cheap test: can any symbol name start with ``prefix``?"""
    return elf.symtab is not None and prefix in elf.strtab


def find_trampolines(elf: ElfFile, prefix: bytes) -> dict[int, Symbol]:
    """Global symbols named prefix+something, by symbol index; in a linked image
    also local ones of code (a hidden trampoline after the link)."""
    if not may_have_trampolines(elf, prefix):
        return {}
    info = elf.syms.info
    local_ok = elf.linked
    out = {}
    for idx in elf.names_with_prefix(prefix):
        bind, stype = info[idx] >> 4, info[idx] & 0xF
        if bind != STB_GLOBAL and not (local_ok and bind == STB_LOCAL
                                       and stype in (STT_FUNC, STT_NOTYPE)):
            continue
        sym = elf.symbol(idx)
        if sym.shndx >= SHN_LORESERVE:
            continue        # SHN_ABS, SHN_COMMON: a value or data, not code
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
    # (a linked image's sites name the trampoline itself: its references through
    # a section symbol, 520,000 entries of the 6.1 vmlinux, are not read)
    secsym_to_sec: dict[int, int] = {}
    if defined and not elf.linked:
        cols = elf.syms
        for i, info in enumerate(cols.info):
            if info & 0xF == STT_SECTION and cols.shndx[i] in defined:
                secsym_to_sec[i] = cols.shndx[i]
    wanted = set(tramps) | set(secsym_to_sec)

    table = elf.section_by_name(".static_call_sites")
    out: list[Candidate] = []
    linked = elf.linked
    for rsec in elf.relocation_sections():
        target = elf.sections[rsec.info]
        if table is not None and target.index == table.index:
            continue        # an existing table's own entries are not uses
        if not target.flags & SHF_ALLOC:
            continue        # debug information and notes are not uses either
        rel = elf.relocations(rsec)
        # the entries naming a wanted symbol, picked at C speed (kvm.ko: 1,000 of 42,000)
        for i, s in rel.with_symbols(wanted):
            off, rt, add = rel.entry(i)
            if linked:
                off -= target.addr          # r_offset is an address in a linked image
                if not 0 <= off < target.size:
                    continue
                if s not in tramps:
                    continue
            if s in tramps:
                out.append(Candidate(target, off, s, rt, add, tramps[s], 0))
                continue
            # section symbol: which trampoline does symbol+addend+4 land on?
            t = defined[secsym_to_sec[s]].get(add + 4)
            if t is not None:
                out.append(Candidate(target, off, s, rt, add, t, -t.value))
    out.sort(key=lambda c: (c.section.index, c.offset))
    return out


def has_code_relocations(elf: ElfFile) -> bool:
    """Does a linked image keep relocations for its code (``--emit-relocs``)?"""
    return any(elf.sections[r.info].executable for r in elf.relocation_sections())


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


#: opcode positions ``find_code_candidates`` examines at once
CODE_CHUNK = 1 << 20


def find_code_candidates(elf: ElfFile, tramps: dict[int, Symbol]) -> list[Candidate]:
    """Direct branches in a linked image whose destination is a trampoline.

    Every executable section is scanned in bulk with numpy: each E8/E9 byte
    (call/jmp rel32) and each 0F 8x pair (jcc rel32) is read as an opcode,
    its destination computed from the following rel32, and kept when it is a
    trampoline's address.  Candidates still have to be proven by decoding:
    an opcode byte found this way may lie inside another instruction."""
    targets = {}
    for t in tramps.values():
        if 0 < t.shndx < SHN_LORESERVE:
            targets.setdefault(t.value, t)
    if not targets:
        return []
    import numpy as np
    want = np.array(sorted(_signed64(v) for v in targets), dtype=np.int64)
    out: list[Candidate] = []
    for sec in elf.sections:
        if not sec.executable or sec.type != SHT_PROGBITS or sec.size < 5:
            continue
        # in chunks of CODE_CHUNK opcode positions (and the 5 bytes after the
        # last): whole, the masks of a 16 MiB .text are 16 MiB each, a hundred
        # MiB of fresh pages for one pass
        for at in range(0, sec.size, CODE_CHUNK):
            m = min(CODE_CHUNK + 5, sec.size - at)
            code = np.frombuffer(elf.data, dtype=np.uint8, count=m, offset=sec.offset + at)
            base = _signed64(sec.addr) + at
            n1, n2 = min(CODE_CHUNK, m - 4), min(CODE_CHUNK, m - 5)
            for field_at, length, n, jcc in ((1, 5, n1, False), (2, 6, n2, True)):
                if n <= 0:
                    continue
                mask = ((code[:n] == 0x0F) & ((code[1:n + 1] & 0xF0) == 0x80)) if jcc \
                    else (code[:n] == 0xE8) | (code[:n] == 0xE9)
                pos = np.flatnonzero(mask).astype(np.int64)
                if not len(pos):
                    continue
                f = pos + field_at
                rel = (code[f].astype(np.int64) | (code[f + 1].astype(np.int64) << 8)
                       | (code[f + 2].astype(np.int64) << 16)
                       | (code[f + 3].astype(np.int8).astype(np.int64) << 24))
                with np.errstate(over="ignore"):
                    dest = base + pos + length + rel
                # membership by bisection (np.isin sorts both, and may import numpy.ma)
                k = np.searchsorted(want, dest)
                k[k == len(want)] = 0
                for i in np.flatnonzero(want[k] == dest).tolist():
                    d = int(dest[i]) & ADDRESS_MASK
                    out.append(Candidate(sec, at + int(f[i]), -1, -1, 0, targets[d], 0, True))
    out.sort(key=lambda c: (c.section.index, c.offset))
    return out
