"""Decode stage: prove each candidate by decoding its containing function.

A relocation is not an instruction.  For every candidate the containing
function is decoded with capstone from its first byte to the instruction that
holds the relocated field; only then is the instruction examined: its opcode
(after any prefixes), the position of the relocated field inside it, and its
destination, which must be the trampoline's entry (symbol + addend + the
distance from the field to the end of the instruction == symbol).

Each function is decoded at most once, from its start up to its last
candidate, however many candidates it holds.
"""
from __future__ import annotations

from dataclasses import dataclass

from .elf import (R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_PC32, R_X86_64_PLT32,
                  R_X86_64_REX_GOTPCRELX, STB_GLOBAL, STB_WEAK, STT_FILE,
                  STT_FUNC, STT_SECTION, ElfFile, Section)
from .find import Candidate

LEGACY_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3})
DIRECT_RELOCS = frozenset({R_X86_64_PC32, R_X86_64_PLT32})
GOT_RELOCS = frozenset({R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX})

_CS = None


def _capstone():
    global _CS
    if _CS is None:
        import capstone
        _CS = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return _CS


@dataclass(slots=True)
class Insn:
    start: int
    length: int
    prefixes: bytes
    kind: str | None        # call, prefixed-call, tail, jcc-tail, indirect, or None
    field: int | None       # offset of the rel32/disp32 within the instruction
    mnemonic: str


@dataclass(slots=True)
class Proof:
    """The verdict on one candidate."""
    candidate: Candidate
    insn: Insn | None           # None: decoding never reached the relocation
    function: str | None
    function_offset: int | None
    site_kind: str | None       # set when the candidate is a proven site
    detail: str                 # why it is not a site, when it is not


def analyse(code: bytes, start: int, length: int, mnemonic: str) -> Insn:
    """Classify the instruction bytes at ``start``: prefixes, opcode, field."""
    b = code[start:start + length]
    i = 0
    while i < length and b[i] in LEGACY_PREFIXES:
        i += 1
    if i < length and 0x40 <= b[i] <= 0x4F:
        i += 1                                   # REX
    prefixes = bytes(b[:i])
    kind = field = None
    if i < length:
        op = b[i]
        if op == 0xE8 and length == i + 5:
            kind, field = ("prefixed-call" if prefixes else "call"), i + 1
        elif op == 0xE9 and length == i + 5:
            kind, field = "tail", i + 1
        elif op == 0x0F and i + 1 < length and 0x80 <= b[i + 1] <= 0x8F and length == i + 6:
            kind, field = "jcc-tail", i + 2
        elif op == 0xFF and i + 1 < length:
            modrm = b[i + 1]
            reg, mod, rm = (modrm >> 3) & 7, modrm >> 6, modrm & 7
            if reg in (2, 4) and mod == 0 and rm == 5 and length == i + 6:
                kind, field = "indirect", i + 2          # call/jmp *disp32(%rip)
    return Insn(start, length, prefixes, kind, field, mnemonic)


class FunctionIndex:
    """Function and label symbols of one section, for containment queries."""

    def __init__(self, elf: ElfFile, sec: Section):
        import numpy as np
        syms = elf.symbols
        idx = np.arange(len(syms))
        if len(syms):
            shndx = elf.section_index_of(idx)
            stype = syms["info"] & 0xF
            mask = (shndx == sec.index) & (stype != STT_SECTION) & (stype != STT_FILE)
            mask &= syms["value"] <= sec.size
            chosen = np.flatnonzero(mask).tolist()
        else:
            chosen = []
        rank = {STB_GLOBAL: 0, STB_WEAK: 1}
        funcs, labels = [], []
        for i in chosen:
            s = elf.symbol(i)
            if not s.name_bytes or s.name_bytes.startswith(b".L"):
                continue
            entry = (s.value, rank.get(s.bind, 2), s.name, s.size, s.index)
            (funcs if s.type == STT_FUNC else labels).append(entry)
        funcs.sort()
        labels.sort()
        self.funcs = funcs
        self.labels = labels + funcs
        self.labels.sort()

    def containing(self, off: int):
        """(name, start, end) of the function holding ``off``; else the nearest
        preceding symbol; else (None, 0, None)."""
        best = None
        for value, _rank, name, size, _i in self.funcs:
            if value > off:
                break
            if off < value + size and (best is None or value > best[1]):
                best = (name, value, value + size)
        if best:
            return best
        prev = None
        for value, _rank, name, _size, _i in self.labels:
            if value > off:
                break
            if prev is None or value > prev[1]:
                prev = (name, value, None)
        return prev or (None, 0, None)


def prove(elf: ElfFile, candidates: list[Candidate]) -> list[Proof]:
    """Decode the functions that hold candidates and judge each candidate."""
    proofs: list[Proof] = []
    by_section: dict[int, list[Candidate]] = {}
    for c in candidates:
        by_section.setdefault(c.section.index, []).append(c)
    for sec_index, cands in by_section.items():
        sec = elf.sections[sec_index]
        if not sec.executable:
            for c in cands:
                proofs.append(Proof(c, None, None, None, None, "data"))
            continue
        code = elf.section_bytes(sec)
        index = FunctionIndex(elf, sec)
        groups: dict[tuple, list[Candidate]] = {}
        for c in cands:
            groups.setdefault(index.containing(c.offset), []).append(c)
        for (fname, fstart, fend), group in groups.items():
            proofs.extend(_prove_function(code, fname, fstart, fend, group))
    return proofs


def _prove_function(code: bytes, fname, fstart: int, fend, group: list[Candidate]):
    end = min(fend if fend is not None else len(code), len(code))
    group.sort(key=lambda c: c.offset)
    found: dict[int, tuple[int, int, str]] = {}
    stop = fstart
    pending = [c for c in group if fstart <= c.offset < end]
    if pending:
        last = pending[-1].offset
        md = _capstone()
        k = 0
        for addr, size, mnem, _ops in md.disasm_lite(code[fstart:end], fstart):
            stop = addr + size
            while k < len(pending) and pending[k].offset < stop:
                if pending[k].offset >= addr:
                    found[pending[k].offset] = (addr, size, mnem)
                k += 1
            if stop > last:
                break
    out = []
    for c in group:
        fofs = c.offset - fstart if fname is not None else None
        hit = found.get(c.offset)
        if hit is None:
            if not fstart <= c.offset < end:
                why = "relocation lies outside the decoded range"
            else:
                why = f"decoding from {fname or 'section start'} stopped at offset {stop:#x}"
            out.append(Proof(c, None, fname, fofs, None, why))
            continue
        insn = analyse(code, *hit)
        kind, why = _judge(c, insn)
        if kind is not None and fname is not None:
            fofs = insn.start - fstart        # a site is reported at its instruction
        out.append(Proof(c, insn, fname, fofs, kind, why))
    return out


def _judge(c: Candidate, insn: Insn) -> tuple[str | None, str]:
    """Is this instruction a control transfer to the trampoline's entry?"""
    if insn.kind is None or insn.field is None:
        return None, f"{insn.mnemonic} takes the trampoline's address"
    if c.offset - insn.start != insn.field:
        return None, f"relocation is not the {insn.mnemonic} target field"
    # destination relative to the relocation symbol, then to the trampoline
    dest = c.addend + (insn.length - insn.field) + c.sym_value_bias
    if insn.kind == "indirect":
        if c.rtype not in GOT_RELOCS:
            return None, f"{insn.mnemonic} through memory at the trampoline, not its GOT slot"
        if dest != 0:
            return None, f"{insn.mnemonic} through a GOT slot at offset {dest:+d}"
        return "indirect", ""
    if c.rtype not in DIRECT_RELOCS:
        return None, f"{insn.mnemonic} with an unexpected relocation type"
    if dest != 0:
        return None, f"{insn.mnemonic} to {c.tramp.name}{dest:+#x}, not to its entry"
    return insn.kind, ""

