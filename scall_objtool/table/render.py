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
import sys
from array import array
from bisect import bisect_left, bisect_right
from itertools import repeat
from operator import attrgetter

from ..core import TAIL_KINDS, ObjectResult, Options, Site, location
from ..core.elf import (EHDR, R_X86_64_PC32, SHDR, SHF_ALLOC, SHF_INFO_LINK, SHF_WRITE,
                        SHN_LORESERVE, SHN_UNDEF, SHT_PROGBITS, SHT_REL, SHT_RELA,
                        SHT_SYMTAB_SHNDX, STB_GLOBAL, STB_WEAK, STT_FILE, STT_FUNC, STT_NOTYPE,
                        STT_SECTION, ElfFile, Section, printable)
from ..core.intervals import Innermost
from ..core.placement import is_module   # imported by the scan of any object with sites
from ..errors import InputError, KeyMissingError
from ..records import cached, record
from . import FLAG_TAIL, RELA_TABLE, TABLE, table_sections

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
        self.new_keys: list[bytes] = []           # names of symbols to add
        self.warnings: list[str] = []
        # the entries as columns, an item a site in table order: what the
        # write packs (``entries``: as records, made when asked for)
        self.sites: list[Site] = []
        self.addr_syms: list[int] = []
        self.addr_addends: list[int] = []
        self.key_syms: list[int] = []
        self.flags: list[int] = []
        sites = [s for s in result.sites if s.patchable]
        if not sites:
            return
        # by section, then offset: stable sorts on int keys (no tuple a site)
        sites.sort(key=_OFFSET)
        index = [s.section_index for s in sites]
        if index != sorted(index):
            sites.sort(key=_SECTION)
            index = [s.section_index for s in sites]
        keys = self._key_symbols()
        # a kernel module's missing key is its trampoline, which the module
        # loader fixes up (objtool --module): --module, or recognised
        module = options.module or self.in_module
        added: dict[bytes, int] = {}
        nsyms = elf.num_symbols
        names = elf.syms.name
        key_prefix, cut = options.key_prefix.encode(), len(options.tramp_prefix.encode())

        def key_of(tramp: int) -> int:
            """The key entry symbol of the sites calling ``tramp``: the same for
            each of them, so asked once a trampoline (its first site)."""
            if not 0 <= tramp < nsyms:
                elf.symbol(tramp)               # its error
            kname = key_prefix + elf.symbol_name_bytes(names[tramp])[cut:]   # key_name
            key = keys.get(kname)
            if key is None:
                if module:
                    key = tramp
                elif options.strict_keys:
                    raise KeyMissingError(
                        f"static_call: can't find static_call_key symbol: "
                        f"{printable(kname)}", elf.path)
                else:
                    if kname not in added:     # reported by the caller (new_keys)
                        added[kname] = nsyms + len(self.new_keys)
                        self.new_keys.append(kname)
                    key = added[kname]
            return key
        flags = [FLAG_TAIL if site.kind in TAIL_KINDS else 0 for site in sites]
        tramps = [site.tramp_sym for site in sites]
        addressed = self._by_section_symbols(sites, index)
        if addressed is not None:
            # the section symbols address every site (a compiler's object):
            # no site's addressing fails, so each column at once.  The names
            # read as the site-by-site loop reads them, in its order (a bad
            # name or the names' budget raises as it would there): a
            # section's symbol at its first site, then the key of each
            # trampoline at its first site
            self.addr_syms, self.addr_addends, groups = addressed
            keys_of = {}
            for start, end, sym in groups:
                elf.symbol(sym)                 # what addressing its first site reads
                for tramp in dict.fromkeys(tramps[start:end]):
                    if tramp not in keys_of:
                        keys_of[tramp] = key_of(tramp)
            self.key_syms = list(map(keys_of.__getitem__, tramps))
        else:
            # site by site: a site's addressing error before its key's
            cache: dict[int, _Addressing] = {}
            keys_of = {}                    # trampoline symbol -> key entry symbol
            for site, tramp in zip(sites, tramps):
                addr_sym, addend = self._addressing(site, cache)
                key = keys_of.get(tramp)
                if key is None:
                    key = keys_of[tramp] = key_of(tramp)
                self.addr_syms.append(addr_sym)
                self.addr_addends.append(addend)
                self.key_syms.append(key)
        self.sites, self.flags = sites, flags

    @cached
    def in_module(self) -> bool:
        """Is the object a kernel module (``placement.is_module``)?  Asked by
        the plan (unless --module says so) and by ``raised_alignments``."""
        return is_module(self.elf)

    @property
    def count(self) -> int:
        """The number of entries."""
        return len(self.sites)

    @property
    def entries(self) -> list[Entry]:
        """The entries, as records (made once, when first asked for; the
        write itself packs the columns)."""
        made = self.__dict__.get("_entries")
        if made is None:
            made = self._entries = list(map(Entry, self.sites, self.addr_syms,
                                            self.addr_addends, self.key_syms, self.flags))
        return made

    def _by_section_symbols(self, sites: list[Site], index: list[int]) \
            -> tuple[list[int], list[int], list[tuple[int, int, int]]] | None:
        """The symbol and the addend of each of ``sites`` (sorted by section
        and offset; ``index``: their sections), two columns, when each site's
        section has a section symbol and no addend is out of range, as
        ``_addressing`` gives them, and the sites of each section (start,
        end, its symbol); else None."""
        elf = self.elf
        offsets = [s.offset for s in sites]
        secsyms = _section_symbols(elf, set(index))
        value = elf.syms.value
        syms: list[int] = []
        addends: list[int] = []
        groups: list[tuple[int, int, int]] = []
        start, n = 0, len(sites)
        while start < n:
            sec = index[start]
            end = bisect_right(index, sec, start)
            sym = secsyms.get(sec)
            if sym is None:
                return None
            base = value[sym]
            # the offsets of a section's sites ascend: its first and last
            # addends bound the others
            if not (_ADDEND_MIN <= offsets[start] - base and offsets[end - 1] - base < _ADDEND_END):
                return None
            syms += repeat(sym, end - start)
            addends += [off - base for off in offsets[start:end]] if base else offsets[start:end]
            groups.append((start, end, sym))
            start = end
        return syms, addends, groups

    def raised_alignments(self) -> list[tuple[int, int]]:
        """(section index, alignment) for each section whose ``sh_addralign``
        the write raises: an alignment the user promised (--assume-align) and
        the classification relied on becomes the section's own, so that the
        linker keeps it.  Never in a kernel module: the loader lays it out
        from the alignments as they are, and the verdicts rest on that."""
        if self.in_module:
            return []
        sections = self.elf.sections
        out = {}
        for index, align in {(s.section_index, s.alignment) for s in self.sites
                             if s.crossing is not None}:
            if sections[index].addralign < align:
                out[index] = max(out.get(index, 0), align)
        return sorted(out.items())

    def _key_symbols(self) -> dict[bytes, int]:
        """Symbols named key-prefix+..., lowest index first (any binding)."""
        elf = self.elf
        prefix = self.options.key_prefix.encode()
        out: dict[bytes, int] = {}
        info, names = elf.syms.info, elf.syms.name
        for i in elf.names_with_prefix(prefix):
            if info[i] & 0xF == STT_SECTION:
                continue
            out.setdefault(elf.symbol_name_bytes(names[i]), i)
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
    if not _ADDEND_MIN <= value < _ADDEND_END:
        raise InputError("a symbol's value puts the site out of reach of a 64-bit addend",
                         elf.path)
    return value


_ADDEND_MIN, _ADDEND_END = -(1 << 63), 1 << 63
_OFFSET, _SECTION = attrgetter("offset"), attrgetter("section_index")


def _symbols_in_section(elf: ElfFile, index: int) -> list[int]:
    return elf.syms.in_section(index)


def _section_symbol(elf: ElfFile, index: int) -> int | None:
    return _section_symbols(elf, {index}).get(index)


#: 1 for the st_info bytes of STT_SECTION symbols (any binding), else 0
_IS_SECTION = bytes(int(b & 0xF == STT_SECTION) for b in range(256))


def _st_bytes(elf: ElfFile, field: int) -> bytes:
    """Byte ``field`` of each symbol table entry, one a symbol (at C speed)."""
    sym = elf.symtab
    if sym is None or not sym.size:
        return b""
    return elf.data[sym.offset + field:sym.offset + sym.size:24]


def _section_symbols(elf: ElfFile, wanted: set[int]) -> dict[int, int]:
    """Of each section in ``wanted`` that has one, its section symbol: the
    STT_SECTION symbol of lowest index whose st_shndx is the section.  The
    section symbols are found in the st_info bytes (a compiler's object has
    about one a section), not by looking at every symbol."""
    types = _st_bytes(elf, 4).translate(_IS_SECTION)
    shndx = elf.syms.shndx
    out: dict[int, int] = {}
    left = len(wanted)
    i = types.find(1)
    while i >= 0 and left:
        sec = shndx[i]
        if sec in wanted and sec not in out:
            out[sec] = i
            left -= 1
        i = types.find(1, i + 1)
    return out


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
    """A string table being extended.  A name is looked for as a whole string
    (its first occurrence) by a search of the table, a few times; then the
    offset of the first occurrence of each whole string is indexed (once, and
    kept up to date), so that adding many names costs O(their length), not
    O(table) each."""
    #: the searches before the table is indexed
    SEARCHES = 4

    def __init__(self, data: bytes):
        super().__init__(data)
        if self and self[-1:] != b"\0":
            self += b"\0"
        self.first: dict[bytes, int] | None = None
        self.searches = 0

    def offset_of(self, name: bytes) -> int | None:
        """The offset of the first occurrence of ``name`` as a whole string."""
        if self.first is None:
            self.searches += 1
            if self.searches <= self.SEARCHES:
                if b"\0" in name:
                    return None             # no string of the table holds a NUL
                if self.startswith(name + b"\0"):
                    return 0
                pos = self.find(b"\0" + name + b"\0")
                return pos + 1 if pos >= 0 else None
            self.first = {}
            pos = 0
            for piece in bytes(self).split(b"\0")[:-1]:    # the last is not NUL-terminated
                self.first.setdefault(piece, pos)
                pos += len(piece) + 1
        return self.first.get(name)

    def add(self, name: bytes) -> int:
        """Append ``name`` (not in the table) as a string; its offset."""
        pos = len(self)
        self += name + b"\0"
        if self.first is not None:
            self.first[name] = pos
        return pos


def _add_string(tables: dict[int, bytearray], elf: ElfFile, index: int, name: bytes) -> int:
    """The offset of ``name`` as a whole string of the table: an existing
    one (the first), else appended."""
    tab = tables.get(index)
    if tab is None:
        tab = tables[index] = _StringTable(elf.section_bytes(elf.sections[index]))
    pos = tab.offset_of(name)
    return tab.add(name) if pos is None else pos


def table_blobs(plan: Plan) -> tuple[bytes, bytes]:
    """The table's bytes and its relocation section's bytes."""
    n = plan.count
    if sys.byteorder != "little" or 8 * n >= 1 << 32:
        rela = bytearray()
        for i, (addr_sym, addend, key_sym, flags) in enumerate(
                zip(plan.addr_syms, plan.addr_addends, plan.key_syms, plan.flags)):
            rela += RELA.pack(8 * i, (addr_sym << 32) | R_X86_64_PC32, addend)
            rela += RELA.pack(8 * i + 4, (key_sym << 32) | R_X86_64_PC32, flags)
        return b"\0" * (8 * n), bytes(rela)
    # the two relocations of each entry, a column at a time: as 32-bit words
    # (r_offset low and high, r_info's type and symbol, r_addend low and high,
    # twice), the addends as 64-bit ones (unsigned: an array converts those
    # without parsing an argument an item; a negative one: signed)
    rela = bytearray(2 * RELA.size * n)
    words, quads = memoryview(rela).cast("I"), memoryview(rela).cast("Q")
    words[0::6] = _field_offsets(n)
    words[2::12] = words[8::12] = array("I", [R_X86_64_PC32]) * n
    words[3::12] = array("I", plan.addr_syms)
    words[9::12] = array("I", plan.key_syms)
    try:
        quads[2::6] = array("Q", plan.addr_addends)
    except OverflowError:
        memoryview(rela).cast("q")[2::6] = array("q", plan.addr_addends)
    quads[5::6] = array("Q", plan.flags)
    return b"\0" * (8 * n), bytes(rela)


_OFFSETS = array("I")


def _field_offsets(n: int) -> array:
    """0, 4, 8, ...: the offsets of the 2 * ``n`` fields of a table of ``n``
    entries; one array for the largest table so far, sliced."""
    global _OFFSETS
    if len(_OFFSETS) < 2 * n:
        _OFFSETS = array("I", range(0, 8 * n, 4))
    return _OFFSETS[:2 * n]


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
