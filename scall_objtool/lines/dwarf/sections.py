"""The debug sections of one ELF file, loaded on demand: decompressed
(``SHF_COMPRESSED`` zlib and zstd, the older ``.zdebug_*``) and, in a
relocatable object, with their relocations applied to a value when it is
read.  Symbols and relocation entries are those ``core/elf.py`` reads.

A 64-bit value that a relocation points into an allocated section is
*tagged* with the section's index in its high bits::

    value = ((shndx + 1) << TAG_SHIFT) | (st_value + addend)

so that a site in section S at offset O is the single number
``((S + 1) << TAG_SHIFT) | O``, and line rows, unit and function ranges
compare with it directly even when every ``-ffunction-sections`` section
starts at 0.  In a linked image, addresses are final and used as they are.
"""
from __future__ import annotations

import struct
import zlib
from array import array
from bisect import bisect_left

from ...core.elf import (ET_REL, REL_SIZE, RELA_SIZE, SHF_ALLOC, SHF_COMPRESSED, SHN_LORESERVE,
                         SHT_RELA, ElfFile, RelocColumns)
from .forms import DwarfError, cstring

TAG_SHIFT = 40
#: debug sections up to this size are copied out of the file's bytes
COPY_MAX = 32 << 20
LOW = (1 << TAG_SHIFT) - 1
#: sections only strings are read from (never copied)
_STRINGS = frozenset({".debug_str", ".debug_line_str"})

_R_64 = (1, 17)          # R_X86_64_64, R_X86_64_DTPOFF64: S + A, 8 bytes
_R_32 = (10, 11, 21)     # R_X86_64_32, R_X86_64_32S, R_X86_64_DTPOFF32: S + A, 4 bytes


#: entries an order check holds as ints at a time
_CHUNK = 1 << 14
#: one offset in SPARSE of a relocation table kept as an int (``Relocations.sparse``)
SPARSE = 32


def _ascending(view) -> bool:
    """Is the sequence of ints ``view`` in ascending order?  Checked a chunk
    at a time at C speed (a chunk's ints, and a sorted copy of them, stay in
    the cache: twice as fast as the whole table at once, and a table of
    millions of entries never becomes a list)."""
    prev = -1
    for i in range(0, len(view), _CHUNK):
        part = view[i:i + _CHUNK].tolist()
        if part[0] < prev or part != sorted(part):
            return False
        prev = part[-1]
    return True


class Relocations:
    """The relocations of one debug section as ``core/elf.py`` reads them: the
    offsets, sorted and compact, searched for the value being read, and the
    (info, addend) of an offset's entry read alone, by one unpack from the
    file's bytes (``order``: entry indices by offset, when the table is not
    sorted)."""
    __slots__ = ("offsets", "order", "n", "data", "base", "step", "info", "sparse")

    def __init__(self, cols: RelocColumns, rela: bool, data: bytes, base: int):
        self.offsets = cols.offsets()           # a view of the file: no copy
        self.n = len(self.offsets)
        self.order = None
        if not _ascending(self.offsets):
            listed = self.offsets.tolist()
            self.order = sorted(range(len(listed)), key=listed.__getitem__)
            self.offsets = array("Q", [listed[i] for i in self.order])
        #: every SPARSE-th offset as ints: a search bisects these, then SPARSE
        #: entries of the view (whose every probe makes an int)
        self.sparse = self.offsets[::SPARSE].tolist()
        # entry i: r_offset, r_info (and r_addend) at base + step * i
        self.data, self.base = data, base + 8
        self.step = RELA_SIZE if rela else REL_SIZE
        self.info = _INFO_ADDEND if rela else _INFO


#: (r_info, r_addend) of an Elf64_Rela, (r_info,) of an Elf64_Rel, from r_info
_INFO_ADDEND, _INFO = struct.Struct("<Qq"), struct.Struct("<Q")
#: width -> the reader of an unsigned little-endian value of that many bytes
#: at an offset (no slice copied)
_UNPACK = {w: struct.Struct("<" + f).unpack_from for w, f in ((1, "B"), (2, "H"), (4, "I"),
                                                               (8, "Q"))}


class Section:
    """One debug section's bytes; in a relocatable object, its relocations,
    applied to a value when the value is read."""

    def __init__(self, owner: "Debug", data: bytes, relocs: Relocations | None):
        self.owner = owner
        self.data = data
        self.size = len(data)
        self._relocs = relocs

    def _relocated(self, r: Relocations, i: int, off: int, raw: int, width: int) -> int:
        """``raw`` at ``off`` relocated by entry ``i`` (in offset order) of ``r``."""
        if r.order is not None:
            i = r.order[i]
        info, *addend = r.info.unpack_from(r.data, r.base + r.step * i)
        rt = info & 0xFFFFFFFF
        if rt in _R_64:
            w = 8
        elif rt in _R_32:
            w = 4
        else:
            return raw
        if w != width:
            raise DwarfError(f"relocation of width {w} on a {width}-byte value at {off:#x}")
        addend = addend[0] if addend else raw
        if addend >= 1 << 63:
            addend -= 1 << 64
        sym = info >> 32
        hit = self.owner.resolved.get(sym)
        if hit is None:
            hit = self.owner.resolve(sym)
        value, tag = hit
        v = value + addend
        if width == 8 and tag and 0 <= v <= LOW:
            return tag | v
        return v & ((1 << (8 * width)) - 1)

    def u(self, off: int, width: int) -> int:
        """An unsigned value of 1, 2, 3, 4 or 8 bytes, relocated."""
        if off + width > self.size or off < 0:
            raise DwarfError(f"read of {width} bytes at {off:#x} past the end of a section")
        unpack = _UNPACK.get(width)
        raw = unpack(self.data, off)[0] if unpack is not None else \
            int.from_bytes(self.data[off:off + width], "little")
        r = self._relocs
        if r is None or (width != 4 and width != 8):
            return raw
        k = bisect_left(r.sparse, off)      # offsets[(k-1)S] < off <= offsets[kS]
        i = bisect_left(r.offsets, off, k * SPARSE - SPARSE if k else 0,
                        min(k * SPARSE + 1, r.n))
        if i == r.n or r.offsets[i] != off:
            return raw
        return self._relocated(r, i, off, raw, width)

    def string(self, off: int) -> bytes:
        if not 0 <= off < self.size:
            raise DwarfError(f"string offset {off:#x} outside its section")
        return cstring(self.data, off)[0]


class Debug:
    """The debug sections of one ELF file, loaded on demand."""

    def __init__(self, elf: ElfFile):
        self.elf = elf
        self.relocatable = elf.e_type == ET_REL
        self.nsec = len(elf.sections)
        self._secs: dict[str, Section | None] = {}
        self._relsecs = None
        self._syms = None
        self.resolved: dict[int, tuple[int, int]] = {}

    def close(self) -> None:
        """Drop the sections loaded (each refers back to this object)."""
        self._secs.clear()
        self.resolved.clear()
        self._relsecs = self._syms = None

    def __getitem__(self, name: str) -> Section | None:
        if name not in self._secs:
            self._secs[name] = self._load(name)
        return self._secs[name]

    def _load(self, name: str) -> Section | None:
        elf = self.elf
        sec = elf.section_by_name(name)
        zsec = None if sec is not None else elf.section_by_name(".z" + name[1:])
        if sec is None and zsec is None:
            return None
        s = sec or zsec
        if s.type == 8:                       # SHT_NOBITS: no bytes in the file
            return None
        if s.offset + s.size > len(elf.data):
            raise DwarfError(f"{name} extends past the end of the file")
        # decoded byte by byte: a copy (bytes index about a third faster than a
        # view), except a section too large to hold twice (a vmlinux's
        # .debug_info is 160 MB), read through a view; the string sections, of
        # which a few strings are read, stay views
        raw = memoryview(elf.data)[s.offset:s.offset + s.size]
        if name == ".debug_line" or (s.size <= COPY_MAX and name not in _STRINGS):
            raw = bytes(raw)
        if sec is not None and sec.flags & SHF_COMPRESSED:
            raw = _decompress_gabi(name, raw)
        elif zsec is not None:
            if raw[:4] != b"ZLIB" or len(raw) < 12:
                raise DwarfError(f"{zsec.name} has no ZLIB header")
            raw = _inflate(name, raw[12:], int.from_bytes(raw[4:12], "big"))
        relocs = self._relocations(s) if self.relocatable else None
        if relocs and relocs.offsets and relocs.offsets[-1] + 4 > len(raw):
            raise DwarfError(f"a relocation of {name} at {relocs.offsets[-1]:#x} is outside "
                             "the section")
        return Section(self, raw, relocs)

    def _relocations(self, target) -> Relocations | None:
        if self._relsecs is None:
            self._relsecs = {}
            for r in self.elf.relocation_sections():
                self._relsecs.setdefault(r.info, r)
        rsec = self._relsecs.get(target.index)
        if rsec is None:
            return None
        cols = self.elf.relocations(rsec)
        nsyms = self.elf.num_symbols
        if not cols.symbols_below(nsyms):
            raise DwarfError(f"a relocation of {target.name} refers to a symbol past the "
                             f"{nsyms} of the symbol table")
        return Relocations(cols, rsec.type == SHT_RELA, self.elf.data, rsec.offset)

    def resolve(self, index: int) -> tuple[int, int]:
        """(st_value, the tag of its section or 0) of symbol ``index``: the tag
        when a 64-bit value it gives points into an allocated section (see the
        module's note), remembered in ``resolved``."""
        value, shndx = self.symbol(index)
        tag = 0
        if 0 < shndx < min(self.nsec, SHN_LORESERVE) and self.elf.sections[shndx].flags & SHF_ALLOC:
            tag = (shndx + 1) << TAG_SHIFT
        self.resolved[index] = (value, tag)
        return value, tag

    def symbol(self, index: int) -> tuple[int, int]:
        """(st_value, section index) of symbol ``index``, SHN_XINDEX resolved
        (the symbol table as ``core/elf.py`` reads it)."""
        cols = self._syms
        if cols is None:
            cols = self._syms = self.elf.syms
        if not 0 <= index < len(cols.value):
            raise DwarfError(f"relocation refers to symbol {index}, not in the symbol table")
        return cols.value[index], cols.shndx[index]


def _inflate(name: str, raw: bytes, size: int) -> bytes:
    # zlib expands at most ~1032:1; a larger claim is corrupt, not a reason to allocate
    if size > 1100 * len(raw) + 4096:
        raise DwarfError(f"{name}: compressed size {len(raw)} cannot hold {size} bytes")
    d = zlib.decompressobj()
    try:
        out = d.decompress(raw, size)
    except zlib.error as e:
        raise DwarfError(f"{name}: {e}") from None
    if len(out) != size:
        raise DwarfError(f"{name}: decompressed {len(out)} bytes, the header says {size}")
    return out


def _decompress_gabi(name: str, raw: bytes) -> bytes:
    if len(raw) < 24:
        raise DwarfError(f"{name}: compressed section without a header")
    ch_type, _res, size, _align = struct.unpack_from("<IIQQ", raw)
    if ch_type == 1:
        return _inflate(name, raw[24:], size)
    if ch_type == 2:
        try:
            import zstandard
        except ImportError:
            raise DwarfError(f"{name} is zstd-compressed and the zstandard module "
                             "is not installed") from None
        if size > 1 << 33 or size > 40000 * len(raw):
            raise DwarfError(f"{name}: compressed size {len(raw)} cannot hold {size} bytes")
        try:
            out = zstandard.ZstdDecompressor().decompress(raw[24:], max_output_size=size)
        except zstandard.ZstdError as e:
            raise DwarfError(f"{name}: {e}") from None
        if len(out) != size:
            raise DwarfError(f"{name}: decompressed {len(out)} bytes, the header says {size}")
        return out
    raise DwarfError(f"{name}: unknown compression type {ch_type}")


