"""Emit stage: build ``.static_call_sites`` and rewrite the object.

The rewrite follows recordmcount: every original byte stays where it was.
New data is appended at the end of the file:

1. the table (8 zero bytes an entry; both fields are filled by relocations),
2. ``.rela.static_call_sites`` (two R_X86_64_PC32 relocations an entry),
3. when key symbols must be added: a copy of ``.symtab`` (and of
   ``SHT_SYMTAB_SHNDX``) with the new symbols appended -- new symbols are
   undefined globals, so appending keeps locals-before-globals intact and no
   existing symbol index changes,
4. copies of the string tables that gained names,
5. a new section header table: the old headers, repointed where a section
   moved, and the two new ones.

Finally the ELF header's e_shoff / e_shnum are updated.  The old symbol
table, string tables and section header table stay in the file, unreferenced.

With ``--force`` an existing table keeps its section indices (so symbols that
refer to it stay valid) and its headers are repointed at the new data.
"""
from __future__ import annotations

import struct
from bisect import bisect_left, bisect_right

from ..core import TAIL_KINDS, ObjectResult, Options, Site, location
from ..core.elf import (EHDR, R_X86_64_PC32, SHDR, SHF_ALLOC, SHF_INFO_LINK, SHF_WRITE,
                        SHN_LORESERVE, SHN_UNDEF, SHT_PROGBITS, SHT_REL, SHT_RELA,
                        SHT_SYMTAB_SHNDX, STB_GLOBAL, STB_WEAK, STT_FILE, STT_FUNC, STT_NOTYPE,
                        STT_SECTION, ElfFile, Section, printable)
from ..core.intervals import Innermost
from ..errors import InputError, KeyMissingError
from ..records import record
from . import FLAG_TAIL, RELA_TABLE, TABLE, key_name, table_sections

SYM = struct.Struct("<IBBHQQ")
RELA = struct.Struct("<QQq")


@record                 # not a dataclass: importing dataclasses costs more than a write
class Entry:
    site: Site
    addr_sym: int
    addr_addend: int
    key_sym: int            # index; >= number of symbols for a symbol to be added
    flags: int


class Plan:
    """What will be written for one object, before any byte is produced."""

    def __init__(self, elf: ElfFile, result: ObjectResult, options: Options):
        self.elf = elf
        self.options = options
        self.entries: list[Entry] = []
        self.new_keys: list[bytes] = []           # names of symbols to add
        self.warnings: list[str] = []
        sites = [s for s in result.sites if s.patchable]
        sites.sort(key=lambda s: (s.section_index, s.offset))
        if not sites:
            return
        keys = self._key_symbols()
        # a kernel module's missing key is its trampoline, which the module
        # loader fixes up (objtool --module): --module, or recognised
        from ..core.placement import is_module
        module = options.module or is_module(elf)
        addr_cache: dict[int, _Addressing] = {}
        added: dict[bytes, int] = {}
        nsyms = elf.num_symbols
        knames: dict[int, bytes] = {}      # trampoline symbol -> key name
        for site in sites:
            addr_sym, addend = self._addressing(site, addr_cache)
            kname = knames.get(site.tramp_sym)
            if kname is None:
                kname = knames[site.tramp_sym] = key_name(
                    elf.symbol(site.tramp_sym).name_bytes, options)
            key = keys.get(kname)
            if key is None:
                if module:
                    key = site.tramp_sym
                elif options.strict_keys:
                    raise KeyMissingError(
                        f"static_call: can't find static_call_key symbol: "
                        f"{printable(kname)}", elf.path)
                else:
                    if kname not in added:     # reported by the caller (new_keys)
                        added[kname] = nsyms + len(self.new_keys)
                        self.new_keys.append(kname)
                    key = added[kname]
            flags = FLAG_TAIL if site.kind in TAIL_KINDS else 0
            self.entries.append(Entry(site, addr_sym, addend, key, flags))

    def raised_alignments(self) -> list[tuple[int, int]]:
        """(section index, alignment) for each section whose ``sh_addralign``
        the write raises: an alignment the user promised (--assume-align) and
        the classification relied on becomes the section's own, so that the
        linker keeps it.  Never in a kernel module: the loader lays it out
        from the alignments as they are, and the verdicts rest on that."""
        from ..core.placement import is_module
        if is_module(self.elf):
            return []
        out = {}
        for e in self.entries:
            index, align = e.site.section_index, e.site.alignment
            if e.site.crossing is not None and self.elf.sections[index].addralign < align:
                out[index] = max(out.get(index, 0), align)
        return sorted(out.items())

    def _key_symbols(self) -> dict[bytes, int]:
        """Symbols named key-prefix+..., lowest index first (any binding)."""
        elf = self.elf
        prefix = self.options.key_prefix.encode()
        out: dict[bytes, int] = {}
        info = elf.syms.info
        for i in elf.names_with_prefix(prefix):
            if info[i] & 0xF == STT_SECTION:
                continue
            out.setdefault(elf.symbol(i).name_bytes, i)
        return out

    def _addressing(self, site: Site, cache: dict[int, _Addressing]) -> tuple[int, int]:
        """Symbol and addend that address the site: the section symbol, else
        the (non-weak) function symbol containing it."""
        elf = self.elf
        idx = site.section_index
        if idx not in cache:
            cache[idx] = _Addressing(elf, idx)
        found = cache[idx].symbol_for(site.offset)
        if found is None:
            raise InputError(f"cannot address the site at {location(site.section, site.offset)}: "
                             "the section has no section symbol and no non-weak symbol "
                             "before it", elf.path)
        return found[0], _addend(elf, site.offset - found[1])


class _Addressing:
    """How sites of one section are addressed, indexed once per section so
    that each site costs O(log symbols): the section symbol when there is
    one; else, of the non-weak symbols at or before the site (sections and
    files aside), a function containing it (the innermost), else the last
    function or untyped symbol, else the last symbol of any type -- the
    lowest index among symbols at one address."""

    def __init__(self, elf: ElfFile, index: int):
        self.secsym = _section_symbol(elf, index)
        if self.secsym is not None:
            self.secsym_value = elf.symbol(self.secsym).value
            return
        funcs, named, anything = [], [], []
        for i in _symbols_in_section(elf, index):
            s = elf.symbol(i)
            if s.bind == STB_WEAK or s.type in (STT_SECTION, STT_FILE):
                continue
            if s.type == STT_FUNC:
                funcs.append((s.value, s.value + s.size, i, (i, s.value)))
            if s.type in (STT_FUNC, STT_NOTYPE):
                named.append((s.value, i))
            anything.append((s.value, i))
        self.inside = Innermost(funcs)
        self.named = _LastBefore(named)
        self.anything = _LastBefore(anything)

    def symbol_for(self, offset: int) -> tuple[int, int] | None:
        """(symbol index, symbol value) to address ``offset`` with, or None.
        Cheapest when asked in increasing order of ``offset``."""
        if self.secsym is not None:
            return self.secsym, self.secsym_value
        return self.inside.query(offset) or self.named.at(offset) or self.anything.at(offset)


class _LastBefore:
    """Of (value, index) pairs, the greatest value at or below a point, the
    lowest index at that value: a bisection."""

    def __init__(self, pairs: list[tuple[int, int]]):
        self.pairs = sorted(pairs)
        self.values = [v for v, _i in self.pairs]

    def at(self, point: int) -> tuple[int, int] | None:
        k = bisect_right(self.values, point)
        if k == 0:
            return None
        value, index = self.pairs[bisect_left(self.values, self.values[k - 1])]
        return index, value


def _addend(elf: ElfFile, value: int) -> int:
    if not -(1 << 63) <= value < (1 << 63):
        raise InputError("a symbol's value puts the site out of reach of a 64-bit addend",
                         elf.path)
    return value


def _symbols_in_section(elf: ElfFile, index: int) -> list[int]:
    return elf.syms.in_section(index)


def _section_symbol(elf: ElfFile, index: int) -> int | None:
    info = elf.syms.info
    for i in _symbols_in_section(elf, index):
        if info[i] & 0xF == STT_SECTION:
            return i
    return None


class _Image:
    """The output file: the original bytes followed by appended blobs, kept
    as pieces (``assembled``): an object is not copied into a growing buffer
    and out of it again, and a write does not copy it at all."""

    def __init__(self, data: bytes):
        self.pieces: list = [data]
        self.size = len(data)

    def append(self, blob: bytes, align: int = 8) -> int:
        pad = -self.size % align
        if pad:
            self.pieces.append(b"\0" * pad)
        off = self.size + pad
        self.pieces.append(blob)
        self.size = off + len(blob)
        return off

    def assembled(self, header: bytes) -> "Assembled":
        """The whole file, its first ``len(header)`` bytes replaced, as its
        pieces (not joined)."""
        first = memoryview(self.pieces[0])[len(header):]
        return Assembled([header, first, *self.pieces[1:]])


class Assembled:
    """A rewritten object as the pieces it is made of: its new first bytes,
    the rest of the original (a view, not a copy) and the appended blobs.
    ``write`` puts them on disk one after the other (``inputs.fileio``
    writes any value with ``parts`` so), never joined into one more copy of
    the whole file; ``bytes(x)`` joins them."""
    __slots__ = ("parts", "size")

    def __init__(self, parts: list):
        self.parts = parts
        self.size = sum(map(len, parts))

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


class _StringTable(bytearray):
    """A string table being extended, with the offset of the first
    occurrence of each whole string in it (indexed once, kept up to date),
    so that adding a name costs O(its length), not O(table)."""

    def __init__(self, data: bytes):
        super().__init__(data)
        if self and self[-1:] != b"\0":
            self += b"\0"
        self.first: dict[bytes, int] = {}
        pos = 0
        for piece in bytes(self).split(b"\0")[:-1]:     # the last is not NUL-terminated
            self.first.setdefault(piece, pos)
            pos += len(piece) + 1


def _add_string(tables: dict[int, bytearray], elf: ElfFile, index: int, name: bytes) -> int:
    """The offset of ``name`` as a whole string of the table: an existing
    one (the first), else appended."""
    tab = tables.get(index)
    if tab is None:
        tab = tables[index] = _StringTable(elf.section_bytes(elf.sections[index]))
    pos = tab.first.get(name)
    if pos is not None:
        return pos
    pos = len(tab)
    tab += name + b"\0"
    tab.first[name] = pos
    return pos


def table_blobs(plan: Plan) -> tuple[bytes, bytes]:
    """The table's bytes and its relocation section's bytes."""
    rela = bytearray()
    for i, e in enumerate(plan.entries):
        rela += RELA.pack(8 * i, (e.addr_sym << 32) | R_X86_64_PC32, e.addr_addend)
        rela += RELA.pack(8 * i + 4, (e.key_sym << 32) | R_X86_64_PC32, e.flags)
    return b"\0" * (8 * len(plan.entries)), bytes(rela)


def _table_relocations(elf: ElfFile, table: Section) -> Section | None:
    """The relocation section of the table: the one named for it, else the
    only one that applies to it."""
    rsecs = [s for s in elf.sections if s.type in (SHT_RELA, SHT_REL) and s.info == table.index]
    named = [s for s in rsecs if s.name == RELA_TABLE]
    if named:
        return named[0]
    return rsecs[0] if len(rsecs) == 1 else None


def table_up_to_date(plan: Plan) -> bool:
    """Does the object's existing table hold exactly what ``plan`` would write?"""
    elf = plan.elf
    if plan.new_keys:
        return False
    table = table_sections(elf)[0]
    if table is None:
        return False
    rsec = _table_relocations(elf, table)
    if rsec is None:
        return False
    want_table, want_rela = table_blobs(plan)
    symtab = elf.symtab
    if (table.type, table.flags, table.addralign, table.entsize) != \
            (SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 8, 8):
        return False
    if (rsec.type, rsec.flags, rsec.link, rsec.addralign, rsec.entsize) != \
            (SHT_RELA, SHF_INFO_LINK, symtab.index if symtab else -1, 8, 24):
        return False
    if plan.raised_alignments():    # a raised alignment must already be in place
        return False
    return elf.section_bytes(table) == want_table and elf.section_bytes(rsec) == want_rela


def render(plan: Plan, joined: bool = True) -> "bytes | Assembled":
    """The bytes of the rewritten object: the table appended, or (an object whose
    table is not one we appended, under --force) replaced in place; not
    ``joined``: as its pieces (``Assembled``), for a write that puts them on
    disk one after the other."""
    elf = plan.elf
    # the headers as they are; one that changes is copied first (``edit``):
    # a module has dozens of sections and the write changes two to five
    secs = list(elf.sections)
    edited: set[int] = set()

    def edit(index: int) -> Section:
        if index not in edited:
            edited.add(index)
            secs[index] = secs[index].copy()
        return secs[index]
    img = _Image(elf.data)
    symtab = elf.symtab
    if symtab is None:
        raise InputError("the object has no symbol table to relocate against", elf.path)

    table, rela = table_blobs(plan)
    table_off = img.append(table, 8)
    rela_off = img.append(rela, 8)

    strtabs: dict[int, bytearray] = {}
    if plan.new_keys:
        new_syms = bytearray()
        for name in plan.new_keys:
            noff = _add_string(strtabs, elf, symtab.link, name)
            new_syms += SYM.pack(noff, (STB_GLOBAL << 4) | STT_NOTYPE, 0, SHN_UNDEF, 0, 0)
        sym_sec = edit(symtab.index)
        sym_sec.offset = img.append(elf.section_bytes(symtab) + bytes(new_syms), 8)
        sym_sec.size = symtab.size + len(new_syms)
        for s in elf.sections:
            if s.type == SHT_SYMTAB_SHNDX and s.link == symtab.index:
                s = edit(s.index)
                old = elf.section_bytes(elf.sections[s.index])
                s.size = sym_sec.size // 24 * 4
                s.offset = img.append(old + b"\0" * (s.size - len(old)), 4)

    existing, foreign = table_sections(elf)
    if foreign:
        raise InputError(f"a section named {TABLE} is not a static-call table; not replaced",
                         elf.path)
    if existing is not None:
        tsec = edit(existing.index)
        found = _table_relocations(elf, existing)
        rsec = edit(found.index) if found is not None else None
    else:
        tsec = rsec = None
    new_headers: list[Section] = []
    if rsec is None or tsec is None:
        rela_name = _add_string(strtabs, elf, elf.shstrndx, RELA_TABLE.encode())
        table_name = rela_name + len(".rela")
    n = len(secs)
    if tsec is None:
        tsec = Section(n, table_name, SHT_PROGBITS, 0, 0, 0, 0, 0, 0, 0, 0)
        new_headers.append(tsec)
        n += 1
    if rsec is None:
        rsec = Section(n, rela_name, SHT_RELA, 0, 0, 0, 0, 0, 0, 0, 0)
        new_headers.append(rsec)
        n += 1
    tsec.type, tsec.flags, tsec.addr = SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 0
    tsec.offset, tsec.size, tsec.link, tsec.info = table_off, len(table), 0, 0
    tsec.addralign, tsec.entsize = 8, 8
    rsec.type, rsec.flags, rsec.addr = SHT_RELA, SHF_INFO_LINK, 0
    rsec.offset, rsec.size, rsec.link, rsec.info = rela_off, len(rela), symtab.index, tsec.index
    rsec.addralign, rsec.entsize = 8, 24

    for index, align in plan.raised_alignments():
        edit(index).addralign = align

    for index in sorted(strtabs):
        blob = bytes(strtabs[index])
        sec = edit(index)
        sec.offset = img.append(blob, 1)
        sec.size = len(blob)

    count = len(secs) + len(new_headers)
    e_shnum = count
    if count >= SHN_LORESERVE:
        edit(0).size = count
        e_shnum = 0
    elif elf.extended_shnum:
        edit(0).size = 0
    # the header table: the original's bytes (a header packs to the bytes it
    # was read from), the edited headers packed over them, the new ones after
    size = SHDR.size
    headers = bytearray(elf.data[elf.e_shoff:elf.e_shoff + len(secs) * size])
    for index in edited:
        headers[index * size:(index + 1) * size] = secs[index].pack()
    headers += b"".join(s.pack() for s in new_headers)
    shoff = img.append(bytes(headers), 8)

    hdr = list(EHDR.unpack_from(elf.data, 0))
    hdr[6] = shoff        # e_shoff
    hdr[12] = e_shnum     # e_shnum
    assert SHDR.size == 64
    new = img.assembled(EHDR.pack(*hdr))
    return bytes(new) if joined else new


def recover_original(elf: ElfFile) -> bytes | None:
    """The object as it was before scall-objtool appended its table, if this
    object's table is one we appended; else None.

    A first write leaves every original byte in place, including the old
    section header table, and appends the table right after the original
    end.  So the original is: the old ELF header fields (e_shoff, e_shnum) put
    back, and the file cut where the appended data starts.  The old header
    table is found by looking for the unmoved headers' bytes in the prefix;
    every step is checked, and any doubt returns None (the caller then
    replaces the table in place instead)."""
    secs = elf.sections
    n = len(secs)
    table = table_sections(elf)[0]
    if table is None or n < 4 or table.index != n - 2:
        return None
    rela = secs[n - 1]
    if rela.type != SHT_RELA or rela.info != table.index or rela.offset < table.offset:
        return None
    m = n - 2
    symtab = elf.symtab
    moved = {elf.shstrndx}
    if symtab is not None:
        moved |= {symtab.index, symtab.link}
        moved |= {s.index for s in secs if s.type == SHT_SYMTAB_SHNDX}
    prefix = elf.data[:table.offset]
    old_shoff = None
    for s in secs[1:m]:
        if s.index in moved:
            continue
        # addralign may have been raised by the write: match on the other fields
        needle = s.pack()[:48]
        pos = prefix.find(needle)
        while pos >= 0:
            cand = pos - SHDR.size * s.index
            if cand > 0 and cand % 8 == 0 and cand + SHDR.size * m <= len(prefix):
                old_shoff = cand
                break
            pos = prefix.find(needle, pos + 1)
        break
    if old_shoff is None:
        return None
    old = [Section(i, *SHDR.unpack_from(prefix, old_shoff + SHDR.size * i)) for i in range(m)]
    for a, b in zip(old[1:], secs[1:m]):
        same = (a.name_off, a.type, a.flags, a.link, a.info, a.entsize) == \
            (b.name_off, b.type, b.flags, b.link, b.info, b.entsize)
        if not same or (a.index not in moved and (a.offset, a.size) != (b.offset, b.size)):
            return None
    end = old_shoff + SHDR.size * m
    for a in old:
        if a.type not in (0, 8):                      # SHT_NULL, SHT_NOBITS
            end = max(end, a.offset + a.size)
    if table.offset != end + (-end % 8):
        return None                                   # not appended right after it
    hdr = list(EHDR.unpack_from(elf.data, 0))
    hdr[6] = old_shoff
    # extended numbering: section 0's sh_size holds the count; any other
    # value there is not a count
    hdr[12] = 0 if old[0].size == m else m
    original = bytearray(elf.data[:end])
    original[:EHDR.size] = EHDR.pack(*hdr)
    try:
        check = ElfFile(bytes(original), elf.path)
    except InputError:
        return None
    if len(check.sections) != m or check.section_by_name(TABLE) is not None:
        return None
    return bytes(original)
