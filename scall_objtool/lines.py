"""Source lines: map each site's (section, offset) to ``{file, line}`` through
the DWARF line table (``.debug_line``), as ``addr2line -e OBJ -j SECTION
OFFSET`` does.

In a relocatable object the line program's addresses are not addresses yet:
each sequence starts with ``DW_LNE_set_address``, whose operand is filled by
an ``R_X86_64_64`` relocation against a section symbol (or, from clang, a
function symbol) plus an addend.  Applying that relocation the usual way
(pyelftools' ``relocate_dwarf_sections=True``) gives the offset within the
section but loses *which* section -- and with ``-ffunction-sections`` (or
``.text.unlikely``/``.text.startup`` from ``-O2``) every function's sequence
lives in its own section, all of them starting at 0.

So the relocations of the DWARF sections are applied here, by our own ELF
reader, and every 64-bit value that points into an allocated section is
*tagged* with that section's index in its high bits::

    value = ((shndx + 1) << TAG_SHIFT) | (st_value + addend)

The line program then runs unchanged (pyelftools decodes it); every row's
address carries its section in the tag, and the offset in the low bits.  A
linked image's DWARF is final already: its rows are looked up by address.
Rows at one address: the last one wins, as in BFD (PR ld/4986), which is
what addr2line prints.

pyelftools is imported only here, and this module only when the object has
a ``.debug_line`` section (see ``scan.scan_elf``).  Nothing here raises:
malformed DWARF leaves every ``source`` null and adds a warning.
"""
from __future__ import annotations

import bisect
import io
import posixpath
import struct

from .elf import (ET_REL, SHF_ALLOC, SHN_LORESERVE, SHN_XINDEX, SHT_RELA,
                  SHT_SYMTAB_SHNDX, ElfFile, printable)

TAG_SHIFT = 40
_LOW = (1 << TAG_SHIFT) - 1

# relocation types that occur in DWARF sections of x86-64 objects
_R_64 = (1, 17)          # R_X86_64_64, R_X86_64_DTPOFF64: S + A, 8 bytes
_R_32 = (10, 11, 21)     # R_X86_64_32, R_X86_64_32S, R_X86_64_DTPOFF32: S + A, 4 bytes

#: DWARF sections whose relocations matter for the line table and its CU
_USED = (".debug_info", ".debug_line", ".debug_str", ".debug_line_str",
         ".debug_str_offsets", ".debug_addr", ".debug_abbrev")


class LineError(Exception):
    pass


def _symbols(elf: ElfFile) -> tuple[list[int], list[int]]:
    """(st_value, section index) of every symbol, SHN_XINDEX resolved."""
    sec = elf.symtab
    if sec is None:
        return [], []
    data = elf.data
    n = sec.size // 24
    rows = struct.iter_unpack("<IBBHQQ", data[sec.offset:sec.offset + n * 24])
    values, shndx = [], []
    for _name, _info, _other, sx, value, _size in rows:
        values.append(value)
        shndx.append(sx)
    if SHN_XINDEX in shndx:
        ext = next((s for s in elf.sections
                    if s.type == SHT_SYMTAB_SHNDX and s.link == sec.index), None)
        if ext is None or ext.size < 4 * n:
            raise LineError("a symbol uses SHN_XINDEX without a usable SHT_SYMTAB_SHNDX")
        big = struct.unpack_from(f"<{n}I", data, ext.offset)
        shndx = [big[i] if v == SHN_XINDEX else v for i, v in enumerate(shndx)]
    return values, shndx


def _relocate(elf: ElfFile, dwarfinfo) -> None:
    """Apply the relocations of the DWARF sections pyelftools loaded, in place
    in its streams, tagging 64-bit values that point into allocated sections."""
    descs = {}
    for value in vars(dwarfinfo).values():
        name = getattr(value, "name", None)
        stream = getattr(value, "stream", None)
        if name in _USED and isinstance(stream, io.BytesIO):
            descs[name] = value
    if not descs:
        return
    values = shndx = None
    nsec = len(elf.sections)
    for rsec in elf.relocation_sections():
        target = elf.sections[rsec.info]
        desc = descs.get(target.name)
        if desc is None:
            continue
        # pyelftools reads the first section of a name; only its relocations apply
        first = elf.section_by_name(target.name)
        if first is None or first.index != target.index:
            continue
        if values is None:
            values, shndx = _symbols(elf)
        rela = rsec.type == SHT_RELA
        ent = 24 if rela else 16
        raw = elf.data[rsec.offset:rsec.offset + rsec.size // ent * ent]
        buf = desc.stream.getbuffer()
        try:
            size = len(buf)
            for entry in struct.iter_unpack("<QQq" if rela else "<QQ", raw):
                off, info = entry[0], entry[1]
                sym, rt = info >> 32, info & 0xFFFFFFFF
                width = 8 if rt in _R_64 else 4 if rt in _R_32 else 0
                if not width:
                    continue        # R_X86_64_NONE and the like: bytes stay
                if sym >= len(values):
                    raise LineError(f"relocation of {target.name} refers to symbol {sym} "
                                    f"of {len(values)}")
                if off + width > size:
                    raise LineError(f"relocation at {target.name}+{off:#x} is outside "
                                    "the section")
                if rela:
                    a = entry[2]
                else:
                    a = int.from_bytes(buf[off:off + width], "little", signed=True)
                v, sx = values[sym], shndx[sym]
                if width == 8:
                    val = (v + a) & 0xFFFFFFFFFFFFFFFF
                    if (0 < sx < min(nsec, SHN_LORESERVE)
                            and elf.sections[sx].flags & SHF_ALLOC and 0 <= v + a <= _LOW):
                        val = ((sx + 1) << TAG_SHIFT) | (v + a)
                    struct.pack_into("<Q", buf, off, val)
                else:
                    struct.pack_into("<I", buf, off, (v + a) & 0xFFFFFFFF)
        finally:
            del buf


def _text(value) -> str | None:
    """A name from the DWARF as text, escaped as every name from the file is
    (invalid UTF-8 and control characters never reach a report raw)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return printable(value)
    return printable(str(value).encode("utf-8", "surrogateescape"))


class _FileNames:
    """File index -> path, joined the way BFD's concat_filename does."""

    def __init__(self, lineprog, comp_dir: str | None):
        header = lineprog.header
        self.version = header["version"]
        self.comp_dir = comp_dir
        self.dirs = [_text(d) for d in header.get("include_directory", ())]
        self.files = [(_text(f.name), f.dir_index) for f in header.get("file_entry", ())]
        self._cache: dict[int, str | None] = {}

    def name(self, index: int) -> str | None:
        if index in self._cache:
            return self._cache[index]
        self._cache[index] = path = self._name(index)
        return path

    def _name(self, index: int) -> str | None:
        v5 = self.version >= 5
        i = index if v5 else index - 1
        if not 0 <= i < len(self.files):
            return None
        fname, dir_index = self.files[i]
        if fname is None:
            return None
        if fname.startswith("/"):
            return fname
        subdir = None
        if dir_index:
            j = dir_index if v5 else dir_index - 1
            if 0 <= j < len(self.dirs):
                subdir = self.dirs[j]
        base = self.comp_dir if not (subdir and subdir.startswith("/")) else None
        if base is None:
            base, subdir = subdir, None
        if base is None:
            return fname
        return posixpath.join(base, subdir, fname) if subdir else posixpath.join(base, fname)


class LineTable:
    """Rows of every sequence, per section index."""

    def __init__(self):
        # section index -> sorted list of (low, high, addrs, rows)
        self.sequences: dict[int, list] = {}

    def add_sequence(self, shndx: int | None, rows: list[tuple[int, int, str | None]],
                     end: int):
        """rows: (offset, line, file) in program order; end: the end_sequence offset.
        ``shndx`` None: the rows carry final addresses (a linked image)."""
        addrs: list[int] = []
        kept: list[tuple[int, str | None]] = []
        for off, line, fname in rows:
            if addrs and addrs[-1] == off:
                kept[-1] = (line, fname)          # the last row at an address wins
            elif addrs and off < addrs[-1]:
                return                            # not sorted: not a sequence we trust
            else:
                addrs.append(off)
                kept.append((line, fname))
        if addrs and end > addrs[0]:
            self.sequences.setdefault(shndx, []).append((addrs[0], end, addrs, kept))

    def finish(self):
        for seqs in self.sequences.values():
            seqs.sort(key=lambda s: (s[0], s[1]))

    def lookup(self, shndx: int | None, offset: int) -> dict | None:
        """The row for ``offset`` in section ``shndx`` (None: for an address)."""
        for low, high, addrs, kept in self.sequences.get(shndx, ()):
            if low <= offset < high:
                i = bisect.bisect_right(addrs, offset) - 1
                line, fname = kept[i]
                if fname is None:
                    return None
                return {"file": fname, "line": line}
        return None


def read_line_table(elf: ElfFile) -> LineTable:
    """The line table: keyed by section index in a relocatable object, by
    address (key None) in a linked image, whose DWARF the linker relocated."""
    from elftools.elf.elffile import ELFFile

    ef = ELFFile(io.BytesIO(elf.data))
    dwarfinfo = ef.get_dwarf_info(relocate_dwarf_sections=False)
    relocatable = elf.e_type == ET_REL
    if relocatable:
        _relocate(elf, dwarfinfo)
    table = LineTable()
    for cu in dwarfinfo.iter_CUs():
        top = cu.get_top_DIE()
        if "DW_AT_stmt_list" not in top.attributes:
            continue
        comp = top.attributes.get("DW_AT_comp_dir")
        lineprog = dwarfinfo.line_program_for_CU(cu)
        if lineprog is None:
            continue
        if lineprog.header["version"] not in (2, 3, 4, 5):
            raise LineError(f"unsupported .debug_line version {lineprog.header['version']}")
        names = _FileNames(lineprog, _text(comp.value) if comp is not None else None)
        rows: list[tuple[int, int, str | None]] = []
        tag = None
        for entry in lineprog.get_entries():
            st = entry.state
            if st is None:
                continue
            if not relocatable:
                if st.end_sequence:
                    if rows:
                        table.add_sequence(None, rows, st.address)
                    rows = []
                else:
                    rows.append((st.address, st.line, names.name(st.file)))
                continue
            t = st.address >> TAG_SHIFT
            if st.end_sequence:
                # tag 0: an address no relocation placed in a section (unusable)
                if rows and tag and t == tag:
                    table.add_sequence(tag - 1, rows, st.address & _LOW)
                rows, tag = [], None
                continue
            if tag is None:
                tag = t
            elif t != tag:
                tag = -1                      # a sequence cannot span sections
            rows.append((st.address & _LOW, st.line, names.name(st.file)))
        # a sequence without end_sequence is incomplete: dropped
    table.finish()
    return table


def attach_sources(elf: ElfFile, result) -> None:
    """Fill ``site.source`` for every site of ``result``; never raises."""
    try:
        table = read_line_table(elf)
        for site in result.sites:
            if site.address is not None:            # a linked image: final addresses
                site.source = table.lookup(None, site.address)
            else:
                site.source = table.lookup(site.section_index, site.offset)
    except Exception as e:  # malformed DWARF must not cost the scan
        for site in result.sites:
            site.source = None
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        result.warnings.append(f"cannot read the DWARF line table: {type(e).__name__}"
                               + (f": {detail}" if detail else ""))
