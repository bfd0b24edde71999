"""Compilation units and their DIEs: abbreviation tables, unit headers, the
walk that skips what it does not need (``DW_AT_sibling``, or a size known
from the abbreviation), attribute values, strings and names."""
from __future__ import annotations

import bisect
import re
import struct
from operator import itemgetter

from .forms import (
    _ADDRX, _BLOCK, _DESCEND, _FUNCS, _LAZY, _LEB_FORMS, _RELOCATED, _REFS, _STRP, _STRX,
    _WANTED, AT_ABSTRACT_ORIGIN, AT_ADDR_BASE, AT_GNU_ADDR_BASE, AT_HIGH_PC, AT_LINKAGE_NAME,
    AT_LOW_PC, AT_MIPS_LINKAGE_NAME, AT_NAME, AT_RANGES, AT_RNGLISTS_BASE, AT_SIBLING,
    AT_SPECIFICATION, AT_STR_OFFSETS_BASE, F_ADDR, F_IMPLICIT_CONST, F_INDIRECT, F_LINE_STRP,
    F_SDATA, F_STRING, F_STRP, DwarfError, _fixed_size, cstring, sleb, text, uleb)
from .ranges import addrx, read_ranges
from .sections import Debug

# ------------------------------------------------------------------ abbreviations

class Abbrev:
    __slots__ = ("tag", "children", "attrs", "fixed", "sibling_at", "has_pc", "plan", "tail",
                 "walk", "pc", "sibling_end")

    def __init__(self, tag, children, attrs, fixed, sibling_at, version: int = 0):
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
        # where the range is, for a DIE passed undecoded (then its sibling
        # must be where the walk reads it, or absent)
        self.pc = _pc_at(attrs, version)
        self.sibling_end = _from_end(attrs, AT_SIBLING)
        siblings = sum(1 for a in attrs if a[0] == AT_SIBLING)
        if siblings > 1 or (siblings and sibling_at is None and self.sibling_end is None):
            self.pc = None
        # a DIE the walk for functions stops at: a function with a PC range,
        # or a block or namespace that may hold one
        self.walk = (tag in _FUNCS and has_pc) or tag in _DESCEND
        # to skip the attributes: [(fixed bytes before, variable form)], fixed bytes after;
        # plan None: an indirect form
        self.plan, self.tail = plan, run


def _pc_at(attrs: list, version: int) -> tuple | None:
    """Where a DIE's PC range is, when it can be read without decoding its
    attributes: (offset of a DW_FORM_addr low_pc, offset and size of a
    constant high_pc, an offset from it in DWARF 4+), each after attributes
    of fixed sizes only, and no DW_AT_ranges; else None."""
    if version < 4:
        return None
    lo = hi = None
    off = 0
    for name, form, _imp, size in attrs:
        if name == AT_RANGES:
            return None
        if name == AT_LOW_PC:
            if form != F_ADDR or off is None or lo is not None:
                return None
            lo = off
        elif name == AT_HIGH_PC:
            if form not in _CONST or off is None or hi is not None:
                return None
            hi = (off, size)
        off = None if off is None or size is None or form == F_INDIRECT else off + size
    if lo is None or hi is None:
        return None
    return lo, hi[0], hi[1]


def _from_end(attrs: list, at: int) -> tuple | None:
    """(bytes from the start of attribute ``at`` to the end of the attributes,
    its size) when it is a reference and every attribute after it has a fixed
    size (gcc's DW_AT_sibling, last after a variable DW_AT_frame_base)."""
    back = 0
    for name, form, _imp, size in reversed(attrs):
        if size is None or form == F_INDIRECT:
            return None
        back += size
        if name == at:
            return (back, size) if form in _REFS else None
    return None


#: DW_FORM_data1, data2, data4, data8: a DWARF 4+ high_pc of these forms is an offset
_CONST = frozenset({0x0b, 0x05, 0x06, 0x07})

#: one abbreviation entry in the encodings compilers write (minimal LEB128s, a
#: children byte of 0 or 1, implicit constants of at most 10 bytes): its code,
#: then the rest, up to and including the (0, 0) that ends it.  An attribute's
#: bytes parse one way only and none starts with 0, so the attributes are
#: taken possessively (``*+``: no backtracking state kept), the usual one (a
#: name and a form of one byte each, not an implicit constant) tried first:
#: twice as fast, the same matches
_ENTRY_RE = (
    rb"([\x01-\x7f]|[\x80-\xff]{1,4}[\x01-\x7f])"                # code, not 0
    rb"((?:[\x00-\x7f]|[\x80-\xff]{1,2}[\x01-\x7f])[\x00\x01]"   # tag, children
    rb"(?:[\x01-\x7f][\x01-\x20\x22-\x7f]"                       # the usual attribute
    rb"|(?:[\x01-\x7f]|[\x80-\xff]{1,2}[\x01-\x7f])"            # name, not 0
    rb"(?:\x21[\x80-\xff]{0,9}[\x00-\x7f]"                       # implicit_const
    rb"|[\x01-\x20\x22-\x7f]|[\x80-\xff]{1,2}[\x01-\x7f]))*+"    # other forms, not 0
    rb"\x00\x00)")
_ENTRY = re.compile(_ENTRY_RE, re.S)
#: a whole table of such entries, up to its 0 code; a table that does not
#: match is parsed entry by entry, byte by byte (``Abbrevs._parse``)
_TABLE = re.compile(rb"(?:" + _ENTRY_RE.replace(b"(", b"(?:").replace(b"(?:?:", b"(?:")
                    + rb")*\x00", re.S)

#: (offset size, address size, version) -> {entry bytes after the code:
#: (Abbrev, its skip-loop view)}: the same entries recur in every unit of a
#: vmlinux and every object of a build, and an Abbrev is never changed (2,447
#: distinct entries in a defconfig build's 792 objects; a dict is emptied at
#: _SHARED_MAX, about 1 KB an entry)
_SHARED: dict[tuple, dict] = {}
_SHARED_MAX = 1 << 13
#: the largest .debug_abbrev split at once as one table (an object's: a few KB)
_ONE_TABLE_MAX = 1 << 16
#: DW_FORM_data4, DW_FORM_data8
_DATA48 = frozenset({0x06, 0x07})
#: a little-endian 4-byte value at an offset, without slicing a copy (twice as fast)
_U32 = struct.Struct("<I").unpack_from


#: the codes 1, 2, ... as LEB128s, one after the other (grown as needed, by
#: ``_in_order``): a table whose codes are 1..n in order is recognised by one
#: comparison (the 6.12 vmlinux's tables have hundreds of codes of two bytes)
_SEQ = [bytes(range(1, 0x80))]


def _in_order(joined: bytes, n: int) -> bool:
    """Are ``joined``, n LEB128 codes one after the other, the codes 1..n?
    (LEB128s are prefix-free: these bytes split into n of them one way only.)"""
    size = n if n < 0x80 else 0x7F + 2 * (n - 0x7F)
    if len(joined) != size or n >= 1 << 14:
        return False
    seq = _SEQ[0]
    if len(seq) < size:
        top = max(n, 2 * ((len(seq) - 0x7F) // 2 + 0x7F))
        seq = _SEQ[0] = seq[:0x7F] + bytes(
            x for c in range(0x80, min(top + 1, 1 << 14)) for x in ((c & 0x7F) | 0x80, c >> 7))
    return seq.startswith(joined)


def _step(ab: Abbrev) -> int:
    """How the skip loop passes a DIE of ``ab`` (code of one byte) that it
    never stops at, from the DIE's first byte: > 0, a childless DIE of that
    many bytes; < 0, a DIE whose children end at its DW_AT_sibling (ref4) at
    that many bytes (negated) from it; 0, a DIE that takes the whole loop."""
    if ab.walk:
        return 0
    if not ab.children:
        return 1 + ab.fixed if ab.fixed is not None else 0
    if ab.sibling_at is not None and ab.sibling_at[1] == 4:
        return -1 - ab.sibling_at[0]
    return 0


class Abbrevs:
    """One abbreviation table, parsed as far as the codes asked for."""

    def __init__(self, data: bytes, off: int, osz: int, asz: int, version: int):
        self.data, self.pos = data, off
        self.osz, self.asz, self.version = osz, asz, version
        self.table: dict[int, Abbrev] = {}
        #: code -> (walk, children, sibling_at, fixed, (bytes before, after) of a
        #: single LEB128 attribute, abbrev, step, pc of a function): the skip loop's view
        self.fast: dict[int, tuple] = {}
        #: first byte of a DIE -> its step (``_step``): the skip loop's fast path
        #: (0: the view of ``fast``, for a code of two bytes or more, 0, or one
        #: not read yet)
        self.steps = [0] * 256
        self.done = False
        self._sizes: dict[int, int | None] = {}
        self._tried = False

    def get(self, code: int) -> Abbrev:
        ab = self.table.get(code)
        if ab is not None:
            return ab
        if not self._tried:
            self._tried = True
            self._whole()
            ab = self.table.get(code)
            if ab is not None:
                return ab
        data = self.data
        while not self.done:
            c, off = uleb(data, self.pos)
            if c == 0:
                self.done = True
                break
            ab, self.pos = self._parse(off)
            if c not in self.table:
                self.table[c] = ab
                self.fast[c] = view = self._view(ab)
                if c < 0x80:
                    self.steps[c] = view[6]
            if c == code:
                return ab
        raise DwarfError(f"abbreviation code {code} is not in its table")

    def _whole(self) -> None:
        """The whole table at once when every entry has the usual encodings:
        one match finds its end, one ``findall`` splits it, and each entry is
        looked up among those already seen (``_SHARED``).  A section that
        holds one table (an object's) is split alone: its entries, if they
        tile it up to its last byte 0, are the table (the match would find
        that end)."""
        data, start = self.data, self.pos
        pairs = None
        if start == 0 and 0 < len(data) <= _ONE_TABLE_MAX and data[-1] == 0:
            pairs = _ENTRY.findall(data, 0, len(data) - 1)
            if pairs:
                codes, bodies = zip(*pairs)
                end = sum(map(len, codes)) + sum(map(len, bodies)) + 1
                if end != len(data):
                    pairs = None                    # tables, or entries of other encodings
        if pairs is None:
            m = _TABLE.match(data, start)
            if m is None:
                return
            end = m.end()
            pairs = _ENTRY.findall(data, start, end - 1)
            if not pairs:
                return
            codes, bodies = zip(*pairs)
        shared = _SHARED.get((self.osz, self.asz, self.version))
        if shared is None or len(shared) >= _SHARED_MAX:
            shared = _SHARED[(self.osz, self.asz, self.version)] = {}
        hits = list(map(shared.get, bodies))       # after the first objects: all of them
        if not all(hits):                          # (a hit is a pair: true)
            off = start
            for k, (cb, body) in enumerate(pairs):
                off += len(cb)
                if hits[k] is None:
                    hit = shared.get(body)          # (an entry repeated in this table)
                    if hit is None:
                        ab, _ = self._parse(off)
                        hit = shared[body] = (ab, self._view(ab))
                    hits[k] = hit
                off += len(body)
        else:
            off = start + sum(map(len, codes)) + sum(map(len, bodies))
        if off != end - 1:              # not the parse _TABLE made: byte by byte instead
            return
        joined = b"".join(codes)
        n = len(codes)
        one_byte = len(joined) == n
        if one_byte:
            codes, unique = list(joined), None
        elif _in_order(joined, n):
            # the codes 1..n in order, as compilers number them (LEB128s are
            # prefix-free: the one split of these bytes into n of them)
            codes, unique = range(1, n + 1), True
        else:
            codes, unique = [uleb(c, 0)[0] for c in codes], None
        views = list(map(itemgetter(1), hits))
        if unique or len(set(codes)) == n:   # (in place: the walk holds self.fast)
            self.table.update(zip(codes, map(itemgetter(0), hits)))
            self.fast.update(zip(codes, views))
            if one_byte:
                list(map(self.steps.__setitem__, codes, map(itemgetter(6), views)))
            elif unique:                # 1..n: the first 127 are the codes of one byte
                self.steps[1:0x80] = map(itemgetter(6), views[:0x7F])
            else:
                self._steps(codes)
        else:                           # a code repeated: its first entry counts
            table, fast = self.table, self.fast
            for c, hit in zip(codes, hits):
                if c not in table:
                    table[c], fast[c] = hit
            self._steps(codes)
        self.pos, self.done = end, True

    def _steps(self, codes) -> None:
        steps, fast = self.steps, self.fast
        for c in codes:
            if c < 0x80:
                steps[c] = fast[c][6]

    @staticmethod
    def _view(ab: Abbrev) -> tuple:
        leb = None
        if ab.plan is not None and len(ab.plan) == 1 and ab.plan[0][1] in _LEB_FORMS:
            leb = (ab.plan[0][0], ab.tail + 1)
        return (ab.walk, ab.children, ab.sibling_at, ab.fixed, leb, ab, _step(ab),
                ab.pc if ab.walk and ab.tag in _FUNCS else None)

    def _parse(self, off: int) -> tuple[Abbrev, int]:
        """The entry whose tag is at ``off`` (after its code), and the offset past it."""
        data = self.data
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
        return Abbrev(tag, bool(children), attrs, fixed, sib, self.version), off


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
        #: (DIE offset, depth) -> () (no DIE there) or (its name,): the abstract
        #: instance an inlined function names, shared by its instances
        self._names: dict[tuple, tuple] = {}

    def close(self) -> None:
        """Drop the units kept (each refers back to this reader)."""
        self._units.clear()
        self._abbrevs.clear()
        self._ranges_cache.clear()
        self._names.clear()

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
                    elif size in (4, 8) and form in _RELOCATED and not (
                            name == AT_HIGH_PC and u.version >= 4 and form in _DATA48):
                        out[name] = (form, info.u(p, size))
                    else:                   # (DWARF 4+: a constant high_pc is an offset)
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

    def next_die(self, u: Unit, p: int, stop: bool = True,
                 sites: list[int] | None = None) -> tuple[Abbrev | None, int]:
        """From ``p``, the DIEs of one level: skips every one (children and
        all) until one whose abbreviation has ``walk`` set when ``stop``;
        returns its abbreviation and where its attributes start, or (None,
        the offset past the level's end).  ``sites`` (sorted): a function
        whose range is where ``Abbrev.pc`` says and holds none of them is
        passed too, with its children, undecoded.

        The hot loop of the walk (and of objects without DW_AT_sibling, as
        clang's): a DIE of a one-byte code that is childless with attributes
        of fixed sizes, or whose children end at its DW_AT_sibling, is passed
        by its step (``Abbrevs.steps``) alone; the unit's end is checked on
        the other DIEs, before anything else (a step past it has no effect)."""
        d = self.info.data
        abbrevs = u.abbrevs
        fast, steps = abbrevs.fast, abbrevs.steps
        end, uoff = u.end, u.offset
        u32 = _U32
        skip = self._skip_attrs
        stop_at = 1 if stop else 0
        depth = 1
        while True:
            try:
                s = steps[d[p]]
            except IndexError:                        # a step past the data
                raise DwarfError(f"DIEs run past the unit at {uoff:#x}") from None
            if s > 0:
                p += s
                continue
            if s < 0:
                try:
                    sib = uoff + u32(d, p - s)[0]
                except struct.error:                  # cut short: read below, as before
                    sib = 0
                if sib > p + 1:
                    p = sib
                    continue
            if p >= end:
                raise DwarfError(f"DIEs run past the unit at {uoff:#x}")
            code = d[p]
            p += 1
            if code >= 0x80:
                c2 = d[p] if p < end else 0x80
                if c2 < 0x80:                         # a code of two bytes (hundreds
                    code = (code & 0x7F) | c2 << 7    # in a vmlinux unit's table)
                    p += 1
                else:
                    code, p = uleb(d, p - 1)
            if code == 0:
                depth -= 1
                if depth == 0:
                    return None, p
                continue
            try:
                walk, children, sa, fx, leb, ab, _, pc = fast[code]
            except KeyError:                          # its table not read that far yet
                abbrevs.get(code)
                walk, children, sa, fx, leb, ab, _, pc = fast[code]
            if walk and depth == stop_at:
                if pc is None or sites is None or self._holds_site(u, p, pc, sites):
                    return ab, p
                # a function over no site: passed, with its children
                q = p
                p = p + fx if fx is not None else skip(u, ab, p)
                if not children:
                    continue
                if sa is None and ab.sibling_end is not None:
                    sa, q = (0, ab.sibling_end[1]), p - ab.sibling_end[0]
                sib = uoff + int.from_bytes(d[q + sa[0]:q + sa[0] + sa[1]], "little") \
                    if sa is not None else 0
                p = sib if p < sib <= end else self.skip_children(u, p)
                continue
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

    def _holds_site(self, u: Unit, p: int, pc: tuple, sites: list[int]) -> bool:
        """Does the range of the DIE whose attributes start at ``p``, read
        where ``pc`` (``Abbrev.pc``) says, hold one of ``sites``?"""
        lo = self.info.u(p + pc[0], u.asz)
        i = bisect.bisect_left(sites, lo)
        d = self.info.data
        return i < len(sites) and sites[i] < lo + int.from_bytes(d[p + pc[1]:p + pc[1] + pc[2]],
                                                                 "little")

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
        return addrx(self.debug, u, index)

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
            hit = self._ranges_cache[key] = read_ranges(self.debug, u, form, v, base)
        return hit

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
            hit = self._names.get((target, depth))
            if hit is None:
                tu = u if u.offset <= target < u.end else self.unit_containing(target)
                die, _ = self.die(tu, target)
                hit = self._names[target, depth] = \
                    () if die is None else (self.name(tu, die[1], depth + 1),)
            if hit:
                return hit[0]
        return None


