"""A small DWARF reader for source lines and inline chains, with bounded cost.

It reads only what the sites need:

* the compile units that cover a site: from ``.debug_aranges`` when the
  image has one, otherwise from each unit's top DIE (``DW_AT_low_pc``/
  ``DW_AT_high_pc``/``DW_AT_ranges``); a unit without ranges may cover any
  site and is decided by its line table;
* each distinct line program once (units that share one, as a crafted input
  may, share its decoding), streamed through the state machine without
  keeping rows: a site takes the row in force at its address as the rows go
  by (the last row at an address wins, as in BFD), and the decoding of a
  unit stops once every site it covers has its row;
* in each unit that holds a site, only the DIE subtrees whose PC ranges
  contain a site (``DW_AT_sibling`` or a size known from the abbreviation
  skips the rest), giving the chain of ``DW_TAG_inlined_subroutine`` with
  their ``DW_AT_call_file``/``DW_AT_call_line``.

Time is linear in the bytes decoded, memory in the sites plus the unit
headers, abbreviations and file tables read; no Python object is made per
line-table row or per DIE skipped.

Relocatable objects: the relocations of a debug section are not applied to
the whole section; a value is relocated when it is read (a binary search in
the relocation offsets).  A 64-bit value that points into an allocated
section is *tagged* with the section's index in its high bits::

    value = ((shndx + 1) << TAG_SHIFT) | (st_value + addend)

so that a site in section S at offset O is the single number
``((S + 1) << TAG_SHIFT) | O``, and line rows, unit and function ranges
compare with it directly even when every ``-ffunction-sections`` section
starts at 0.  In a linked image, addresses are final and used as they are.

Compressed debug sections (``SHF_COMPRESSED``: zlib, and zstd when the
``zstandard`` module is present; the older ``.zdebug_*`` form) are
decompressed first.
"""
from __future__ import annotations

import bisect
import posixpath
import struct
import zlib

from .elf import (
    ET_REL,
    SHF_ALLOC,
    SHN_LORESERVE,
    SHN_XINDEX,
    SHT_RELA,
    SHT_SYMTAB_SHNDX,
    ElfFile,
    display_name,
)

TAG_SHIFT = 40
LOW = (1 << TAG_SHIFT) - 1
SHF_COMPRESSED = 0x800

_R_64 = (1, 17)          # R_X86_64_64, R_X86_64_DTPOFF64: S + A, 8 bytes
_R_32 = (10, 11, 21)     # R_X86_64_32, R_X86_64_32S, R_X86_64_DTPOFF32: S + A, 4 bytes

# tags
TAG_COMPILE_UNIT, TAG_PARTIAL_UNIT, TAG_SKELETON_UNIT = 0x11, 0x3c, 0x4a
TAG_SUBPROGRAM, TAG_INLINED, TAG_LEXICAL_BLOCK = 0x2e, 0x1d, 0x0b
#: DIEs whose children may hold code when they have no PC range themselves
# (lexical block, namespace, module, try, catch, imported unit)
_DESCEND = frozenset({0x0b, 0x39, 0x1e, 0x32, 0x25, 0x3a})
#: DIEs that are functions (a frame of the chain)
_FUNCS = frozenset({TAG_SUBPROGRAM, TAG_INLINED, 0x03})      # + entry_point

# attributes
AT_SIBLING, AT_NAME, AT_STMT_LIST, AT_LOW_PC, AT_HIGH_PC = 0x01, 0x03, 0x10, 0x11, 0x12
AT_COMP_DIR, AT_ABSTRACT_ORIGIN, AT_SPECIFICATION, AT_RANGES = 0x1b, 0x31, 0x47, 0x55
AT_CALL_FILE, AT_CALL_LINE, AT_LINKAGE_NAME, AT_MIPS_LINKAGE_NAME = 0x58, 0x59, 0x6e, 0x2007
AT_STR_OFFSETS_BASE, AT_ADDR_BASE, AT_RNGLISTS_BASE = 0x72, 0x73, 0x74
AT_GNU_ADDR_BASE, AT_GNU_RANGES_BASE = 0x2133, 0x2132
_WANTED = frozenset({AT_SIBLING, AT_NAME, AT_STMT_LIST, AT_LOW_PC, AT_HIGH_PC, AT_COMP_DIR,
                     AT_ABSTRACT_ORIGIN, AT_SPECIFICATION, AT_RANGES, AT_CALL_FILE,
                     AT_CALL_LINE, AT_LINKAGE_NAME, AT_MIPS_LINKAGE_NAME,
                     AT_STR_OFFSETS_BASE, AT_ADDR_BASE, AT_RNGLISTS_BASE, AT_GNU_ADDR_BASE,
                     AT_GNU_RANGES_BASE})

# forms
F_ADDR, F_DATA2, F_DATA4, F_DATA8, F_STRING, F_DATA1 = 0x01, 0x05, 0x06, 0x07, 0x08, 0x0b
F_SDATA, F_STRP, F_UDATA, F_REF_ADDR, F_INDIRECT = 0x0d, 0x0e, 0x0f, 0x10, 0x16
F_SEC_OFFSET, F_STRX, F_ADDRX, F_LINE_STRP, F_IMPLICIT_CONST = 0x17, 0x1a, 0x1b, 0x1f, 0x21
F_RNGLISTX = 0x23
_STRX = {0x1a: 0, 0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4, 0x1f02: 0}
_ADDRX = {0x1b: 0, 0x29: 1, 0x2a: 2, 0x2b: 3, 0x2c: 4, 0x1f01: 0}
_REFS = {0x11: 1, 0x12: 2, 0x13: 4, 0x14: 8}
_LEB_FORMS = frozenset({0x0d, 0x0f, 0x15, 0x1a, 0x1b, 0x22, 0x23, 0x1f01, 0x1f02})
_BLOCK = {0x0a: 1, 0x03: 2, 0x04: 4}
#: string offsets: kept as the value's position (form | _LAZY) until the string is used
_STRP = frozenset({0x0e, 0x1f, 0x1d})
_LAZY = 1 << 20
#: forms whose value a relocation may fill (the others are never relocated)
_RELOCATED = frozenset({0x01, 0x06, 0x07, 0x0e, 0x10, 0x17, 0x1d, 0x1f, 0x1f20, 0x1f21})


class DwarfError(Exception):
    pass


#: a LEB128 holds a 64-bit value: 10 bytes; longer encodings may only pad it
#: (0x80 ... 0x00, or sign bytes), as binutils and LLVM accept
_LEB_BITS = 70


def _leb_error(start: int, signed: bool) -> DwarfError:
    return DwarfError(f"a{' signed' if signed else 'n unsigned'} LEB128 at offset "
                      f"{start:#x} does not fit in 64 bits (corrupt)")


def uleb(data, off: int) -> tuple[int, int]:
    """An unsigned LEB128 at ``off``: (value, offset after it).  Linear in its
    length: bytes past the 10th are checked, not accumulated."""
    b = data[off]
    if b < 0x80:
        return b, off + 1
    start = off
    result, shift = b & 0x7F, 7
    while True:
        off += 1
        b = data[off]
        if shift < _LEB_BITS:
            result |= (b & 0x7F) << shift
        elif b & 0x7F:
            raise _leb_error(start, False)
        if b < 0x80:
            if result >> 64:
                raise _leb_error(start, False)
            return result, off + 1
        shift += 7


def sleb(data, off: int) -> tuple[int, int]:
    """A signed LEB128 at ``off``: (value, offset after it); linear as ``uleb``."""
    start = off
    result, shift = 0, 0
    while True:
        b = data[off]
        off += 1
        if shift < _LEB_BITS:
            result |= (b & 0x7F) << shift
        elif (b & 0x7F) not in (0, 0x7F):
            raise _leb_error(start, True)
        shift += 7
        if b < 0x80:
            if b & 0x40:
                result -= 1 << min(shift, _LEB_BITS)
            if not -(1 << 63) <= result < 1 << 64:
                raise _leb_error(start, True)
            return result, off


def cstring(data, off: int) -> tuple[bytes, int]:
    """The NUL-terminated string at ``off`` (``data``: bytes or a memoryview)."""
    if isinstance(data, bytes):
        end = data.index(b"\0", off)
        return data[off:end], end + 1
    n = len(data)
    start, step = off, 64
    while True:
        if off >= n:
            raise DwarfError(f"unterminated string at {start:#x}")
        chunk = bytes(data[off:off + step])
        i = chunk.find(b"\0")
        if i >= 0:
            end = off + i
            return bytes(data[start:end]), end + 1
        off += step
        step *= 2


def text(raw: bytes | None) -> str | None:
    return None if raw is None else display_name(raw)


def _fixed_size(form: int, osz: int, asz: int, version: int) -> int | None:
    """Bytes a value of ``form`` takes, None when it depends on the data."""
    if form in (0x0c, 0x0b, 0x11, 0x25, 0x29):      # flag, data1, ref1, strx1, addrx1
        return 1
    if form in (0x05, 0x12, 0x26, 0x2a):            # data2, ref2, strx2, addrx2
        return 2
    if form in (0x27, 0x2b):
        return 3
    if form in (0x06, 0x13, 0x28, 0x2c, 0x1c):      # data4, ref4, strx4, addrx4, ref_sup4
        return 4
    if form in (0x07, 0x14, 0x20, 0x24):            # data8, ref8, ref_sig8, ref_sup8
        return 8
    if form == 0x1e:
        return 16
    if form == F_ADDR:
        return asz
    if form == F_REF_ADDR:
        return asz if version <= 2 else osz
    if form in (0x0e, 0x17, 0x1d, 0x1f, 0x1f20, 0x1f21):   # strp, sec_offset, ..., line_strp
        return osz
    if form in (0x19, F_IMPLICIT_CONST):
        return 0
    return None


class Section:
    """One debug section's bytes; in a relocatable object, its relocations,
    applied to a value when the value is read."""

    def __init__(self, owner: "Debug", data: bytes, relocs):
        self.owner = owner
        self.data = data
        self.size = len(data)
        self._relocs = relocs              # (offsets, entries memoryview, rela) or None

    def reloc(self, off: int, raw: int, width: int) -> int:
        r = self._relocs
        if r is None:
            return raw
        offsets, ents, rela = r
        i = bisect.bisect_left(offsets, off)
        if i >= len(offsets) or offsets[i] != off:
            return raw
        step = 3 if rela else 2
        info = ents[i * step + 1]
        sym, rt = info >> 32, info & 0xFFFFFFFF
        if rt in _R_64:
            w = 8
        elif rt in _R_32:
            w = 4
        else:
            return raw
        if w != width:
            raise DwarfError(f"relocation of width {w} on a {width}-byte value at {off:#x}")
        addend = ents[i * step + 2] if rela else raw
        if addend >= 1 << 63:
            addend -= 1 << 64
        value, shndx = self.owner.symbol(sym)
        v = value + addend
        if (width == 8 and 0 < shndx < min(self.owner.nsec, SHN_LORESERVE)
                and self.owner.elf.sections[shndx].flags & SHF_ALLOC and 0 <= v <= LOW):
            return ((shndx + 1) << TAG_SHIFT) | v
        return v & ((1 << (8 * width)) - 1)

    def u(self, off: int, width: int) -> int:
        """An unsigned value of 1, 2, 3, 4 or 8 bytes, relocated."""
        if off + width > self.size or off < 0:
            raise DwarfError(f"read of {width} bytes at {off:#x} past the end of a section")
        raw = int.from_bytes(self.data[off:off + width], "little")
        if width in (4, 8):
            return self.reloc(off, raw, width)
        return raw

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
        self._symtab = elf.symtab if self.relocatable else None
        self._relsecs = None
        self._symcache: dict[int, tuple[int, int]] = {}

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
        # a view, not a copy (a vmlinux's .debug_info is 160 MB); the line
        # program, decoded byte by byte, is copied (bytes index faster)
        raw = memoryview(elf.data)[s.offset:s.offset + s.size]
        if name == ".debug_line":
            raw = bytes(raw)
        if sec is not None and sec.flags & SHF_COMPRESSED:
            raw = _decompress_gabi(name, raw)
        elif zsec is not None:
            if raw[:4] != b"ZLIB" or len(raw) < 12:
                raise DwarfError(f"{zsec.name} has no ZLIB header")
            raw = _inflate(name, raw[12:], int.from_bytes(raw[4:12], "big"))
        relocs = self._relocations(s) if self.relocatable else None
        if relocs and relocs[0] and relocs[0][-1] + 4 > len(raw):
            raise DwarfError(f"a relocation of {name} at {relocs[0][-1]:#x} is outside "
                             "the section")
        return Section(self, raw, relocs)

    def _relocations(self, target):
        if self._relsecs is None:
            self._relsecs = {}
            for r in self.elf.relocation_sections():
                self._relsecs.setdefault(r.info, r)
        rsec = self._relsecs.get(target.index)
        if rsec is None:
            return None
        rela = rsec.type == SHT_RELA
        ent = 24 if rela else 16
        n = rsec.size // ent
        if rsec.offset + n * ent > len(self.elf.data):
            raise DwarfError(f"{rsec.name} extends past the end of the file")
        ents = memoryview(self.elf.data[rsec.offset:rsec.offset + n * ent]).cast("Q")
        step = 3 if rela else 2
        offsets = ents[0::step].tolist()
        nsyms = self._symtab.size // 24 if self._symtab is not None else 0
        if n and max(ents[1::step].tolist()) >> 32 >= nsyms:
            raise DwarfError(f"a relocation of {target.name} refers to a symbol past the "
                             f"{nsyms} of the symbol table")
        if offsets != sorted(offsets):
            order = sorted(range(n), key=offsets.__getitem__)
            flat = []
            for i in order:
                flat.extend(ents[i * step:(i + 1) * step])
            ents = flat
            offsets = [offsets[i] for i in order]
        return offsets, ents, rela

    def symbol(self, index: int) -> tuple[int, int]:
        """(st_value, section index) of symbol ``index``, SHN_XINDEX resolved."""
        hit = self._symcache.get(index)
        if hit is None:
            hit = self._symcache[index] = self._symbol(index)
        return hit

    def _symbol(self, index: int) -> tuple[int, int]:
        sec = self._symtab
        if sec is None or not 0 <= index < sec.size // 24:
            raise DwarfError(f"relocation refers to symbol {index}, not in the symbol table")
        _n, _i, _o, shndx, value, _s = struct.unpack_from("<IBBHQQ", self.elf.data,
                                                          sec.offset + 24 * index)
        if shndx == SHN_XINDEX:
            ext = next((s for s in self.elf.sections
                        if s.type == SHT_SYMTAB_SHNDX and s.link == sec.index), None)
            if ext is None or ext.size < 4 * (index + 1):
                raise DwarfError("a symbol uses SHN_XINDEX without a usable SHT_SYMTAB_SHNDX")
            shndx = struct.unpack_from("<I", self.elf.data, ext.offset + 4 * index)[0]
        return value, shndx


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


# ------------------------------------------------------------------ abbreviations

class Abbrev:
    __slots__ = ("tag", "children", "attrs", "fixed", "sibling_at", "has_pc", "plan", "tail",
                 "walk")

    def __init__(self, tag, children, attrs, fixed, sibling_at):
        self.tag = tag
        self.children = children
        self.attrs = attrs          # [(name, form, implicit value, fixed size or None)]
        self.fixed = fixed          # size of all attributes when fixed, else None
        self.sibling_at = sibling_at  # (byte offset, size) of DW_AT_sibling when fixed before it
        has_pc = False
        plan, run = [], 0
        for name, form, _imp, size in attrs:
            if name == AT_LOW_PC or name == AT_RANGES:
                has_pc = True
            if plan is None:
                continue
            if form == F_INDIRECT:
                plan = None           # decoded attribute by attribute
            elif size is None:
                plan.append((run, form))
                run = 0
            else:
                run += size
        self.has_pc = has_pc
        # a DIE the walk for functions stops at: a function with a PC range,
        # or a block or namespace that may hold one
        self.walk = (tag in _FUNCS and has_pc) or tag in _DESCEND
        # to skip the attributes: [(fixed bytes before, variable form)], fixed bytes after;
        # plan None: an indirect form
        self.plan, self.tail = plan, run


class Abbrevs:
    """One abbreviation table, parsed as far as the codes asked for."""

    def __init__(self, data: bytes, off: int, osz: int, asz: int, version: int):
        self.data, self.pos = data, off
        self.osz, self.asz, self.version = osz, asz, version
        self.table: dict[int, Abbrev] = {}
        #: code -> (walk, children, sibling_at, fixed, (bytes before, after) of a
        #: single LEB128 attribute, abbrev): the skip loop's view
        self.fast: dict[int, tuple] = {}
        self.done = False
        self._sizes: dict[int, int | None] = {}

    def get(self, code: int) -> Abbrev:
        ab = self.table.get(code)
        if ab is not None:
            return ab
        data = self.data
        while not self.done:
            c, off = uleb(data, self.pos)
            if c == 0:
                self.done = True
                break
            tag, off = uleb(data, off)
            children = data[off]
            off += 1
            attrs = []
            fixed, sib = 0, None
            sizes = self._sizes
            while True:
                name = data[off]
                if name < 0x80:
                    off += 1
                else:
                    name, off = uleb(data, off)
                form = data[off]
                if form < 0x80:
                    off += 1
                else:
                    form, off = uleb(data, off)
                if name == 0 and form == 0:
                    break
                imp = None
                if form == F_IMPLICIT_CONST:
                    imp, off = sleb(data, off)
                if form in sizes:
                    size = sizes[form]
                else:
                    size = sizes[form] = _fixed_size(form, self.osz, self.asz, self.version)
                attrs.append((name, form, imp, size))
                if name == AT_SIBLING and fixed is not None and form in _REFS:
                    sib = (fixed, _REFS[form])
                fixed = None if size is None or fixed is None else fixed + size
            self.pos = off
            ab = Abbrev(tag, bool(children), attrs, fixed, sib)
            if c not in self.table:
                self.table[c] = ab
                leb = None
                if ab.plan is not None and len(ab.plan) == 1 and ab.plan[0][1] in _LEB_FORMS:
                    leb = (ab.plan[0][0], ab.tail + 1)
                self.fast[c] = (ab.walk, ab.children, ab.sibling_at, ab.fixed, leb, ab)
            if c == code:
                return ab
        raise DwarfError(f"abbreviation code {code} is not in its table")


# ------------------------------------------------------------------ units

class Unit:
    __slots__ = ("debug", "offset", "end", "version", "osz", "asz", "abbrevs", "die_off",
                 "top", "str_offsets_base", "addr_base", "rnglists_base", "lines")

    def __init__(self, debug, offset, end, version, osz, asz, abbrevs, die_off):
        self.debug, self.offset, self.end = debug, offset, end
        self.version, self.osz, self.asz = version, osz, asz
        self.abbrevs, self.die_off = abbrevs, die_off
        self.top = None
        self.str_offsets_base = self.addr_base = self.rnglists_base = None
        self.lines = None


class Reader:
    """DIEs, unit ranges and names of one file's ``.debug_info``."""

    def __init__(self, debug: Debug):
        self.debug = debug
        self.info = debug[".debug_info"]
        self._abbrevs: dict[tuple, Abbrevs] = {}
        self._units: dict[int, Unit] = {}
        self._unit_starts: list[int] | None = None
        self._ranges_cache: dict[tuple, list] = {}

    # units -----------------------------------------------------------
    def unit_at(self, off: int, keep: bool = True) -> Unit:
        """The unit at ``off``; ``keep``: remember it (a pass over every unit
        keeps none, so that memory does not grow with the units)."""
        u = self._units.get(off)
        if u is not None:
            return u
        info = self.info
        d = info.data
        length = info.u(off, 4)
        osz = 4
        hdr = off + 4
        if length == 0xFFFFFFFF:
            length, osz, hdr = info.u(off + 4, 8), 8, off + 12
        elif length >= 0xFFFFFFF0:
            raise DwarfError(f"unit at {off:#x}: reserved length {length:#x}")
        end = hdr + length
        if end > info.size:
            raise DwarfError(f"unit at {off:#x} extends past .debug_info")
        version = int.from_bytes(d[hdr:hdr + 2], "little")
        if version == 5:
            unit_type, asz = d[hdr + 2], d[hdr + 3]
            abbr = info.u(hdr + 4, osz)
            die = hdr + 4 + osz
            if unit_type in (4, 5):
                die += 8
            elif unit_type in (2, 6):
                die += 8 + osz
        elif 2 <= version <= 4:
            abbr = info.u(hdr + 2, osz)
            asz = d[hdr + 2 + osz]
            die = hdr + 3 + osz
        else:
            raise DwarfError(f"unit at {off:#x}: unsupported DWARF version {version}")
        if asz not in (4, 8):
            raise DwarfError(f"unit at {off:#x}: address size {asz}")
        key = (abbr, osz, asz, version)
        ab = self._abbrevs.get(key)
        if ab is None:
            abbrev = self.debug[".debug_abbrev"]
            if abbrev is None or abbr >= abbrev.size:
                raise DwarfError(f"unit at {off:#x}: abbreviations at {abbr:#x} are missing")
            ab = self._abbrevs[key] = Abbrevs(abbrev.data, abbr, osz, asz, version)
        u = Unit(self, off, end, version, osz, asz, ab, die)
        if die < end:
            top, _ = self.die(u, die)
            u.top = top
            u.str_offsets_base = top[1].get(AT_STR_OFFSETS_BASE)
            u.addr_base = top[1].get(AT_ADDR_BASE, top[1].get(AT_GNU_ADDR_BASE))
            u.rnglists_base = top[1].get(AT_RNGLISTS_BASE)
        if keep:
            self._units[off] = u
        return u

    def units(self):
        """Every unit, in order."""
        off = 0
        size = self.info.size
        while off < size:
            u = self.unit_at(off, keep=False)
            yield u
            off = u.end

    def unit_containing(self, off: int) -> Unit:
        if self._unit_starts is None:
            starts, o = [], 0
            while o < self.info.size:
                length = self.info.u(o, 4)
                starts.append(o)
                o += 4 + length if length != 0xFFFFFFFF else 12 + self.info.u(o + 4, 8)
            self._unit_starts = starts
        i = bisect.bisect_right(self._unit_starts, off) - 1
        if i < 0:
            raise DwarfError(f"DIE reference {off:#x} outside every unit")
        return self.unit_at(self._unit_starts[i])

    # DIEs --------------------------------------------------------------
    def die(self, u: Unit, off: int):
        """((tag, {attr: raw value}, has children, offset), next offset).

        Values: forms are decoded to ints (references made absolute in
        .debug_info, addresses and indexes resolved lazily by callers)."""
        code, p = uleb(self.info.data, off)
        if code == 0:
            return None, p
        ab = u.abbrevs.get(code)
        attrs = {}
        p = self._attrs(u, ab, p, attrs)
        return (ab.tag, attrs, ab.children, off), p

    def _attrs(self, u: Unit, ab: Abbrev, p: int, out: dict | None) -> int:
        info = self.info
        d = info.data
        for name, form, imp, size in ab.attrs:
            if size is not None and form != F_INDIRECT:
                if out is not None and name in _WANTED:
                    if form == F_IMPLICIT_CONST:
                        out[name] = (form, imp)
                    elif form in _REFS:
                        out[name] = (form, u.offset + int.from_bytes(d[p:p + size], "little"))
                    elif form in _STRP:
                        out[name] = (form | _LAZY, p)     # read (relocated) when used
                    elif size in (4, 8) and form in _RELOCATED:
                        out[name] = (form, info.u(p, size))
                    else:
                        out[name] = (form, int.from_bytes(d[p:p + size], "little"))
                p += size
                continue
            while form == F_INDIRECT:
                form, p = uleb(d, p)
            want = out is not None and name in _WANTED
            if form in _LEB_FORMS:
                if form == F_SDATA:
                    v, p = sleb(d, p)
                else:
                    v, p = uleb(d, p)
                if want:
                    out[name] = (form, v + u.offset if form == 0x15 else v)
                continue
            if form == F_STRING:
                v, p = cstring(d, p)
                if want:
                    out[name] = (form, v)
                continue
            if form in _BLOCK:
                n = _BLOCK[form]
                p += n + int.from_bytes(d[p:p + n], "little")
                continue
            if form in (0x09, 0x18):                  # block, exprloc
                n, p = uleb(d, p)
                p += n
                continue
            if form == F_IMPLICIT_CONST:
                if want:
                    out[name] = (form, imp)
                continue
            size = _fixed_size(form, u.osz, u.asz, u.version)
            if size is None:
                raise DwarfError(f"unknown attribute form {form:#x}")
            if want:
                v = info.u(p, size) if size in (1, 2, 3, 4, 8) else 0
                if form in _REFS:
                    v += u.offset
                out[name] = (form, v)
            p += size
        if p > u.end:
            raise DwarfError(f"DIE attributes run past the unit at {u.offset:#x}")
        return p

    def skip_children(self, u: Unit, p: int) -> int:
        """The offset past the children that start at ``p``."""
        return self.next_die(u, p, False)[1]

    def next_die(self, u: Unit, p: int, stop: bool = True) -> tuple[Abbrev | None, int]:
        """From ``p``, the DIEs of one level: skips every one (children and
        all) until one whose abbreviation has ``walk`` set when ``stop``;
        returns its abbreviation and where its attributes start, or (None,
        the offset past the level's end).  The hot loop of the walk (and of
        objects without DW_AT_sibling, as clang's): kept flat."""
        d = self.info.data
        abbrevs = u.abbrevs
        fast = abbrevs.fast
        end, uoff = u.end, u.offset
        skip = self._skip_attrs
        stop_at = 1 if stop else 0
        depth = 1
        while True:
            if p >= end:
                raise DwarfError(f"DIEs run past the unit at {uoff:#x}")
            code = d[p]
            p += 1
            if code >= 0x80:
                code, p = uleb(d, p - 1)
            if code == 0:
                depth -= 1
                if depth == 0:
                    return None, p
                continue
            f = fast.get(code)
            if f is None:
                abbrevs.get(code)
                f = fast[code]
            walk, children, sa, fx, leb, ab = f
            if walk and depth == stop_at:
                return ab, p
            if children:
                if sa is not None:
                    sib = uoff + int.from_bytes(d[p + sa[0]:p + sa[0] + sa[1]], "little")
                    if sib > p:
                        p = sib
                        continue
                depth += 1
            if fx is not None:
                p += fx
            elif leb is not None:                     # one LEB128 among fixed sizes
                p += leb[0]
                while d[p] >= 0x80:
                    p += 1
                p += leb[1]
            else:
                p = skip(u, ab, p)

    def _skip_attrs(self, u: Unit, ab: Abbrev, p: int) -> int:
        """The offset past the attributes of a DIE, none of them decoded."""
        if ab.plan is None:
            return self._attrs(u, ab, p, None)
        d = self.info.data
        for run, form in ab.plan:
            p += run
            if form in _LEB_FORMS:
                while d[p] >= 0x80:
                    p += 1
                p += 1
            elif form == F_STRING:
                p = cstring(d, p)[1]
            elif form in _BLOCK:
                n = _BLOCK[form]
                p += n + int.from_bytes(d[p:p + n], "little")
            elif form in (0x09, 0x18):                # block, exprloc
                n, p = uleb(d, p)
                p += n
            else:
                raise DwarfError(f"unknown attribute form {form:#x}")
        p += ab.tail
        if p > u.end:
            raise DwarfError(f"DIE attributes run past the unit at {u.offset:#x}")
        return p

    # values -----------------------------------------------------------
    def address(self, u: Unit, form_value) -> int:
        form, v = form_value
        if form in _ADDRX:
            return self._addrx(u, v)
        return v

    def _addrx(self, u: Unit, index: int) -> int:
        sec = self.debug[".debug_addr"]
        base = u.addr_base[1] if u.addr_base else 8
        if sec is None:
            raise DwarfError("DW_FORM_addrx without .debug_addr")
        return sec.u(base + index * u.asz, u.asz)

    def string(self, u: Unit, form_value) -> bytes | None:
        form, v = form_value
        if form & _LAZY:
            form &= ~_LAZY
            v = self.info.u(v, u.osz)
        if form == F_STRING:
            return v
        if form == F_STRP or form == 0x1d:
            sec = self.debug[".debug_str"]
        elif form == F_LINE_STRP:
            sec = self.debug[".debug_line_str"]
        elif form in _STRX:
            offs = self.debug[".debug_str_offsets"]
            if offs is None:
                raise DwarfError("DW_FORM_strx without .debug_str_offsets")
            base = u.str_offsets_base[1] if u.str_offsets_base else 8
            v = offs.u(base + v * u.osz, u.osz)
            sec = self.debug[".debug_str"]
        else:
            return None
        if sec is None:
            raise DwarfError("a string form without its string section")
        return sec.string(v)

    def ranges(self, u: Unit, attrs: dict) -> list[tuple[int, int]] | None:
        """The PC ranges of a DIE, [(low, high)], None when it has none."""
        lo = attrs.get(AT_LOW_PC)
        hi = attrs.get(AT_HIGH_PC)
        if lo is not None and hi is not None and AT_RANGES not in attrs:
            low = self.address(u, lo)
            form, v = hi
            high = self.address(u, hi) if form == F_ADDR or form in _ADDRX else low + v
            return [(low, high)]
        r = attrs.get(AT_RANGES)
        if r is None:
            return None
        form, v = r
        base = 0
        top = u.top[1] if u.top else {}
        if AT_LOW_PC in top:
            base = self.address(u, top[AT_LOW_PC])
        key = (base, form, v, u.version, u.asz,
               u.rnglists_base and u.rnglists_base[1], u.addr_base and u.addr_base[1])
        hit = self._ranges_cache.get(key)
        if hit is None:
            hit = self._ranges_cache[key] = self._read_ranges(u, form, v, base)
        return hit

    def _read_ranges(self, u: Unit, form: int, v: int, base: int) -> list:
        out = []
        asz = u.asz
        if u.version < 5:
            sec = self.debug[".debug_ranges"]
            if sec is None:
                raise DwarfError("DW_AT_ranges without .debug_ranges")
            p = v
            allones = (1 << (8 * asz)) - 1
            while True:
                a, b = sec.u(p, asz), sec.u(p + asz, asz)
                p += 2 * asz
                if a == 0 and b == 0:
                    return out
                if a == allones:
                    base = b
                elif b > a:
                    out.append((base + a, base + b))
        sec = self.debug[".debug_rnglists"]
        if sec is None:
            raise DwarfError("DW_AT_ranges without .debug_rnglists")
        if form == F_RNGLISTX:
            rb = u.rnglists_base[1] if u.rnglists_base else 12
            p = rb + sec.u(rb + v * u.osz, u.osz)
        else:
            p = v
        d = sec.data
        while True:
            if p >= sec.size:
                raise DwarfError("a range list runs past .debug_rnglists")
            kind = d[p]
            p += 1
            if kind == 0:                         # end_of_list
                return out
            if kind == 1:                         # base_addressx
                i, p = uleb(d, p)
                base = self._addrx(u, i)
            elif kind == 2:                       # startx_endx
                i, p = uleb(d, p)
                j, p = uleb(d, p)
                a, b = self._addrx(u, i), self._addrx(u, j)
                if b > a:
                    out.append((a, b))
            elif kind == 3:                       # startx_length
                i, p = uleb(d, p)
                n, p = uleb(d, p)
                a = self._addrx(u, i)
                out.append((a, a + n))
            elif kind == 4:                       # offset_pair
                a, p = uleb(d, p)
                b, p = uleb(d, p)
                if b > a:
                    out.append((base + a, base + b))
            elif kind == 5:                       # base_address
                base = sec.u(p, asz)
                p += asz
            elif kind == 6:                       # start_end
                a, b = sec.u(p, asz), sec.u(p + asz, asz)
                p += 2 * asz
                if b > a:
                    out.append((a, b))
            elif kind == 7:                       # start_length
                a = sec.u(p, asz)
                n, p = uleb(d, p + asz)
                out.append((a, a + n))
            else:
                raise DwarfError(f"unknown range list entry {kind}")

    def name(self, u: Unit, attrs: dict, depth: int = 0) -> str | None:
        """A function's name: its linkage name, else its name, else those of
        the DIE it is an instance or definition of (as BFD prefers)."""
        for at in (AT_LINKAGE_NAME, AT_MIPS_LINKAGE_NAME, AT_NAME):
            if at in attrs:
                return text(self.string(u, attrs[at]))
        if depth > 8:
            return None
        for at in (AT_ABSTRACT_ORIGIN, AT_SPECIFICATION):
            ref = attrs.get(at)
            if ref is None:
                continue
            target = ref[1]
            tu = u if u.offset <= target < u.end else self.unit_containing(target)
            die, _ = self.die(tu, target)
            if die is not None:
                return self.name(tu, die[1], depth + 1)
        return None


# ------------------------------------------------------------------ line programs

_NO_SITE = 1 << 80


def _assign(sites: list[int], j: int, upto: int, found: dict, row: tuple,
            got: int) -> tuple[int, int, int]:
    """Give ``row`` to the sites from ``sites[j]`` below ``upto`` that have no
    row yet: (next j, next site or _NO_SITE, sites found so far)."""
    n = len(sites)
    while j < n and sites[j] < upto:
        if sites[j] not in found:
            found[sites[j]] = row
            got += 1
        j += 1
    return j, sites[j] if j < n else _NO_SITE, got


class LineProgram:
    """A line program's header: its file table, for names on demand."""

    def __init__(self, reader: Reader, off: int, comp_dir: str | None, u: Unit):
        sec = reader.debug[".debug_line"]
        if sec is None:
            raise DwarfError("DW_AT_stmt_list without .debug_line")
        self.sec = sec
        self.reader, self.unit = reader, u
        self.comp_dir = comp_dir
        d = sec.data
        length = sec.u(off, 4)
        osz, p = 4, off + 4
        if length == 0xFFFFFFFF:
            length, osz, p = sec.u(off + 4, 8), 8, off + 12
        self.end = p + length
        self.osz = osz
        if self.end > sec.size:
            raise DwarfError(f"line program at {off:#x} extends past .debug_line")
        self.version = version = int.from_bytes(d[p:p + 2], "little")
        p += 2
        if not 2 <= version <= 5:
            raise DwarfError(f"unsupported .debug_line version {version}")
        self.asz = 8
        if version >= 5:
            self.asz = d[p]
            p += 2
        hlen = sec.u(p, osz)
        p += osz
        self.program = p + hlen
        if self.program > self.end:
            raise DwarfError(f"line program at {off:#x}: header longer than the unit")
        self.min_inst = d[p]
        p += 1
        if version >= 4:
            p += 1                                    # maximum_operations_per_instruction
        self.default_is_stmt = d[p]
        self.line_base = d[p + 1] - 256 if d[p + 1] >= 128 else d[p + 1]
        self.line_range = d[p + 2]
        self.opcode_base = d[p + 3]
        if self.line_range == 0:
            raise DwarfError(f"line program at {off:#x}: line_range 0")
        p += 4
        self.std_lengths = d[p:p + self.opcode_base - 1]
        p += self.opcode_base - 1
        self.dirs: list = []
        self.files: list = []                  # (raw name or (form, value), dir index)
        if version >= 5:
            p = self._v5_entries(p, osz, self.dirs, False)
            p = self._v5_entries(p, osz, self.files, True)
        else:
            while d[p]:
                s, p = cstring(d, p)
                self.dirs.append(s)
            p += 1
            while d[p]:
                s, p = cstring(d, p)
                di, p = uleb(d, p)
                _, p = uleb(d, p)
                _, p = uleb(d, p)
                self.files.append((s, di))
        self._names: dict[int, str | None] = {}

    def _v5_entries(self, p: int, osz: int, out: list, files: bool) -> int:
        sec = self.sec
        d = sec.data
        nfmt = d[p]
        p += 1
        fmt = []
        for _ in range(nfmt):
            ct, p = uleb(d, p)
            form, p = uleb(d, p)
            fmt.append((ct, form))
        count, p = uleb(d, p)
        if count > self.end - p:
            raise DwarfError("line program header: more entries than bytes")
        for _ in range(count):
            path = None
            di = 0
            for ct, form in fmt:
                if form == F_STRING:
                    v, p = cstring(d, p)
                    val = (F_STRING, v)
                elif form in (F_LINE_STRP, F_STRP):
                    val = (form | _LAZY, p)               # read when the name is used
                    p += osz
                elif form in _STRX:
                    n = _STRX[form]
                    if n:
                        v = int.from_bytes(d[p:p + n], "little")
                        p += n
                    else:
                        v, p = uleb(d, p)
                    val = (form, v)
                elif form in (F_UDATA,):
                    v, p = uleb(d, p)
                    val = (form, v)
                elif form in (0x0b, 0x05, 0x06, 0x07, 0x1e):
                    n = {0x0b: 1, 0x05: 2, 0x06: 4, 0x07: 8, 0x1e: 16}[form]
                    val = (form, int.from_bytes(d[p:p + n], "little"))
                    p += n
                elif form == 0x09:
                    n, p = uleb(d, p)
                    p += n
                    val = None
                else:
                    raise DwarfError(f"line program header: form {form:#x}")
                if ct == 1:
                    path = val
                elif ct == 2 and val is not None:
                    di = val[1]
            out.append((path, di) if files else path)
        return p

    def _str(self, val) -> str | None:
        if val is None:
            return None
        if isinstance(val, bytes):
            return text(val)
        if val[0] & _LAZY:
            val = (val[0] & ~_LAZY, self.sec.u(val[1], self.osz))
        return text(self.reader.string(self.unit, val))

    def file_name(self, index: int) -> str | None:
        """File ``index`` as a path, joined as BFD's concat_filename does."""
        if index in self._names:
            return self._names[index]
        self._names[index] = path = self._file_name(index)
        return path

    def _file_name(self, index: int) -> str | None:
        v5 = self.version >= 5
        i = index if v5 else index - 1
        if not 0 <= i < len(self.files):
            return None
        raw, dir_index = self.files[i]
        fname = self._str(raw)
        if fname is None:
            return None
        if fname.startswith("/"):
            return fname
        subdir = None
        if dir_index:
            j = dir_index if v5 else dir_index - 1
            if 0 <= j < len(self.dirs):
                subdir = self._str(self.dirs[j])
        base = self.comp_dir if not (subdir and subdir.startswith("/")) else None
        if base is None:
            base, subdir = subdir, None
        if base is None:
            return fname
        return posixpath.join(base, subdir, fname) if subdir else posixpath.join(base, fname)

    def match(self, sites: list[int], found: dict, relocatable: bool, want: int) -> None:
        """Run the program; every site of the sorted ``sites`` not yet in
        ``found`` that a sequence covers gets (line, file index, self): the
        row in force at its address (the last row at an address wins).
        Returns once ``want`` sites were found by this run."""
        sec = self.sec
        d = sec.data
        end = self.end
        p = self.program
        min_inst = self.min_inst
        line_base, line_range, opbase = self.line_base, self.line_range, self.opcode_base
        std = self.std_lengths
        const_add = ((255 - opbase) // line_range) * min_inst
        adv_addr = [0] * opbase + [((op - opbase) // line_range) * min_inst
                                   for op in range(opbase, 256)]
        adv_line = [0] * opbase + [line_base + (op - opbase) % line_range
                                   for op in range(opbase, 256)]
        nsites = len(sites)
        INF = _NO_SITE
        bl = bisect.bisect_left
        got = 0
        addr, fidx, line = 0, 1, 1
        # the sequence: have a row (pline/pfile: the last one), next site sites[j] = nxt
        have = False
        pline = pfile = 0
        j = 0
        nxt = sites[0] if nsites else INF
        tag = 0
        while p < end:
            op = d[p]
            p += 1
            # the opcodes by frequency in gcc's and clang's programs
            if op >= opbase:
                addr += adv_addr[op]
                line += adv_line[op]
            elif op == 1:                             # copy
                pass
            elif op == 5:                             # set_column
                if d[p] < 0x80:
                    p += 1
                else:
                    _, p = uleb(d, p)
                continue
            elif op == 6:                             # negate_stmt
                continue
            elif op == 3:                             # advance_line
                v = d[p]
                if v < 0x80:
                    p += 1
                    line += v - 128 if v & 0x40 else v
                else:
                    v, p = sleb(d, p)
                    line += v
                continue
            elif op == 4:                             # set_file
                fidx, p = uleb(d, p)
                continue
            elif op == 0:                             # extended
                n, p = uleb(d, p)
                if n == 0:
                    continue
                sub = d[p]
                q = p + n
                if q > end:
                    raise DwarfError("extended opcode past the end of the line program")
                if sub == 1:                          # end_sequence
                    if have and nxt < addr:
                        j, nxt, got = _assign(sites, j, addr, found, (pline, pfile, self), got)
                        if got >= want:
                            return
                    addr, fidx, line = 0, 1, 1
                    have = False
                    j = 0
                    nxt = sites[0] if nsites else INF
                    p = q
                    continue
                p = q
                if sub == 2:                          # set_address
                    w = n - 1
                    if w not in (4, 8):
                        raise DwarfError(f"DW_LNE_set_address of {w} bytes")
                    new = sec.u(q - w, w)
                    if have and (new < addr or (relocatable and new >> TAG_SHIFT != tag)):
                        have = False                  # backwards or into another section:
                        nxt = INF                     # the rest of the sequence is not trusted
                        j = nsites
                    elif not have:
                        tag = new >> TAG_SHIFT
                        j = bl(sites, new)
                        nxt = sites[j] if j < nsites else INF
                    addr = new
                elif sub == 3 and self.version < 5:   # define_file
                    s_, r = cstring(d, q - n + 1)
                    di, _ = uleb(d, r)
                    self.files.append((s_, di))
                continue                              # set_discriminator and others
            elif op == 2:                             # advance_pc
                v, p = uleb(d, p)
                addr += v * min_inst
                continue
            elif op == 8:                             # const_add_pc
                addr += const_add
                continue
            elif op == 9:                             # fixed_advance_pc
                addr += d[p] | d[p + 1] << 8
                p += 2
                continue
            elif op == 7 or op == 10 or op == 11:
                continue
            else:                                     # isa, unknown: uleb operands
                for _ in range(std[op - 1] if op - 1 < len(std) else 0):
                    _, p = uleb(d, p)
                continue
            # a row at addr
            if nxt < addr:
                if have:
                    j, nxt, got = _assign(sites, j, addr, found, (pline, pfile, self), got)
                    if got >= want:
                        return
                else:                                 # sites before the sequence's first row
                    j = bl(sites, addr)
                    nxt = sites[j] if j < nsites else INF
            have = True
            pline, pfile = line, fidx
