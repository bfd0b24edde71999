"""DWARF constants (tags, attributes, forms), the error, and the primitive
decoders: LEB128, NUL-terminated strings, the size of a form's value."""
from __future__ import annotations

from ...core.elf import display_name

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

