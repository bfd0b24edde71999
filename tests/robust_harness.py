"""Robustness harness shared by tests/test_robust_*.py and scripts/fuzz-atheris.

* ``Layout`` reads the structure of a *valid* base object with ``struct``
  (independently of the package's reader) so that mutations can aim at
  fields: the ELF header, every section header, symbols, relocations and
  string tables.
* ``structural_mutations``, ``truncations`` and ``byte_flips`` generate
  named, deterministic mutants of a base object.
* ``check_bytes`` runs one mutant through the library in-process -- two
  scans, a write to ``-o`` and a forced in-place write -- and classifies
  what happened: accepted, rejected with an InputError, or a bug (any other
  exception = the in-process equivalent of a traceback; a changed input
  after a failure; a file left behind; an output the tool cannot read back;
  an error message that is not one printable line).
* ``hostile_tree`` builds a directory that tries to lead a walk out of
  itself (symlinks relative, absolute, chained, to directories), to process
  one file twice (a link, a hard link), to recurse too deep or to hang (a
  FIFO, a link loop); ``sign``/``unsigned`` add and remove a module
  signature (a signed module is never rewritten: ``check_bytes`` checks it).
* ``WorkerPool`` runs ``check_bytes`` in worker subprocesses (address space
  limited, so an allocation from an unchecked size shows up as MemoryError)
  with a per-case timeout: a case that does not answer in time is a *hang*
  and the worker is replaced.

Run as a script (``python robust_harness.py --serve DIR``) it is a worker.
"""
from __future__ import annotations

import json
import os
import random
import select
import struct
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
RELA = struct.Struct("<QQq")

SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 2, 3, 4, 8, 9
SHF_EXECINSTR = 4

# (name, offset, struct format)
EHDR_FIELDS = [("e_type", 16, "H"), ("e_machine", 18, "H"), ("e_version", 20, "I"),
               ("e_entry", 24, "Q"), ("e_phoff", 32, "Q"), ("e_shoff", 40, "Q"),
               ("e_flags", 48, "I"), ("e_ehsize", 52, "H"), ("e_phentsize", 54, "H"),
               ("e_phnum", 56, "H"), ("e_shentsize", 58, "H"), ("e_shnum", 60, "H"),
               ("e_shstrndx", 62, "H")]
SHDR_FIELDS = [("sh_name", 0, "I"), ("sh_type", 4, "I"), ("sh_flags", 8, "Q"),
               ("sh_addr", 16, "Q"), ("sh_offset", 24, "Q"), ("sh_size", 32, "Q"),
               ("sh_link", 40, "I"), ("sh_info", 44, "I"), ("sh_addralign", 48, "Q"),
               ("sh_entsize", 56, "Q")]
SYM_FIELDS = [("st_name", 0, "I"), ("st_info", 4, "B"), ("st_other", 5, "B"),
              ("st_shndx", 6, "H"), ("st_value", 8, "Q"), ("st_size", 16, "Q")]
RELA_FIELDS = [("r_offset", 0, "Q"), ("r_type", 8, "I"), ("r_sym", 12, "I"),
               ("r_addend", 16, "Q")]

MAX = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF, "Q": 0xFFFFFFFFFFFFFFFF}


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREBUILT = os.path.join(ROOT, "testdata", "prebuilt")
SRC = os.path.join(ROOT, "testdata", "src")
#: the corpus module the mutation suite uses (small: 38 sections, a table of 2)
CORPUS_MODULE = "crypto/async_tx/async_memcpy.ko"
TEMP_GLOB = ".scall-*.tmp"


def strip_table(src: str, dst: str) -> str:
    """Copy ``src`` to ``dst`` without .static_call_sites (as kernel-parity does)."""
    subprocess.run(["objcopy", "--remove-section", ".static_call_sites",
                    "--remove-section", ".rela.static_call_sites", src, dst],
                   check=True, capture_output=True)
    return dst


def build_executable(dst: str, *flags: str) -> str:
    """A linked x86-64 executable with static calls (testdata/src/linkprog.c)."""
    subprocess.run(["gcc", "-O2", *flags, "-o", dst, os.path.join(SRC, "linkprog.c"),
                    os.path.join(SRC, "linktramp.S"),
                    f"-Wl,-T,{os.path.join(SRC, 'static_call_sites.ld')}"],
                   check=True, capture_output=True)
    return dst


#: Known bugs (reported to the lead), by signature: mutants that hit only
#: these are counted as "known bugs", not failures.  Each has a strict-xfail
#: reproducer test; remove the entry when the bug is fixed.
KNOWN_BUGS: dict[str, str] = {
    # None open.  Found by the sweep and fixed, now regression tests:
    #  "error@emit.py:render": a section symbol st_value near 2**64 overflowed
    #    the addr addend (tests/fuzz_repro/secsym-value-huge.o);
    #  "bad-message:warning:key": the added-key warning was not escaped
    #    (tests/fuzz_repro/key-warning-newline.o);
    #  "force-not-idempotent": --force was not byte-stable: it appended another
    #    table on every run for objects with objtool's table or a nonzero
    #    sh_size in section header 0 (tests/fuzz_repro/null-section-size.o),
    #    and on extended numbering with few sections, a relocation section
    #    whose sh_info names the table, and a written object whose .text
    #    offset was changed (test_force_is_byte_stable_on_hostile_input).
}


# ----------------------------------------------------------------- structure
@dataclass
class Sec:
    index: int
    hdr_off: int
    name: bytes
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


class Layout:
    """Where everything is in a valid ELF64 object (read with struct only)."""

    def __init__(self, data: bytes):
        self.data = data
        h = EHDR.unpack_from(data, 0)
        self.e_type, self.shoff, self.shnum, self.shstrndx = h[1], h[6], h[12], h[13]
        self.sections: list[Sec] = []
        for i in range(self.shnum):
            off = self.shoff + i * SHDR.size
            f = SHDR.unpack_from(data, off)
            self.sections.append(Sec(i, off, b"", f[1], f[2], f[4], f[5], f[6], f[7], f[9]))
        names = self.bytes_of(self.sections[self.shstrndx])
        for s in self.sections:
            nm = SHDR.unpack_from(data, s.hdr_off)[0]
            s.name = names[nm:names.index(b"\0", nm)]
        tabs = [s for s in self.sections if s.type == SHT_SYMTAB]
        self.symtab = tabs[0] if tabs else None
        self.strtab = self.sections[self.symtab.link] if self.symtab else None
        self.nsyms = self.symtab.size // SYM.size if self.symtab else 0
        self.relas = [s for s in self.sections
                      if s.type == SHT_RELA and self.symtab and s.link == self.symtab.index]

    def bytes_of(self, s: Sec) -> bytes:
        return b"" if s.type == SHT_NOBITS else self.data[s.offset:s.offset + s.size]

    def sym(self, i: int):
        return SYM.unpack_from(self.data, self.symtab.offset + i * SYM.size)

    def sym_name(self, i: int) -> bytes:
        strtab = self.bytes_of(self.strtab)
        off = self.sym(i)[0]
        return strtab[off:strtab.index(b"\0", off)] if off < len(strtab) else b""

    def interesting_symbols(self) -> list[int]:
        """Trampolines, keys, functions, section symbols, first and last."""
        out = {0, 1, self.nsyms - 1} if self.nsyms else set()
        for i in range(self.nsyms):
            name = self.sym_name(i)
            st_info = self.sym(i)[1]
            if name.startswith((b"__SCT__", b"__SCK__")) or (st_info & 0xF) in (2, 3):
                out.add(i)
        return sorted(x for x in out if 0 <= x < self.nsyms)

    def interesting_relocs(self) -> list[tuple[Sec, int]]:
        """(rela section, entry index) of relocations against trampolines,
        plus the first and last entry of every relocation section."""
        tramps = {i for i in range(self.nsyms) if self.sym_name(i).startswith(b"__SCT__")}
        out = []
        for r in self.relas:
            n = r.size // RELA.size
            for j in range(n):
                _o, info, _a = RELA.unpack_from(self.data, r.offset + j * RELA.size)
                if (info >> 32) in tramps or j in (0, n - 1):
                    out.append((r, j))
        return out


def _put(data: bytes, off: int, fmt: str, value: int) -> bytes:
    d = bytearray(data)
    struct.pack_into("<" + fmt, d, off, value & MAX[fmt])
    return bytes(d)


def _values(fmt: str, orig: int, extra=()) -> list[int]:
    m = MAX[fmt]
    vals = [0, 1, orig + 1, orig - 1, orig ^ 0x80, m, m - 1, *extra]
    if m > 0xFFFF:
        vals += [0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, orig + 0x1000]
    if m > 0xFFFFFFFF:
        vals += [1 << 40, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, orig << 8]
    out = []
    for v in vals:
        v &= m
        if v != orig and v not in out:
            out.append(v)
    return out


def structural_mutations(data: bytes, budget: str = "full"):
    """Yield (name, mutant bytes): every field of the ELF header, the section
    headers, interesting symbols and relocations set to absurd and boundary
    values, plus semantic corruptions (link loops, strings without NUL,
    overlapping sections, zero entsize, relocations beyond their section)."""
    lay = Layout(data)
    size = len(data)
    shnum = lay.shnum
    idx_extra = [shnum - 1, shnum, shnum + 1, 0xFF00, 0xFFF1, 0xFFF2, 0xFFFF]

    # ELF header: e_ident bytes and every field
    for pos in range(4, 16):
        for v in (0, 1, 2, 3, 0xFF):
            if data[pos] != v:
                yield f"e_ident[{pos}]={v:#x}", data[:pos] + bytes([v]) + data[pos + 1:]
    for name, off, fmt in EHDR_FIELDS:
        orig = struct.unpack_from("<" + fmt, data, off)[0]
        extra = {"e_shoff": [size, size - 64, size - 8, 8, 64, lay.shoff + 4],
                 "e_shnum": idx_extra + [0, shnum * 2],
                 "e_shstrndx": idx_extra + [s.index for s in lay.sections],
                 "e_type": [1, 2, 3, 4],
                 "e_phoff": [size, 64]}.get(name, [size])
        for v in _values(fmt, orig, extra):
            yield f"{name}={v:#x}", _put(data, off, fmt, v)

    # section headers
    special = {0, lay.shstrndx}
    if lay.symtab:
        special |= {lay.symtab.index, lay.strtab.index}
    for r in lay.relas:
        special |= {r.index, r.info if r.info < shnum else 0}
    special |= {s.index for s in lay.sections if s.flags & SHF_EXECINSTR}
    special |= {s.index for s in lay.sections if s.name.startswith(b".static_call")}
    overlap = [0, lay.shoff, size - 1, size]
    if lay.symtab:
        overlap += [lay.symtab.offset, lay.strtab.offset]
    for s in lay.sections:
        full = s.index in special
        if budget != "full" and not full and s.index % 3:
            continue
        for name, off, fmt in SHDR_FIELDS:
            orig = struct.unpack_from("<" + fmt, data, s.hdr_off + off)[0]
            extra = {"sh_type": [0, 1, 2, 3, 4, 8, 9, 11, 17, 18, 0x6FFFFFFF],
                     "sh_flags": [orig ^ SHF_EXECINSTR, orig ^ 2, 0x40],
                     "sh_offset": overlap + [s.offset + 1, size - s.size, size - s.size + 1],
                     "sh_size": [size, size - s.offset, size - s.offset + 1, s.size + 24,
                                 s.size - 24, s.size * 2],
                     "sh_link": idx_extra + [s.index, lay.shstrndx, 0],
                     "sh_info": idx_extra + [s.index, lay.nsyms, lay.nsyms + 1],
                     "sh_addralign": [2, 3, 4096, 1 << 63],
                     "sh_entsize": [0, 8, 16, 24, 23, 1 << 63]}.get(name, [size])
            vals = _values(fmt, orig, extra)
            if not full:
                vals = [v for v in vals if v in extra or v in (0, MAX[fmt])]
            for v in vals:
                yield f"shdr[{s.index}:{s.name.decode(errors='replace')}].{name}={v:#x}", \
                    _put(data, s.hdr_off + off, fmt, v)

    # symbols
    if lay.symtab:
        strsize = lay.strtab.size
        for i in lay.interesting_symbols():
            base = lay.symtab.offset + i * SYM.size
            for name, off, fmt in SYM_FIELDS:
                orig = struct.unpack_from("<" + fmt, data, base + off)[0]
                extra = {"st_name": [strsize - 1, strsize, strsize + 1],
                         "st_info": [0x10, 0x12, 0x13, 0x00, 0x20, 0x04, 0x1F, orig & 0xF,
                                     orig | 0x10],
                         "st_shndx": idx_extra + [lay.symtab.index],
                         "st_value": [size, 0xFFFFFFFC],
                         "st_size": [size, 1 << 32]}.get(name, [])
                for v in _values(fmt, orig, extra):
                    yield f"sym[{i}:{lay.sym_name(i).decode(errors='replace')}].{name}={v:#x}", \
                        _put(data, base + off, fmt, v)

    # relocations
    for r, j in lay.interesting_relocs():
        base = r.offset + j * RELA.size
        target = lay.sections[r.info] if r.info < shnum else None
        tsize = target.size if target else 0
        for name, off, fmt in RELA_FIELDS:
            orig = struct.unpack_from("<" + fmt, data, base + off)[0]
            extra = {"r_offset": [tsize, tsize - 1, tsize - 3, tsize - 4, tsize + 4, 1 << 63],
                     "r_type": [0, 1, 2, 4, 9, 10, 11, 24, 41, 42, 0xFFFF],
                     "r_sym": [lay.nsyms, lay.nsyms - 1, lay.nsyms + 1, 0],
                     "r_addend": [(-4) & MAX["Q"], (-5) & MAX["Q"], 0, 4,
                                  (orig + 4) & MAX["Q"], (orig - 4) & MAX["Q"]]}[name]
            for v in _values(fmt, orig, extra):
                yield f"rela[{r.name.decode(errors='replace')}#{j}].{name}={v:#x}", \
                    _put(data, base + off, fmt, v)

    # semantic corruptions
    def shdr(d: bytes, s: Sec, field_name: str, v: int) -> bytes:
        off, fmt = next((o, f) for n, o, f in SHDR_FIELDS if n == field_name)
        return _put(d, s.hdr_off + off, fmt, v)

    for s in lay.sections:
        if s.type == SHT_STRTAB and s.size:
            d = bytearray(data)
            d[s.offset + s.size - 1] = ord("A")
            yield f"{s.name.decode()}: last byte not NUL", bytes(d)
            d = bytearray(data)
            d[s.offset:s.offset + s.size] = bytes(b or ord("B") for b in
                                                  data[s.offset:s.offset + s.size])
            yield f"{s.name.decode()}: no NUL at all", bytes(d)
            yield f"{s.name.decode()}: size 0", shdr(data, s, "sh_size", 0)
    if lay.symtab:
        st = lay.symtab
        yield "symtab links to itself", shdr(data, st, "sh_link", st.index)
        yield "symtab links to shstrtab", shdr(data, st, "sh_link", lay.shstrndx)
        yield "symtab entsize 0", shdr(data, st, "sh_entsize", 0)
        yield "strtab links to symtab", shdr(data, lay.strtab, "sh_link", st.index)
        yield "strtab is a symtab too", shdr(data, lay.strtab, "sh_type", SHT_SYMTAB)
        yield "symtab overlaps the ELF header", shdr(data, st, "sh_offset", 0)
        yield "symtab overlaps the section headers", shdr(
            shdr(data, st, "sh_offset", lay.shoff), st, "sh_size",
            min(st.size, (size - lay.shoff) // 24 * 24))
        yield "symtab info 0", shdr(data, st, "sh_info", 0)
        yield "symtab info = count", shdr(data, st, "sh_info", lay.nsyms)
        yield "e_shstrndx = symtab", _put(data, 62, "H", st.index)
        for s in lay.sections:
            if s.type not in (SHT_SYMTAB, 0) and s.index != lay.shstrndx:
                yield f"section {s.index} becomes SYMTAB_SHNDX", shdr(
                    shdr(data, s, "sh_type", 18), s, "sh_link", st.index)
                break
    for r in lay.relas:
        rn = r.name.decode(errors="replace")
        yield f"{rn} links to itself", shdr(data, r, "sh_link", r.index)
        yield f"{rn} applies to itself", shdr(data, r, "sh_info", r.index)
        yield f"{rn} applies to symtab", shdr(data, r, "sh_info",
                                             lay.symtab.index if lay.symtab else 0)
        yield f"{rn} entsize 0", shdr(data, r, "sh_entsize", 0)
        yield f"{rn} is SHT_REL", shdr(data, r, "sh_type", SHT_REL)
        yield f"{rn} overlaps its target", shdr(
            data, r, "sh_offset", lay.sections[r.info].offset if r.info < shnum else 0)
        if r.info < shnum:
            t = lay.sections[r.info]
            d = bytearray(data)
            for j in range(r.size // RELA.size):
                struct.pack_into("<Q", d, r.offset + j * RELA.size, t.size + j)
            yield f"{rn}: every r_offset beyond the section", bytes(d)
            yield f"{rn}: target shrunk to 0", shdr(data, t, "sh_size", 0)
            yield f"{rn}: target becomes NOBITS", shdr(data, t, "sh_type", SHT_NOBITS)
    # extended numbering, valid and invalid
    sec0 = lay.sections[0]
    ext = _put(data, 60, "H", 0)
    yield "extended e_shnum (valid)", shdr(ext, sec0, "sh_size", shnum)
    yield "extended e_shnum = 0", ext
    yield "extended e_shnum huge", shdr(ext, sec0, "sh_size", (1 << 64) - 1)
    yield "extended e_shnum +1", shdr(ext, sec0, "sh_size", shnum + 1)
    xs = _put(data, 62, "H", 0xFFFF)
    yield "extended e_shstrndx (valid)", shdr(xs, sec0, "sh_link", lay.shstrndx)
    yield "extended e_shstrndx 0", xs
    yield "extended e_shstrndx huge", shdr(xs, sec0, "sh_link", 0xFFFFFFFF)
    yield "section 0 not NULL", shdr(shdr(shdr(data, sec0, "sh_type", 1), sec0, "sh_offset", 0),
                                     sec0, "sh_size", 64)
    # every section overlapping the first one with data
    for s in lay.sections[1:]:
        if s.type not in (0, SHT_NOBITS) and s.size:
            yield f"all sections alias section {s.index}", bytes(
                _overlap_all(data, lay, s))
            break
    # duplicate section headers table: every header a copy of one
    if lay.symtab:
        d = bytearray(data)
        hdr = data[lay.symtab.hdr_off:lay.symtab.hdr_off + 64]
        for s in lay.sections[1:]:
            if s.index != lay.shstrndx:
                d[s.hdr_off:s.hdr_off + 64] = hdr
        yield "every header is the symtab", bytes(d)


def _overlap_all(data: bytes, lay: Layout, s: Sec) -> bytearray:
    d = bytearray(data)
    for t in lay.sections[1:]:
        if t.index != lay.shstrndx and t.type not in (0, SHT_NOBITS):
            struct.pack_into("<QQ", d, t.hdr_off + 24, s.offset, min(t.size, s.size))
    return d


def truncation_points(data: bytes) -> list[int]:
    lay = Layout(data)
    pts = set(range(0, min(65, len(data))))
    for s in lay.sections:
        for p in (s.offset, s.offset + (0 if s.type == SHT_NOBITS else s.size)):
            pts |= {p - 1, p, p + 1}
    for i in range(lay.shnum + 1):
        p = lay.shoff + i * SHDR.size
        pts |= {p - 1, p, p + 1}
    if lay.symtab:
        for i in range(min(lay.nsyms, 8)):
            pts.add(lay.symtab.offset + i * SYM.size + 12)
    pts |= {len(data) - 1, len(data) // 2}
    return sorted(p for p in pts if 0 <= p < len(data))


def truncations(data: bytes):
    for p in truncation_points(data):
        yield f"truncated at {p:#x}", data[:p]


def structural_regions(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of the bytes the reader interprets: headers and tables."""
    lay = Layout(data)
    out = [(0, 64), (lay.shoff, lay.shoff + lay.shnum * SHDR.size)]
    for s in lay.sections:
        if s.type in (SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_REL) and s.size:
            out.append((s.offset, s.offset + s.size))
    return out


def section_regions(data: bytes, prefix: bytes) -> list[tuple[int, int]]:
    """(start, end) of the sections whose names start with ``prefix``."""
    lay = Layout(data)
    return [(s.offset, s.offset + s.size) for s in lay.sections
            if s.name.startswith(prefix) and s.type != SHT_NOBITS and s.size]


def byte_flips(data: bytes, n: int, seed: int, regions=None):
    """n mutants, each with 1-4 bytes changed (bit flips or random values),
    mostly inside ``regions`` (default: the structural regions);
    deterministic for a seed."""
    rng = random.Random(seed)
    regions = regions or structural_regions(data)
    for k in range(n):
        d = bytearray(data)
        edits = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.8:
                a, b = rng.choice(regions)
                pos = rng.randrange(a, b)
            else:
                pos = rng.randrange(len(d))
            if rng.random() < 0.5:
                d[pos] ^= 1 << rng.randrange(8)
            else:
                d[pos] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
            edits.append(f"{pos:#x}={d[pos]:#04x}")
        yield f"flip#{k}[{','.join(edits)}]", bytes(d)


# ------------------------------------------- sizes, NOBITS, names (issue 10)
SIZES = (1 << 40, (1 << 63) - 8, (1 << 64) - 8)


def nobits_and_size_mutations(data: bytes):
    """Every section made SHT_NOBITS, keeping its size or claiming far more than
    the file holds, and every section's sh_size pushed past the file: each size
    must be checked against the file before it is used (no 2^37-entry lists)."""
    lay = Layout(data)
    for s in lay.sections[1:]:
        nm = s.name.decode("ascii", "replace")
        for size in (None, len(data) + 8, *SIZES):
            d = bytearray(data)
            struct.pack_into("<I", d, s.hdr_off + 4, SHT_NOBITS)
            if size is not None:
                struct.pack_into("<Q", d, s.hdr_off + 32, size)
            yield f"nobits:{nm}:size={size}", bytes(d)
        for size in (len(data) - s.offset + 8, *SIZES):
            d = bytearray(data)
            struct.pack_into("<Q", d, s.hdr_off + 32, size & MAX["Q"])
            yield f"oversize:{nm}:{size}", bytes(d)


def table_name_mutations(data: bytes):
    """Sections that carry the table's name without being a table: each section
    in turn (.text, .symtab, .strtab, the section-name table, ...) gets its
    sh_name pointed at ".static_call_sites" -- beside the real table, and with
    the real table renamed away.  Needs a base whose .shstrtab has the name."""
    lay = Layout(data)
    names = lay.bytes_of(lay.sections[lay.shstrndx])
    at = names.find(TABLE_NAME + b"\0")
    if at < 0:
        return
    real = [s for s in lay.sections if s.name == TABLE_NAME]
    for s in lay.sections[1:]:
        if s.name == TABLE_NAME:
            continue
        d = bytearray(data)
        struct.pack_into("<I", d, s.hdr_off, at)
        nm = s.name.decode("ascii", "replace")
        yield f"table-name:{nm}", bytes(d)
        for r in real:
            struct.pack_into("<I", d, r.hdr_off, at + 1)    # "static_call_sites"
            yield f"table-name-only:{nm}", bytes(d)


def dwarf_shared_lines_source(n_units: int, rows: int) -> str:
    """gas source: ``n_units`` compile units that all share one line program of
    ``rows`` rows (DW_AT_stmt_list 0).  Memory must not grow with units x rows."""
    o = ['.file 1 "a.c"', ".text", ".globl f", ".type f,@function", "f:", ".loc 1 1",
         "call __SCT__x"]
    for i in range(rows):
        o += [f".loc 1 {i + 2}", "nop"]
    o += [".size f,.-f", ".globl __SCT__x", ".globl __SCK__x",
          '.section .debug_abbrev,"",@progbits', ".uleb128 1", ".uleb128 0x11", ".byte 0",
          ".uleb128 0x10", ".uleb128 0x17", ".byte 0,0", ".byte 0",
          ".macro cu", ".long .Le\\@ - .Ls\\@", ".Ls\\@:", ".short 4", ".long 0",
          ".byte 8", ".uleb128 1", ".long 0", ".Le\\@:", ".endm",
          '.section .debug_info,"",@progbits', f".rept {n_units}", "cu", ".endr"]
    return "\n".join(o) + "\n"


# Crafted cost (issue 23): the logic of its reproduction generators
# (gen_longname, gen_inline, gen_leb); each must cost time and memory
# near-linear in its size.
def long_name(length: int, sites: int, name: str = "f") -> str:
    """One function with a ``length``-byte name and ``sites`` static-call sites."""
    name = name + "x" * (length - len(name))
    return "\n".join([".text", f".globl {name}", f".type {name},@function", ".p2align 4",
                      f"{name}:", f".rept {sites}", "call __SCT__x", ".endr", "ret",
                      f".size {name},.-{name}", ".globl __SCT__x", ".globl __SCK__x"]) + "\n"


def inline_nest(depth: int, sites: int) -> str:
    """A function of ``sites`` sites under ``depth`` nested inlined-subroutine
    DIEs that each cover the whole function."""
    o = ['.file 1 "a.c"', ".text", ".globl f", ".type f,@function", "f:", ".loc 1 1",
         f".rept {sites}", "call __SCT__x", ".endr", "ret", ".Lfe:", ".size f,.-f",
         ".globl __SCT__x", ".globl __SCK__x", '.section .debug_abbrev,"",@progbits',
         ".uleb128 1, 0x11", ".byte 1", ".uleb128 0x10, 0x17, 0x11, 0x01, 0x12, 0x07",
         ".byte 0,0", ".uleb128 2, 0x2e", ".byte 1",
         ".uleb128 0x03, 0x08, 0x11, 0x01, 0x12, 0x07", ".byte 0,0",
         ".uleb128 3, 0x1d", ".byte 1", ".uleb128 0x03, 0x08, 0x11, 0x01, 0x12, 0x07",
         ".byte 0,0", ".byte 0",
         '.section .debug_info,"",@progbits', ".long .Le - .Ls", ".Ls:", ".short 4",
         ".long .debug_abbrev", ".byte 8", ".uleb128 1", ".long .debug_line", ".quad f",
         ".quad .Lfe - f", ".uleb128 2", '.asciz "f"', ".quad f", ".quad .Lfe - f",
         f".rept {depth}", ".uleb128 3", '.asciz "g"', ".quad f",
         ".quad .Lfe - f", ".endr", f".rept {depth}", ".byte 0", ".endr",
         ".byte 0", ".byte 0", ".Le:"]
    return "\n".join(o) + "\n"


def long_leb(n: int, where: str) -> str:
    """One site; the unit's first abbreviation code ('info') or a line-program
    operand ('line') is an ``n``-byte ULEB128."""
    o = ['.file 1 "a.c"', ".text", ".globl f", ".type f,@function", "f:", ".loc 1 1",
         "call __SCT__x", "ret", ".size f,.-f", ".globl __SCT__x", ".globl __SCK__x",
         '.section .debug_abbrev,"",@progbits', ".uleb128 1", ".uleb128 0x11", ".byte 0",
         ".uleb128 0x10", ".uleb128 0x17", ".uleb128 0x11", ".uleb128 0x01",
         ".uleb128 0x12", ".uleb128 0x07", ".byte 0,0", ".byte 0",
         '.section .debug_info,"",@progbits', ".long .Le - .Ls", ".Ls:", ".short 4",
         ".long 0", ".byte 8"]
    if where == "info":
        o += [f".rept {n - 1}", ".byte 0xff", ".endr", ".byte 0x7f"]
    else:
        o += [".uleb128 1"]
    o += [".long .debug_line", ".quad f", ".quad 6", ".Le:"]
    if where == "line":
        o = [x for x in o if not x.startswith((".file", ".loc"))]
        o = [x if x != ".long .debug_line" else ".long .Lprog" for x in o]
        o += ['.section .debug_line,"",@progbits', ".Lprog:", ".long .Lpe - .Lps", ".Lps:",
              ".short 4", ".long .Lhe - .Lhs", ".Lhs:", ".byte 1, 1, 1, -5, 14, 13",
              ".byte 0,1,1,1,1,0,0,0,1,0,0,1", ".byte 0", '.asciz "b.c"', ".byte 0,0,0",
              ".byte 0", ".Lhe:", ".byte 0, 9, 2", ".quad f", ".byte 2", f".rept {n - 1}",
              ".byte 0xff", ".endr", ".byte 0x7f", ".byte 1", ".byte 0, 1, 1", ".Lpe:"]
    return "\n".join(o) + "\n"


def thin_archive(names: list[str], sizes: list[int]) -> bytes:
    """A GNU thin archive (``ar rcT``) whose members are ``names`` (any path:
    ``../x.o``, absolute): only the headers, the members stay where they are."""
    table = b"".join(n.encode() + b"/\n" for n in names)

    def hdr(name: bytes, size: int) -> bytes:
        return (name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6)
                + b"644".ljust(8) + str(size).encode().ljust(10) + b"`\n")
    out = b"!<thin>\n" + hdr(b"//", len(table)) + table + (b"\n" if len(table) % 2 else b"")
    off = 0
    for n, size in zip(names, sizes):
        out += hdr(b"/" + str(off).encode(), size)
        off += len(n.encode()) + 2
    return out


def hostile_reports(doc: dict):
    """(label, text) variants of a valid JSON report: nesting far deeper than
    any parser's stack, every field of a site dropped or retyped, schema
    versions that compare equal to 1, names with terminal controls."""
    for depth in (1000, 100_000):
        yield f"deep-array-{depth}", "[" * depth + "]" * depth
        yield f"deep-object-{depth}", '{"a":' * depth + "0" + "}" * depth
        yield f"deep-in-site-{depth}", json.dumps(doc).replace(
            '"sites": [', '"sites": [' + "[" * depth + "]" * depth + ",", 1)
    for v in (True, 1.0, "1", None, 2, [1]):
        yield f"schema_version={v!r}", json.dumps({**doc, "schema_version": v})
    sites = [(i, j) for i, o in enumerate(doc.get("objects", []))
             for j, _ in enumerate(o.get("sites", []))]
    if sites:
        i, j = sites[0]
        site = doc["objects"][i]["sites"][j]
        for key in list(site):
            for label, value in (("drop", None), ("null", None), ("str", "x"), ("int", -1),
                                 ("list", []), ("obj", {}), ("float", 1.5),
                                 ("big", 1 << 70), ("ctl", "\x1b[2J\u202e\n")):
                d = json.loads(json.dumps(doc))
                s = d["objects"][i]["sites"][j]
                if label == "drop":
                    del s[key]
                else:
                    s[key] = value
                yield f"site.{key}:{label}", json.dumps(d)
        for src in ({"line": 1}, {"file": "a.c"}, {"file": 1, "line": 1}, "a.c:1",
                    {"file": "a.c", "line": -1, "x": 0}):
            d = json.loads(json.dumps(doc))
            d["objects"][i]["sites"][j]["source"] = src
            yield f"source={src!r}", json.dumps(d)
    for key in list(doc):
        d = dict(doc)
        del d[key]
        yield f"drop:{key}", json.dumps(d)
    if sites:
        # strings of megabytes: checked by length before any pattern (issue 23 item 7)
        i, j = sites[0]
        for key, value in (("prefixes", "ab" * (1 << 20)), ("prefixes", "zz" * (1 << 20)),
                           ("trampoline", "__SCT__" + "x" * (2 << 20))):
            d = json.loads(json.dumps(doc))
            d["objects"][i]["sites"][j][key] = value
            yield f"long-{key}-{value[:2]}", json.dumps(d)
    yield "nan", json.dumps(doc).replace('"offset": 0', '"offset": NaN', 1)
    yield "not-utf8", json.dumps(doc)[:-2] + "\udcff"
    # keys and names with terminal controls, bidi and newlines wherever a reader
    # may name them in a message (dashboard, diff, the unmatched-baseline warning)
    ctl = "\x1b[2J\u202e\nforged: \u2028"
    for where in ("", "policy", "summary", "summary.by_kind", "summary.by_reason",
                  "summary.by_trampoline", "summary.by_object.0", "objects.0",
                  "objects.0.sites.0", "objects.0.summary"):
        d = json.loads(json.dumps(doc))
        node = d
        for step in filter(None, where.split(".")):
            node = node[int(step)] if isinstance(node, list) else node.get(step)
            if node is None:
                break
        if isinstance(node, dict):
            node[ctl] = 1
            yield f"key-in:{where or 'top'}", json.dumps(d)
    d = json.loads(json.dumps(doc))
    for o in d.get("objects", []):
        o["path"] = ctl + o["path"]
    for o in d.get("summary", {}).get("by_object", []):
        o["path"] = ctl + o["path"]
    d.get("policy", {})["name"] = ctl
    yield "names:ctl", json.dumps(d)


#: what the kernel's scripts/sign-file appends after a module's signature
SIG_MAGIC = b"~Module signature appended~\n"
#: struct module_signature (algo, hash, id_type, signer_len, key_id_len, pad, sig_len)
MODSIG = struct.Struct(">BBBBB3xI")


def signed(data: bytes) -> bool:
    return data.endswith(SIG_MAGIC)


def unsigned(data: bytes) -> bytes:
    """A signed module without its signature: the object objtool wrote."""
    if not signed(data):
        return data
    end = len(data) - len(SIG_MAGIC) - MODSIG.size
    sig_len = MODSIG.unpack_from(data, end)[-1]
    return data[:end - sig_len]


def sign(data: bytes, sig: bytes = b"\x30\x82\x01\x00" + bytes(256)) -> bytes:
    """``data`` with a (fake, well-formed) PKCS#7 module signature appended."""
    return data + sig + MODSIG.pack(0, 0, 2, 0, 0, len(sig)) + SIG_MAGIC


def hostile_tree(root: str, obj: bytes, other: bytes, depth: int = 1200) -> dict:
    """A build tree that tries to make a directory walk leave it, read or write
    one file twice, recurse too deep or hang, with the files outside it that
    must stay untouched.  Returns {"tree": DIR, "outside": [files], "inside":
    {name: bytes} the objects of the tree proper}.

    In ``DIR``: own.o, sub/other.o; links out of the tree (relative, absolute,
    a chain through an in-tree link, a hostile name, a link to a directory, a
    link up to the parent, one to /dev/zero, a Kbuild ``own.mod`` out of the
    tree that would make own.o a composite to pass over); a link and a hard link to own.o
    (the same file); a self-loop, a dangling link, a FIFO named like an
    object; an object ``depth`` levels down."""
    top = os.path.join(root, "tree")
    out = os.path.join(root, "outside")
    os.makedirs(os.path.join(top, "sub"))
    os.makedirs(out)
    victims = []
    for name in ("victim.o", "abs.o", "chained.o", "named.o"):
        p = os.path.join(out, name)
        with open(p, "wb") as f:
            f.write(obj)
        os.chmod(p, 0o444)
        victims.append(p)
    for name, data in (("own.o", obj), ("sub/other.o", other)):
        with open(os.path.join(top, name), "wb") as f:
            f.write(data)
    with open(os.path.join(out, "parts.mod"), "w") as f:     # "own.o is composite"
        f.write("a.o\nb.o\n")
    links = {"evil.o": "../outside/victim.o", "abs.o": victims[1],
             "hop.o": "../outside/chained.o", "chain.o": "hop.o",
             "bad\n\x1b[2Jname.o": "../outside/named.o", "linkdir": "../outside",
             "up": "..", "zero.o": "/dev/zero", "in.o": "sub/../own.o",
             "own.mod": "../outside/parts.mod",
             "loop.o": "loop.o", "dangling.o": "nowhere.o"}
    for name, target in links.items():
        os.symlink(target, os.path.join(top, name))
    os.link(os.path.join(top, "own.o"), os.path.join(top, "sub", "hard.o"))
    os.mkfifo(os.path.join(top, "fifo.o"))
    deep = deep_tree(top, depth, other, "deep.o")
    return {"tree": top, "outside": victims,
            "inside": {"own.o": obj, "sub/other.o": other, os.path.relpath(deep, top): other},
            "links_out": 5, "duplicates": 2}


def deep_tree(top: str, depth: int, data: bytes, name: str = "x.o") -> str:
    """``top/d/d/.../d/NAME`` (``depth`` levels, ``top`` created if missing),
    made through directory file descriptors: the path may be longer than
    PATH_MAX.  Its path.  Remove it with ``remove_tree`` (Python's rmtree,
    pytest's too, recurses and fails past ~1,000 levels)."""
    os.makedirs(top, exist_ok=True)
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            sub = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = sub
        out = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, data)
        os.close(out)
    finally:
        os.close(fd)
    return top + "/d" * depth + "/" + name


def remove_tree(path: str) -> None:
    """``rm -rf`` (coreutils copes with any depth)."""
    subprocess.run(["rm", "-rf", "--", path], check=False)


# ------------------------------------------------------------------ checking
def _signature(exc: BaseException) -> str:
    """ExceptionType@module.function of the innermost frame in the package."""
    where = "?"
    for fr in traceback.extract_tb(exc.__traceback__):
        if "scall_objtool" in fr.filename:
            where = f"{os.path.basename(fr.filename)}:{fr.name}"
    return f"{type(exc).__name__}@{where}"


def _message_ok(msg: str) -> bool:
    return "\n" not in msg and "\r" not in msg and msg.isprintable()


def _message_sig(kind: str, msg: str) -> str:
    """bad-message:KIND:first-word, to tell the message templates apart."""
    return f"bad-message:{kind}:{(msg.split() or ['?'])[0]}"


def check_bytes(data: bytes, workdir: str) -> dict:
    """Run one input through scan and write in-process; see the module doc.

    Returns {"status": "accepted"|"rejected"|"bug", "problems": [...],
    "signatures": [...], "errors": [...]}.  ``workdir`` must be empty."""
    from scall_objtool.errors import ScallError
    from scall_objtool.core import Options
    from scall_objtool.core.pipeline import scan_path
    from scall_objtool.table.write import write_path

    case = os.path.join(workdir, "case.o")
    out = os.path.join(workdir, "out.o")
    with open(case, "wb") as f:
        f.write(data)
    problems: list[str] = []
    sigs: list[str] = []
    errors: list[str] = []
    accepted = 0

    def call(what, fn, *args, **kw):
        nonlocal accepted
        try:
            r = fn(*args, **kw)
            accepted += 1
            return r
        except ScallError as e:
            msg = str(e)
            errors.append(msg)
            if not _message_ok(msg):
                problems.append(f"{what}: error message is not one printable line: {msg!r}")
                sigs.append(_message_sig("error", msg))
        except MemoryError as e:
            problems.append(f"{what}: MemoryError (allocation from an unchecked size)")
            sigs.append(_signature(e))
        except RecursionError as e:
            problems.append(f"{what}: RecursionError")
            sigs.append(_signature(e))
        except Exception as e:  # noqa: BLE001 - any other exception is the bug we look for
            tb = traceback.format_exc(limit=-3)
            problems.append(f"{what}: {type(e).__name__}: {e}\n{tb}")
            sigs.append(_signature(e))
        return None

    def warnings_ok(what, res):
        if res is None:
            return
        ws = list(getattr(res, "warnings", []))
        inner = getattr(res, "result", None)
        if inner is not None:
            ws += list(getattr(inner, "warnings", []))
        for w in ws:
            if not _message_ok(w):
                problems.append(f"{what}: warning is not one printable line: {w!r}")
                sigs.append(_message_sig("warning", w))

    kernel = Options(policy="kernel", module=True)
    if TABLE_NAME in data:      # a table (or its name): verify reads it entry by entry
        call("verify", _verify, case)
    warnings_ok("scan seed", call("scan seed", scan_path, case, Options()))
    warnings_ok("scan kernel", call("scan kernel", scan_path, case, kernel))
    # write to -o: the input must stay as it was, whatever happens
    res = call("write -o", write_path, case, Options(), output=out)
    warnings_ok("write -o", res)
    if _read(case) != data:
        problems.append("write -o changed the input")
        sigs.append("changed-input")
    if res is not None and res.action == "written":
        _check_output(out, "write -o", problems, sigs, res.entries, Options())
        _code_kept(data, out, "write -o", problems, sigs)
    elif res is not None and os.path.exists(out) and _read(out) != data:
        problems.append(f"write -o ({res.action}) produced bytes different from the input")
        sigs.append("bad-copy")
    if signed(data) and (res is not None or os.path.exists(out)):
        problems.append("write -o rewrote a signed module (the signature would end mid-file)")
        sigs.append("signed-rewritten")
    # in place, forced: on failure the input must be byte-identical
    res = call("write --force", write_path, case, kernel, force=True)
    warnings_ok("write --force", res)
    after = _read(case)
    if signed(data) and (res is not None or after != data):
        problems.append("write --force rewrote a signed module in place")
        sigs.append("signed-rewritten")
    if res is None and after != data:
        problems.append("a failed in-place write changed the input")
        sigs.append("changed-input")
    elif res is not None and res.action != "written" and after != data:
        problems.append(f"in-place write ({res.action}) changed the input")
        sigs.append("changed-input")
    elif res is not None and res.action == "written":
        _code_kept(data, case, "write --force", problems, sigs)
        _check_output(case, "write --force", problems, sigs, res.entries, kernel)
    left = sorted(set(os.listdir(workdir)) - {"case.o", "out.o"})
    if left:
        problems.append(f"left behind: {left}")
        sigs.append("leftover")
    status = "bug" if problems else ("accepted" if accepted else "rejected")
    return {"status": status, "problems": problems, "signatures": sorted(set(sigs)),
            "errors": errors, "accepted": accepted}


TABLE_NAME = b".static_call_sites"


def _verify(path: str):
    """``verify`` as the CLI runs it, in-process."""
    from scall_objtool.core.elf import ElfFile
    from scall_objtool.core import Options
    from scall_objtool.core.pipeline import scan_elf
    from scall_objtool.table.verify import verify
    elf = ElfFile(_read(path), path)
    return verify(elf, scan_elf(elf, Options(), "auto", sources=False), Options())


def _code_sections(data: bytes) -> list[bytes] | None:
    """The contents of every executable SHT_PROGBITS section, sorted (None if
    this struct-only reader cannot lay the file out).  A section laid over the
    ELF header is left out: its bytes are the header's, which a write updates."""
    try:
        lay = Layout(data)
        return sorted(lay.bytes_of(s) for s in lay.sections
                      if s.type == 1 and s.flags & SHF_EXECINSTR and s.offset >= EHDR.size)
    except (struct.error, ValueError, IndexError):
        return None


def _code_kept(before: bytes, path: str, what: str, problems: list, sigs: list) -> None:
    """``write`` adds a table; it never drops or changes code.  (A section that
    merely carries the table's name -- .text renamed -- must survive --force.)"""
    old = _code_sections(before)
    if old is None:
        return
    new = _code_sections(_read(path))
    if new is None or any(new.count(c) < old.count(c) for c in set(old)):
        problems.append(f"{what}: code sections of the input are missing from the output")
        sigs.append("code-lost")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _check_output(path: str, what: str, problems: list, sigs: list, entries: int = 1,
                  options=None) -> None:
    """A written object must be readable by the tool itself, carry a table
    (unless nothing was to be written: --force on an object whose appended
    table is replaced by none restores the object as it was), and a second
    plain write must leave it byte-identical, and so must a ``--force``
    write with the same ``options`` (it reproduces the first write)."""
    from scall_objtool.errors import ScallError
    from scall_objtool.core import Options
    from scall_objtool.core.pipeline import scan_path
    from scall_objtool.table.write import write_path
    before = _read(path)
    try:
        r = scan_path(path, Options())
        if r.existing_table is None and entries:
            problems.append(f"{what}: the written object has no table")
            sigs.append("invalid-output")
        w = write_path(path, Options())
        expected = ("skipped-existing",) if r.existing_table is not None else (
            "unchanged", "skipped-existing")
        if w.action not in expected or _read(path) != before:
            problems.append(f"{what}: a second write changed the written object ({w.action})")
            sigs.append("not-idempotent")
        elif options is not None:
            write_path(path, options, force=True)
            after = _read(path)
            if after != before:
                problems.append(f"{what}: --force on the written object changed it "
                                f"({len(before)} -> {len(after)} bytes)")
                sigs.append("force-not-idempotent")
    except ScallError as e:
        problems.append(f"{what}: the tool rejects its own output: {e}")
        sigs.append("invalid-output")
    except Exception as e:  # noqa: BLE001
        problems.append(f"{what}: reading the output: {type(e).__name__}: {e}")
        sigs.append(_signature(e))


# -------------------------------------------------------------------- worker
def _serve(workdir: str) -> None:
    """Worker loop: read `len\\n` + bytes on stdin, answer one JSON line."""
    import resource
    limit = int(os.environ.get("SCALL_FUZZ_AS_LIMIT", str(1 << 30)))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                        # stray prints must not break the protocol
    import scall_objtool.core.decode  # noqa: F401 - warm up: numpy, capstone
    import scall_objtool.table.render  # noqa: F401
    import scall_objtool.core.pipeline  # noqa: F401
    scall_objtool.core.decode._bulk_layout()      # loads the capstone library
    proto.write(json.dumps({"ready": True}) + "\n")
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        n = int(line)
        data = stdin.read(n)
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        try:
            result = check_bytes(data, workdir)
        except BaseException as e:  # noqa: BLE001 - the harness itself must answer
            result = {"status": "bug", "problems": [f"harness: {e!r}"],
                      "signatures": [_signature(e)], "errors": [], "accepted": 0}
        proto.write(json.dumps(result) + "\n")


class _Worker:
    def __init__(self, workdir: str):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        env.pop("SCALL_OBJTOOL_DEBUG", None)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve",
                                      workdir], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env)
        self.buf = b""
        self.case = None
        self.deadline = None
        ready = self.read_line(time.monotonic() + 60)
        if ready is None:
            raise RuntimeError("fuzz worker did not start")

    def send(self, case, data: bytes, timeout: float):
        self.case = case
        self.proc.stdin.write(b"%d\n" % len(data) + data)
        self.proc.stdin.flush()
        self.deadline = time.monotonic() + timeout

    def read_line(self, deadline: float):
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return "eof"
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def kill(self):
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()


@dataclass
class Tally:
    """Counts over a run; ``bugs`` maps signature -> [(case, first problem)]."""
    cases: int = 0
    accepted: int = 0
    rejected: int = 0
    tracebacks: int = 0
    hangs: int = 0
    crashes: int = 0
    changed_inputs: int = 0
    leftovers: int = 0
    invalid_outputs: int = 0
    bad_messages: int = 0
    known: int = 0
    seconds: float = 0.0
    bugs: dict = field(default_factory=dict)
    known_bugs: dict = field(default_factory=dict)

    def add(self, case: str, result: dict, known: dict) -> None:
        self.cases += 1
        status = result["status"]
        if status == "accepted":
            self.accepted += 1
            return
        if status == "rejected":
            self.rejected += 1
            return
        sigs = result["signatures"]
        unknown = [s for s in sigs if s not in known]
        if not unknown:
            self.known += 1
            for s in sigs:
                self.known_bugs.setdefault(s, []).append(case)
            return
        for s in unknown:
            if s == "hang":
                self.hangs += 1
            elif s == "crash":
                self.crashes += 1
            elif s == "changed-input":
                self.changed_inputs += 1
            elif s == "leftover":
                self.leftovers += 1
            elif s in ("invalid-output", "not-idempotent", "bad-copy", "force-not-idempotent"):
                self.invalid_outputs += 1
            elif s.startswith("bad-message"):
                self.bad_messages += 1
            else:
                self.tracebacks += 1
            self.bugs.setdefault(s, []).append((case, result["problems"][0][:2000]))

    def merge(self, other: "Tally") -> None:
        for k in ("cases", "accepted", "rejected", "tracebacks", "hangs", "crashes",
                  "changed_inputs", "leftovers", "invalid_outputs", "bad_messages", "known"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.seconds += other.seconds
        for k, v in other.bugs.items():
            self.bugs.setdefault(k, []).extend(v)
        for k, v in other.known_bugs.items():
            self.known_bugs.setdefault(k, []).extend(v)

    @property
    def clean(self) -> bool:
        return not self.bugs

    def line(self, label: str) -> str:
        return (f"{label}: {self.cases} cases ({self.accepted} accepted, {self.rejected} "
                f"rejected, {self.known} known bugs): {self.tracebacks} tracebacks, "
                f"{self.hangs} hangs, {self.crashes} crashes, {self.changed_inputs} changed "
                f"inputs, {self.leftovers} leftovers, {self.invalid_outputs} invalid outputs, "
                f"{self.bad_messages} bad messages [{self.seconds:.1f} s]")

    def report(self, limit: int = 3) -> str:
        out = []
        for sig, cases in sorted(self.bugs.items()):
            out.append(f"{sig}: {len(cases)} cases, e.g.")
            for case, prob in cases[:limit]:
                out.append(f"    {case}: {prob}")
        return "\n".join(out)


class WorkerPool:
    """Runs check_bytes over many cases in ``n`` worker processes."""

    def __init__(self, basedir: str, n: int = 2, timeout: float = 60.0):
        self.basedir = basedir
        self.timeout = timeout
        self.n = n
        self.serial = 0
        self.workers = [self._spawn() for _ in range(n)]

    def _spawn(self) -> _Worker:
        self.serial += 1
        return _Worker(os.path.join(self.basedir, f"w{self.serial}"))

    def close(self):
        for w in self.workers:
            w.kill()

    def run(self, cases, known: dict | None = None, hook=None) -> Tally:
        """cases: iterable of (name, bytes).  ``hook(name, data, result)`` is
        called for every result (e.g. to save reproducers)."""
        known = known or {}
        tally = Tally()
        start = time.monotonic()
        it = iter(cases)
        pending = True
        busy: dict[int, tuple[str, bytes]] = {}

        def feed(i):
            nonlocal pending
            try:
                name, data = next(it)
            except StopIteration:
                pending = False
                return
            busy[i] = (name, data)
            self.workers[i].send(name, data, self.timeout)

        for i in range(self.n):
            if pending:
                feed(i)
        while busy:
            fds = {self.workers[i].proc.stdout.fileno(): i for i in busy}
            now = time.monotonic()
            wait = max(0.0, min(self.workers[i].deadline for i in busy) - now)
            ready = [fds[fd] for fd in select.select(list(fds), [], [], wait)[0]]
            if not ready:      # someone's deadline passed
                ready = [i for i in busy if self.workers[i].deadline <= time.monotonic()]
            for i in ready:
                w = self.workers[i]
                name, data = busy.pop(i)
                res = w.read_line(w.deadline)
                if res is None or res == "eof":
                    sig = "hang" if res is None else "crash"
                    rc = w.proc.poll()
                    w.kill()
                    self.workers[i] = self._spawn()
                    res = {"status": "bug", "signatures": [sig], "errors": [],
                           "problems": [f"{sig} (worker exit status {rc})"]}
                tally.add(name, res, known)
                if hook:
                    hook(name, data, res)
                if pending:
                    feed(i)
        tally.seconds = time.monotonic() - start
        return tally


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        _serve(sys.argv[2])
    else:
        sys.exit("usage: robust_harness.py --serve WORKDIR")
