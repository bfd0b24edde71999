"""Read stage: a strict, lazy reader for ELF64 little-endian x86-64 files.

Only what the tool needs is parsed, and only when it is first asked for: the
header and section headers on open, section names on demand, the symbol
table and relocation tables (read in bulk through strided memoryviews,
at C speed) when a caller wants them.  Every offset, size and index read from the file is checked
against the file before it is used, so a hostile file ends in an
:class:`~scall_objtool.errors.InputError`, never an IndexError, a huge
allocation or a hang.

No heavy module is imported here: the tables are read as columns of Python
ints through ``memoryview.cast`` with a stride, which costs far less than
importing numpy does (numpy's import alone takes longer than a whole scan of
kvm.ko).
"""
from __future__ import annotations

import os
import stat
import struct
from itertools import compress

from ..errors import ForeignObject, InputError
from ..records import cached, record

# e_ident / header constants
ELFMAG = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
EM_X86_64 = 62
ET_REL, ET_EXEC, ET_DYN = 1, 2, 3
ET_NAMES = {0: "NONE", 1: "REL", 2: "EXEC", 3: "DYN", 4: "CORE"}
MACHINE_NAMES = {3: "i386", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "S/390",
                 40: "ARM", 50: "IA-64", 62: "x86-64", 183: "AArch64", 243: "RISC-V"}

# section header types and flags
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA = 0, 1, 2, 3, 4
SHT_NOBITS, SHT_REL, SHT_DYNSYM, SHT_GROUP, SHT_SYMTAB_SHNDX = 8, 9, 11, 17, 18
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR, SHF_INFO_LINK = 0x1, 0x2, 0x4, 0x40
SHF_COMPRESSED = 0x800
#: the byte values without bit 3 (SHF_COMPRESSED's, in sh_flags' second byte)
_WITHOUT_BIT_3 = bytes(b for b in range(256) if not b & 0x08)
SHN_UNDEF, SHN_LORESERVE, SHN_ABS, SHN_COMMON, SHN_XINDEX = 0, 0xFF00, 0xFFF1, 0xFFF2, 0xFFFF

# symbol binding and type
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE = 0, 1, 2, 3, 4

# relocation types used by the tool
R_X86_64_NONE = 0
R_X86_64_64 = 1
R_X86_64_PC32 = 2
R_X86_64_PLT32 = 4
R_X86_64_GOTPCREL = 9
R_X86_64_32 = 10
R_X86_64_32S = 11
R_X86_64_PC64 = 24
R_X86_64_GOTPCRELX = 41
R_X86_64_REX_GOTPCRELX = 42
RELOC_NAMES = {
    0: "R_X86_64_NONE", 1: "R_X86_64_64", 2: "R_X86_64_PC32", 3: "R_X86_64_GOT32",
    4: "R_X86_64_PLT32", 9: "R_X86_64_GOTPCREL", 10: "R_X86_64_32",
    11: "R_X86_64_32S", 24: "R_X86_64_PC64", 26: "R_X86_64_GOTPC32",
    41: "R_X86_64_GOTPCRELX", 42: "R_X86_64_REX_GOTPCRELX",
}

#: addresses are 64-bit: arithmetic on them wraps modulo 2**64
ADDRESS_MASK = (1 << 64) - 1

#: raw LLVM bitcode, and the bitcode wrapper (0x0B17C0DE little-endian)
LLVM_BITCODE_MAGIC = (b"BC\xc0\xde", b"\xde\xc0\x17\x0b")

#: the bytes of distinct symbol names read from one file stay below
#: FACTOR x the string table's size + BASE (see ElfFile.symbol_name_bytes)
NAME_BUDGET_FACTOR = 8
NAME_BUDGET_BASE = 64 << 20

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")
_U64, _I64, _U32 = struct.Struct("<Q"), struct.Struct("<q"), struct.Struct("<I")
_RELA_ENTRY = struct.Struct("<QQq")
SYM_SIZE = 24
RELA_SIZE = 24
REL_SIZE = 16

def reloc_name(rtype: int) -> str:
    return RELOC_NAMES.get(rtype, f"R_X86_64_{rtype}")


def printable(raw: bytes) -> str:
    """A name from the file as text: UTF-8 where valid, control characters and
    invalid bytes escaped, so that reports never carry raw control bytes."""
    text = raw.decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


#: a name from a file longer than this many bytes (no kernel symbol is: the
#: kernel's KSYM_NAME_LEN is 512) is shown shortened, so that a name repeated
#: for every site costs the output a bounded size a site
NAME_MAX = 512
#: the bytes of such a name that are kept, before the mark that replaces the rest
NAME_KEEP = 256


#: names already shown, for the names every object repeats (``.text``,
#: ``.rela.text``, ...): a batch shows each section name of each object;
#: short names only, and a bounded number of them
_SHOWN: dict[bytes, str] = {}
_SHOWN_MAX, _SHOWN_LEN = 1 << 14, 64


def display_name(raw: bytes) -> str:
    """A name from the file as it is shown (``printable``); a name longer than
    NAME_MAX bytes is shown as its first NAME_KEEP bytes and
    ``...[N bytes, sha256:H]`` (H: 16 hex digits of the whole name's SHA-256),
    so that two long names stay apart and the same name reads the same in
    every report.  The Python objects keep the raw bytes (``name_bytes``)."""
    shown = _SHOWN.get(raw)
    if shown is not None:
        return shown
    if len(raw) <= NAME_MAX:
        shown = printable(raw)
        if len(raw) <= _SHOWN_LEN and len(_SHOWN) < _SHOWN_MAX:
            _SHOWN[raw] = shown
        return shown
    import hashlib
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return f"{printable(raw[:NAME_KEEP])}...[{len(raw)} bytes, sha256:{digest}]"


@record
class Section:
    index: int
    name_off: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int
    name: str = ""
    name_bytes: bytes = b""

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)

    def copy(self) -> "Section":
        """A copy of this section header, to change."""
        new = object.__new__(Section)
        new.__dict__.update(self.__dict__)
        return new

    def pack(self) -> bytes:
        return SHDR.pack(self.name_off, self.type, self.flags, self.addr, self.offset,
                         self.size, self.link, self.info, self.addralign, self.entsize)


@record
class Symbol:
    index: int
    name: str
    name_bytes: bytes
    bind: int
    type: int
    other: int
    shndx: int          # resolved through SHT_SYMTAB_SHNDX where needed
    value: int
    size: int


def parse_header(data: bytes, path: str | None = None) -> tuple:
    """The fields of an x86-64 ELF64 LE header (``EHDR``), checked: InputError
    (ForeignObject for another class or machine) for anything else.  Needs only
    the first ``EHDR.size`` bytes, so a reader checks them before reading more."""

    def fail(message: str):
        raise InputError(message, path)

    def foreign(message: str):
        raise ForeignObject(message, path)
    if data[:4] in LLVM_BITCODE_MAGIC:
        fail("LLVM bitcode (clang -flto), not an ELF object: it has no machine code "
             "to scan; build without -flto or scan the final link")
    if len(data) < 4 or data[:4] != ELFMAG:
        fail("not an ELF file" if len(data) >= 4 or not ELFMAG.startswith(data)
             else f"truncated ELF header ({len(data)} bytes)")
    if len(data) < 6:
        fail(f"truncated ELF header ({len(data)} bytes)")
    if data[4] == 1:
        foreign("32-bit ELF (ELFCLASS32) is not supported; x86-64 objects are ELF64")
    if data[4] != ELFCLASS64:
        fail(f"invalid ELF class {data[4]}")
    if data[5] == 2:
        foreign("big-endian ELF is not supported; x86-64 objects are little-endian")
    if data[5] != ELFDATA2LSB:
        fail(f"invalid ELF data encoding {data[5]}")
    if len(data) < EHDR.size:
        fail(f"truncated ELF header ({len(data)} of {EHDR.size} bytes)")
    fields = EHDR.unpack_from(data, 0)
    ident, e_type, e_machine, version, e_ehsize = (fields[0], fields[1], fields[2],
                                                   fields[3], fields[8])
    if ident[6] != 1 or version != 1:
        fail(f"unsupported ELF version {version}")
    if e_machine != EM_X86_64:
        name = MACHINE_NAMES.get(e_machine, f"machine {e_machine}")
        foreign(f"not an x86-64 object (e_machine is {name})")
    if e_type not in (ET_REL, ET_EXEC, ET_DYN):
        fail(f"unsupported ELF type {ET_NAMES.get(e_type, e_type)}")
    if e_ehsize != EHDR.size:
        fail(f"bad ELF header size {e_ehsize}")
    return fields


class ElfFile:
    """A parsed ELF64 LE x86-64 file held in memory.

    ``data`` is the whole file; nothing here modifies it.
    """

    def __init__(self, data: bytes, path: str | None = None):
        self.data = data
        self.path = path
        self._name_bytes = 0            # bytes of distinct symbol names read so far
        self._prefixed: dict[bytes, list[int]] = {}     # names_with_prefix's answers
        self._parse_header()
        self._parse_sections()

    # ------------------------------------------------------------------ header
    def _fail(self, message: str):
        raise InputError(message, self.path)

    def _parse_header(self) -> None:
        (ident, self.e_type, self.e_machine, version, self.e_entry, self.e_phoff,
         self.e_shoff, self.e_flags, self.e_ehsize, self.e_phentsize, self.e_phnum,
         self.e_shentsize, self.e_shnum, self.e_shstrndx) = parse_header(self.data, self.path)

    @property
    def linked(self) -> bool:
        """A linked image (executable or shared object): addresses are final."""
        return self.e_type in (ET_EXEC, ET_DYN)

    def section_at(self, address: int) -> Section | None:
        """The allocated section holding ``address`` (linked images); of
        overlapping sections, the one with the lowest index."""
        from bisect import bisect_right     # linked images only: off the start-up path
        bounds, owners = self._address_map
        k = bisect_right(bounds, address) - 1
        return owners[k] if k >= 0 else None

    @cached
    def _address_map(self) -> tuple[list[int], list[Section | None]]:
        """The allocated sections' start and end addresses, sorted, and for
        each the section holding the addresses from it to the next: built once
        (a sweep with a heap of the open sections by index), so that
        ``section_at`` is a bisection however many sections and queries."""
        import heapq                    # linked images only: off the start-up path
        spans = sorted((s.addr, s.addr + s.size, s.index) for s in self.sections
                       if s.flags & SHF_ALLOC and s.size)
        bounds = sorted({b for start, end, _i in spans for b in (start, end)})
        owners: list[Section | None] = []
        open_: list[tuple[int, int]] = []
        k = 0
        for b in bounds:
            while k < len(spans) and spans[k][0] <= b:
                heapq.heappush(open_, (spans[k][2], spans[k][1]))
                k += 1
            while open_ and open_[0][1] <= b:
                heapq.heappop(open_)
            owners.append(self.sections[open_[0][0]] if open_ else None)
        return bounds, owners

    def read_at(self, address: int, size: int) -> bytes | None:
        """``size`` file bytes at a virtual address, or None if not in the file."""
        sec = self.section_at(address)
        if sec is None or sec.type == SHT_NOBITS or address + size > sec.addr + sec.size:
            return None
        off = sec.offset + address - sec.addr
        return self.data[off:off + size]

    @property
    def elf_type(self) -> str:
        return ET_NAMES.get(self.e_type, str(self.e_type))

    # --------------------------------------------------------- section headers
    def _parse_sections(self) -> None:
        """Check the section header table; the ``Section`` records are made
        when first asked for (``sections``, ``section_record``): an object
        without static calls needs two of them (its symbol table and the
        string table it links to), and a batch reads thousands of objects.
        Every check is made here, in the order of the records' fields, so a
        damaged table gives the same error whichever record is asked for."""
        data, size = self.data, len(self.data)
        shoff, shnum = self.e_shoff, self.e_shnum
        self._raw: list[tuple] = []             # each header's fields, as unpacked
        self._types: list[int] = []             # each header's sh_type
        self._made: list[Section | None] = []   # the records made so far
        self.extended_shnum = False
        #: the section name table's bytes: every section's name is a
        #: NUL-terminated string in it (a name absent from it names no section)
        self.shstrtab = b""
        if shoff == 0:
            if shnum:
                self._fail("section header table offset is 0 but e_shnum is not")
            self.shstrndx = 0
            return
        if self.e_shentsize != SHDR.size:
            self._fail(f"bad section header entry size {self.e_shentsize}")
        if shoff % 8:
            self._fail(f"misaligned section header table offset {shoff:#x}")
        if shoff + SHDR.size > size:
            self._fail(f"section header table at {shoff:#x} lies beyond the end of the file "
                       f"({size} bytes)")
        first = SHDR.unpack_from(data, shoff)   # (name, type, flags, addr, offset, size, link, ...)
        self.extended_shnum = shnum == 0
        if shnum == 0:
            shnum = first[5]            # extended numbering (more than 0xff00 sections)
        if shnum == 0:
            self._fail("section header table offset set but no sections")
        if shoff + shnum * SHDR.size > size:
            self._fail(f"section header table ({shnum} entries at {shoff:#x}) is truncated: "
                       f"file has {size} bytes")
        shstrndx = self.e_shstrndx
        if shstrndx == SHN_XINDEX:
            shstrndx = first[6]
        self.shstrndx = shstrndx
        # every header unpacked at C speed (kvm.ko: 91 sections; a batch: 54,000)
        table = memoryview(data)[shoff:shoff + shnum * SHDR.size]
        raw = self._raw = list(SHDR.iter_unpack(table))
        self._made = [None] * shnum
        words = table.cast("Q")         # each header is 8 of them: sh_offset 3rd, sh_size 4th
        self._types = table.cast("I")[1::16].tolist()      # sh_type, a column
        # (int.__add__: _operator's import, 0.1 ms, is more than this costs a file)
        if max(map(int.__add__, words[3::8], words[4::8])) > size:
            # some section reaches past the end (a .bss may): which, and does it hold bytes?
            for i, (_n, stype, _f, _a, off, length, *_rest) in enumerate(raw):
                if stype != SHT_NOBITS and stype != SHT_NULL:
                    if off > size or length > size - off:
                        self._fail(f"section {i} ({off:#x}+{length:#x}) extends "
                                   f"past the end of the file ({size} bytes)")
        compressed = []
        # SHF_COMPRESSED is bit 3 of sh_flags' second byte: looked for in those bytes first
        if data[shoff + 9:shoff + shnum * SHDR.size:SHDR.size].translate(None, _WITHOUT_BIT_3):
            compressed = [i for i, t in enumerate(raw)
                          if t[2] & SHF_COMPRESSED and t[2] & SHF_EXECINSTR]
        if shstrndx == SHN_UNDEF or shstrndx >= shnum:
            self._fail(f"section name string table index {shstrndx} is out of range")
        strsec = raw[shstrndx]
        if strsec[1] != SHT_STRTAB:
            self._fail(f"section name table (section {shstrndx}) is not a string table")
        names = self.shstrtab = data[strsec[4]:strsec[4] + strsec[5]]
        # every name lies in the table and ends in it when the table ends with
        # a NUL and no name starts past it; else each is read now, and the first
        # bad one reported (by _cstring) in section order
        if shnum > 1 and (not names.endswith(b"\0")
                          or max(table.cast("I")[16::16]) >= len(names)):
            self.sections
        if compressed:
            # the gABI forbids SHF_COMPRESSED on allocated sections; decoding the
            # compressed bytes as instructions would report nonsense
            self._fail(f"code section {self.section_record(compressed[0]).name} is compressed "
                       "(SHF_COMPRESSED): compressed code cannot be scanned or patched")

    def section_record(self, index: int) -> Section:
        """The record of section ``index`` (in range), made once."""
        sec = self._made[index]
        if sec is None:
            sec = self._made[index] = Section(index, *self._raw[index])
            if index:
                names, off = self.shstrtab, sec.name_off
                end = names.find(b"\0", off) if off < len(names) else -1
                # a name outside the table, or not NUL-terminated: _cstring says which
                raw = names[off:end] if end >= 0 else self._cstring(names, off, "section name")
                sec.name_bytes = raw
                shown = _SHOWN.get(raw)
                sec.name = display_name(raw) if shown is None else shown
        return sec

    @cached
    def sections(self) -> list[Section]:
        """Every section's record, in index order."""
        record = self.section_record
        return [s if s is not None else record(i) for i, s in enumerate(self._made)]

    def _cstring(self, table: bytes, off: int, what: str) -> bytes:
        if off >= len(table):
            if off == 0:
                return b""
            self._fail(f"{what} offset {off:#x} is outside its string table "
                       f"({len(table)} bytes)")
        end = table.find(b"\0", off)
        if end < 0:
            self._fail(f"{what} at {off:#x} is not NUL-terminated")
        return table[off:end]

    def section_bytes(self, sec: Section) -> bytes:
        """The file bytes of ``sec`` (empty for SHT_NOBITS)."""
        if sec.type == SHT_NOBITS or sec.type == SHT_NULL:
            return b""
        return self.data[sec.offset:sec.offset + sec.size]

    def section(self, index: int) -> Section:
        if not 0 <= index < len(self._raw):
            self._fail(f"section index {index} is out of range")
        return self.section_record(index)

    def section_by_name(self, name: str) -> Section | None:
        # a plain name (printable ASCII, no backslash, shorter than a shortened
        # one) is shown as its bytes, which the name table holds NUL-terminated
        if len(name) <= NAME_KEEP and name.isascii() and name.isprintable() \
                and "\\" not in name and name.encode() + b"\0" not in self.shstrtab:
            return None
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    # ------------------------------------------------------------ symbol table
    @cached
    def symtab(self) -> Section | None:
        types = self._types
        if types.count(SHT_SYMTAB) > 1:
            self._fail("more than one symbol table")
        if SHT_SYMTAB not in types:
            return None
        sec = self.section_record(types.index(SHT_SYMTAB))
        if sec.entsize not in (0, SYM_SIZE):
            self._fail(f"symbol table has entry size {sec.entsize}, expected {SYM_SIZE}")
        if sec.size % SYM_SIZE:
            self._fail(f"symbol table size {sec.size:#x} is not a multiple of {SYM_SIZE}")
        if not 0 < sec.link < len(self._raw) or sec.link == sec.index:
            self._fail(f"symbol table links to invalid string table section {sec.link}")
        if self._raw[sec.link][1] != SHT_STRTAB:
            self._fail(f"symbol table's string table (section {sec.link}) is not SHT_STRTAB")
        if sec.info > sec.size // SYM_SIZE:
            self._fail(f"symbol table sh_info {sec.info} exceeds its {sec.size // SYM_SIZE} "
                       "entries")
        return sec

    @cached
    def strtab(self) -> bytes:
        sym = self.symtab
        return self.section_bytes(self.section_record(sym.link)) if sym else b""

    @cached
    def syms(self) -> "SymbolColumns":
        """The symbol table as columns of Python ints (empty without one)."""
        return SymbolColumns(self)

    @property
    def num_symbols(self) -> int:
        sec = self.symtab
        return sec.size // SYM_SIZE if sec else 0

    def symbol_name_bytes(self, name_off: int) -> bytes:
        """A symbol's name.  Names are shared by offset, and the bytes of distinct
        names read from one file are bounded: a hostile string table whose many
        symbols point into one long name (each at another offset) would otherwise
        cost names x length in time and memory."""
        off = int(name_off)
        names = self.__dict__.setdefault("_names", {})
        raw = names.get(off)
        if raw is None:
            raw = names[off] = self._cstring(self.strtab, off, "symbol name")
            self._name_bytes += len(raw)
            if self._name_bytes > NAME_BUDGET_FACTOR * len(self.strtab) + NAME_BUDGET_BASE:
                self._fail("symbol names overlap beyond any compiler's output (a hostile "
                           "string table): refusing to read them all")
        return raw

    def symbol(self, index: int) -> Symbol:
        if not 0 <= index < self.num_symbols:
            self._fail(f"symbol index {index} is out of range")
        cols = self.syms
        shndx = cols.shndx[index]
        raw = self.symbol_name_bytes(cols.name[index])
        info = cols.info[index]
        stype = info & 0xF
        if stype == STT_SECTION and not raw and 0 < shndx < len(self.sections):
            name = self.sections[shndx].name
        else:
            name = display_name(raw)
        return Symbol(index, name, raw, info >> 4, stype, cols.other[index], shndx,
                      cols.value[index], cols.size[index])

    #: ``names_with_prefix`` searches the name fields for each string-table
    #: offset of the prefix up to this many of them; past it, one pass over
    #: the column
    NAME_SEARCHES = 16

    def names_with_prefix(self, prefix: bytes) -> list[int]:
        """Indices of the symbols whose name starts with ``prefix``, ascending.

        A name starts with the prefix exactly when its string-table offset is
        one of the offsets at which the prefix occurs, so the string table is
        searched (at C speed) and the symbols are matched against the hits:
        for a few hits, by searching the name fields (copied into one string,
        4 bytes a symbol) for each hit's offset, without a Python int per
        symbol; for more, the name column.  Asked again (the writer asks for
        the trampoline prefix and the keys'), the first answer."""
        got = self._prefixed.get(prefix)
        if got is None:
            got = self._prefixed[prefix] = self._names_with_prefix(prefix)
        return list(got)

    def _names_with_prefix(self, prefix: bytes) -> list[int]:
        if self.symtab is None or prefix not in self.strtab:
            return []
        strtab = self.strtab
        starts = set()
        pos = strtab.find(prefix)
        while pos >= 0:
            starts.add(pos)
            pos = strtab.find(prefix, pos + 1)
        if len(starts) > self.NAME_SEARCHES:
            names = self.syms.name
            return list(compress(range(len(names)), map(starts.__contains__, names)))
        sec = self.symtab
        col = memoryview(self.data)[sec.offset:sec.offset + sec.size].cast("I")[::6].tobytes()
        return sorted(i for start in starts for i in _fields_equal(col, start))

    # -------------------------------------------------------- relocation tables
    # -------------------------------------------------------- relocation tables
    def relocation_sections(self) -> list[Section]:
        """SHT_RELA / SHT_REL sections that apply to a section through the symtab."""
        out = []
        sym = self.symtab
        for sec in self.sections:
            if sec.type not in (SHT_RELA, SHT_REL):
                continue
            if sym is None or sec.link != sym.index:
                continue        # dynamic relocations (.rela.dyn) and the like
            if not 0 < sec.info < len(self.sections) or sec.info == sec.index:
                self._fail(f"relocation section {sec.name} applies to invalid section "
                           f"{sec.info}")
            want = RELA_SIZE if sec.type == SHT_RELA else REL_SIZE
            if sec.entsize not in (0, want):
                self._fail(f"relocation section {sec.name} has entry size {sec.entsize}, "
                           f"expected {want}")
            if sec.size % want:
                self._fail(f"relocation section {sec.name} size {sec.size:#x} is not a "
                           f"multiple of {want}")
            out.append(sec)
        return out

    def relocations(self, sec: Section) -> "RelocColumns":
        """The entries of one relocation section as columns.

        For SHT_REL the implicit addend is read from the target section."""
        return RelocColumns(self, sec)


def _fields_equal(col: bytes, value: int) -> list[int]:
    """Indices of the 4-byte little-endian fields of ``col`` (a column of
    them, copied into one string) that hold ``value``: searched at C speed,
    a match off a field's boundary (across two fields) not counted."""
    pat = value.to_bytes(4, "little")
    find, out = col.find, []
    at = find(pat)
    while at >= 0:
        if at & 3:
            at = find(pat, at + 1)
        else:
            out.append(at >> 2)
            at = find(pat, at + 4)
    return out


def _column(data: bytes, offset: int, size: int, fmt: str, start: int, step: int) -> list:
    """Every ``step``-th item (from ``start``) of a table read as ``fmt`` items."""
    if size == 0:
        return []
    return memoryview(data)[offset:offset + size].cast(fmt)[start::step].tolist()


class SymbolColumns:
    """Symbol table fields as parallel lists, read in bulk with strided views."""

    def __init__(self, elf: ElfFile):
        sec = elf.symtab
        data = elf.data
        off, size = (sec.offset, sec.size) if sec else (0, 0)
        self.name = _column(data, off, size, "I", 0, 6)
        self.info = list(data[off + 4:off + size:SYM_SIZE]) if size else []
        self.other = list(data[off + 5:off + size:SYM_SIZE]) if size else []
        shndx = _column(data, off, size, "H", 3, 12)
        if SHN_XINDEX in shndx:
            ext = None
            for s in elf.sections:
                if s.type == SHT_SYMTAB_SHNDX and sec is not None and s.link == sec.index:
                    ext = s
            if ext is None:
                elf._fail("a symbol uses SHN_XINDEX but there is no SHT_SYMTAB_SHNDX section")
            if ext.size < len(shndx) * 4:
                elf._fail("SHT_SYMTAB_SHNDX section is shorter than the symbol table")
            big = _column(data, ext.offset, len(shndx) * 4, "I", 0, 1)
            shndx = [big[i] if v == SHN_XINDEX else v for i, v in enumerate(shndx)]
        self.shndx = shndx
        self.value = _column(data, off, size, "Q", 1, 3)
        self.size = _column(data, off, size, "Q", 2, 3)

    def type(self, i: int) -> int:
        return self.info[i] & 0xF

    def bind(self, i: int) -> int:
        return self.info[i] >> 4

    #: ``in_section`` scans the column this many times before it builds an
    #: index of every section (cheaper when few sections are asked about)
    SCANS_BEFORE_INDEX = 8

    def in_section(self, index: int) -> list[int]:
        """Indices of the symbols whose st_shndx is ``index``, ascending (a
        section's asked for again -- the prover's function index, then the
        writer's section symbol -- is not scanned again)."""
        seen = self.__dict__.setdefault("_seen", {})
        got = seen.get(index)
        if got is None:
            got = seen[index] = self._in_section(index)
        return list(got)

    def _in_section(self, index: int) -> list[int]:
        by = self.__dict__.get("_by_section")
        if by is None:
            self._scans = getattr(self, "_scans", 0) + 1
            if self._scans <= self.SCANS_BEFORE_INDEX:
                shndx = self.shndx
                # (a comprehension: index.__eq__ through map is a slot wrapper, twice slower)
                return [i for i, v in enumerate(shndx) if v == index]
            by = self._by_section = {}
            for i, v in enumerate(self.shndx):
                by.setdefault(v, []).append(i)
        return by.get(index, [])


class RelocColumns:
    """One relocation section's entries as parallel lists."""

    def __init__(self, elf: ElfFile, sec: Section):
        self._data, self._sec = elf.data, sec
        self._words = (RELA_SIZE if sec.type == SHT_RELA else REL_SIZE) // 8
        if sec.type != SHT_RELA:
            self._target = (elf, sec.info)
            self._code: bytes | None = None     # the target's bytes, read once

    def _col(self, fmt: str, start: int, step: int) -> list:
        return _column(self._data, self._sec.offset, self._sec.size, fmt, start, step)

    # each column is read when first asked for: finding candidates looks at
    # every entry's symbol, and at the rest of a few entries only; the DWARF
    # reader at the offsets, and at the few entries a value it reads has
    @cached
    def sym(self) -> list:
        return self._col("I", 3, self._words * 2)

    @cached
    def offset(self) -> list:
        return self._col("Q", 0, self._words)

    @cached
    def type(self) -> list:
        return self._col("I", 2, self._words * 2)

    @cached
    def addend(self) -> list:
        if self._sec.type == SHT_RELA:
            return self._col("q", 2, 3)
        return [0] * len(self)

    def __len__(self) -> int:
        return self._sec.size // (8 * self._words)

    #: ``with_symbols`` searches the symbol field's bytes once per wanted
    #: symbol up to this many of them; past it, one pass over the column
    SEARCHES = 16
    #: ... and reads the entries whose symbol's low byte is a wanted one's
    #: when they are at most one in this many
    LOW_SHARE = 16

    def with_symbols(self, wanted: set[int]) -> list[tuple[int, int]]:
        """(index, symbol) of the entries whose symbol is in ``wanted``, in
        index order, without a Python int per entry where that can be
        avoided (a module's relocations are a million entries, of which a
        few name a trampoline).  For at most ``SEARCHES`` wanted symbols:

        * the low bytes of the symbol fields are copied into one string (one
          byte an entry, at C speed) and the entries whose low byte is one of
          the wanted symbols' counted (``translate``): none, and the table is
          done; a few (at most one in ``LOW_SHARE``), and each is read;
        * else the whole symbol fields are copied into one string (4 bytes
          an entry) and each symbol's bytes searched for in it (a match off
          a field's boundary straddles two fields).

        For more: unless every entry names a symbol below the least wanted
        one (``symbols_below``; unwind and patch-site tables name section
        symbols), the column, each entry looked up in ``wanted``."""
        n = len(self)
        if not n or not wanted:
            return []
        if len(wanted) > self.SEARCHES:
            if self.symbols_below(min(wanted)):
                return []
            sym = self.sym
            return [(i, sym[i]) for i in
                    compress(range(n), map(wanted.__contains__, sym))]
        data, size = self._data, 8 * self._words
        field = self._sec.offset + 12       # r_info's high half: the symbol
        low = data[field:self._sec.offset + n * size:size]
        symbols = [s for s in wanted if 0 <= s <= 0xFFFFFFFF]
        lows = bytes({s & 0xFF for s in symbols})
        hits = n - len(low.translate(None, lows))
        if not hits:
            return []
        if hits * self.LOW_SHARE <= n:
            unpack = _U32.unpack_from
            out = []
            for b in lows:
                pos = low.find(b)
                while pos >= 0:
                    s = unpack(data, field + pos * size)[0]
                    if s in wanted:
                        out.append((pos, s))
                    pos = low.find(b, pos + 1)
            return sorted(out)
        start = self._sec.offset
        col = memoryview(data)[start:start + n * size].cast("I")[3::2 * self._words].tobytes()
        return sorted((i, s) for s in symbols for i in _fields_equal(col, s))

    def offsets(self) -> memoryview:
        """The offset column as a strided view of the file's bytes (items of
        'Q': no copy, and no Python int per entry): for a table that is
        searched, not walked."""
        start = self._sec.offset
        end = start + 8 * self._words * len(self)
        return memoryview(self._data)[start:end].cast("Q")[::self._words]

    def symbols_below(self, limit: int) -> bool:
        """Does every entry refer to a symbol index below ``limit``?  Computed
        on the byte columns of the symbol fields at C speed, without an int
        per entry: whether a column holds a byte at or above a bound
        (``translate`` deleting those below), and for the low byte, among the
        entries whose second byte is the bound's (a mask, one big-integer AND)."""
        if not len(self):
            return True
        step, base = 8 * self._words, self._sec.offset + 12
        end = self._sec.offset + self._sec.size
        col = [self._data[base + k:end:step] for k in range(4)]    # little-endian bytes

        def any_at_least(column: bytes, bound: int) -> bool:
            return bool(column.translate(None, bytes(range(min(bound, 256)))))
        if limit >> 16 or any_at_least(col[3], 1) or any_at_least(col[2], 1):
            view = memoryview(self._data)[self._sec.offset:end]      # (an int each)
            return max(view.cast("I")[3::self._words * 2]) < limit
        hi = limit >> 8
        if any_at_least(col[1], hi + 1):
            return False
        if not any_at_least(col[1], hi):
            return True
        keep = col[1].translate(bytes(0xFF if b == hi else 0 for b in range(256)))
        masked = int.from_bytes(col[0], "little") & int.from_bytes(keep, "little")
        return not any_at_least(masked.to_bytes(len(col[0]), "little"), limit & 0xFF)

    def info_entry(self, i: int) -> tuple[int, int, int]:
        """(type, symbol, addend) of entry ``i`` alone (SHT_REL: addend 0, the
        addend is in the relocated field)."""
        off = self._sec.offset + 8 * self._words * i
        info = _U64.unpack_from(self._data, off + 8)[0]
        addend = _I64.unpack_from(self._data, off + 16)[0] if self._words == 3 else 0
        return info & 0xFFFFFFFF, info >> 32, addend

    def entry(self, i: int) -> tuple[int, int, int]:
        """(r_offset, type, addend) of entry ``i`` (SHT_REL: the implicit addend),
        read alone: a few entries of a large table cost less than its columns."""
        if self._sec.type != SHT_RELA:
            return self.offset[i], self.type[i], self.implicit_addend(i)
        off, info, addend = _RELA_ENTRY.unpack_from(self._data, self._sec.offset + i * RELA_SIZE)
        return off, info & 0xFFFFFFFF, addend

    def implicit_addend(self, i: int) -> int:
        """SHT_REL: the addend stored in the relocated field."""
        if not hasattr(self, "_target"):
            return self.addend[i]
        code = self._code
        if code is None:
            elf, target = self._target
            code = self._code = elf.section_bytes(elf.sections[target])
        off = self.offset[i]
        if off + 4 <= len(code):
            return int.from_bytes(code[off:off + 4], "little", signed=True)
        return 0


#: refuse files larger than this (a sanity bound; vmlinux is ~340 MB)
MAX_FILE = 4 << 30


#: the first bytes of a file that say what it is (an ELF header is 64 bytes)
HEAD = EHDR.size
#: what else an input may start with: ar archives (regular, thin)
ARCHIVE_MAGICS = (b"!<arch>\n", b"!<thin>\n")


def _stat_regular(path: str, st: os.stat_result | None = None) -> os.stat_result:
    """``path``'s stat (``st``, when the caller has just taken it), checked:
    a regular file of at most MAX_FILE bytes."""
    if st is None:
        try:
            st = os.stat(path)
        except OSError as e:
            raise InputError(f"cannot open: {e.strerror}", path) from None
        except ValueError:
            raise InputError("cannot open: invalid path", path) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file", path)
    if st.st_size > MAX_FILE:
        raise InputError(f"file is too large ({st.st_size} bytes)", path)
    return st


def read_file(path: str, st: os.stat_result | None = None) -> bytes:
    """A regular file's bytes, at most MAX_FILE.  Its first ``HEAD`` bytes are
    read and checked first: the rest is read only when they are an x86-64 ELF
    header, an ar archive or a compressed module (a 4 GiB file of anything else
    costs 64 bytes of reading, not 4 GiB).  ``st``: the file's stat, when the
    caller has just taken it (a write compares it with the file's before the
    rename), not taken again.

    Five system calls for a file that does not change while it is read (stat,
    open, the header, the whole file from its start at the size the stat
    gave plus one byte, close): a batch reads thousands of objects.

    The file is read, never mapped: a mapped file truncated in place while it
    is read (``cp`` over a vmlinux) kills the process with SIGBUS, where a
    read leaves the bytes as they were read."""
    size = _stat_regular(path, st).st_size
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            head = os.read(fd, HEAD)
            if len(head) < HEAD:
                return head                     # all of it; the parser says what is wrong
            if not head.startswith(ARCHIVE_MAGICS) and not compression(head):
                parse_header(head, path)        # raises unless an x86-64 ELF header
            # one more byte than the stat said: a file that grew since is read
            # to its end, as a file read to EOF would be
            data = os.pread(fd, size + 1, 0)
            if len(data) > size:                # it grew since the stat
                parts, got = [data], len(data)
                while got <= MAX_FILE:
                    part = os.pread(fd, 1 << 20, got)
                    if not part:
                        break
                    parts.append(part)
                    got += len(part)
                data = b"".join(parts)
        finally:
            os.close(fd)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    if len(data) > MAX_FILE:
        raise InputError(f"file is too large (more than {MAX_FILE} bytes)", path)
    return data


def read_range(path: str, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of a regular file (an archive's member, read
    alone rather than with the whole archive); InputError if they are not all there."""
    _stat_regular(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            parts, got = [], 0
            while got < size:
                part = os.pread(fd, size - got, offset + got)
                if not part:
                    break
                parts.append(part)
                got += len(part)
        finally:
            os.close(fd)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    if len(data) != size:
        raise InputError(f"truncated: {size} bytes at offset {offset} are not all in the "
                         "file (did it change?)", path)
    return data


def compression(data: bytes) -> str | None:
    """``xz``, ``zstd`` or ``gzip`` for a compressed module, else None; the codec
    module is imported only for data that starts like one of them."""
    if data[:1] not in (b"\xfd", b"\x28", b"\x1f"):      # the codecs' first bytes
        return None
    from .compressed import compression as codec
    return codec(data)


#: what the kernel's scripts/sign-file appends last, after a module's signature
SIGNATURE_MAGIC = b"~Module signature appended~\n"


def signed(data: bytes) -> bool:
    """Does ``data`` end with a module signature (the kernel's marker)?"""
    return data.endswith(SIGNATURE_MAGIC)


def load_file(path: str, display: str | None = None) -> bytes:
    """A file's bytes, a compressed module (.ko.xz, .ko.zst, .ko.gz: recognised by
    its magic) expanded."""
    data = read_file(path)
    if compression(data):
        from .compressed import decompress
        data = decompress(data, display or path)
    return data


def open_elf(path: str) -> ElfFile:
    """A parsed object, linked image or (expanded) compressed module."""
    return ElfFile(load_file(path), path)
