"""Line programs: the header (file table, names on demand) and a streamed
run of the state machine that gives each site the row in force at its
address, without a Python object per row."""
from __future__ import annotations

import bisect
import posixpath
from typing import TYPE_CHECKING

from .forms import _LAZY, _STRX, F_LINE_STRP, F_STRING, F_STRP, F_UDATA, DwarfError, cstring, \
    sleb, text, uleb
from .sections import TAG_SHIFT

if TYPE_CHECKING:
    from .units import Reader, Unit

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


def _row(sites: list[int], j: int, addr: int, found: dict, row: tuple | None,
         got: int) -> tuple[int, int, int]:
    """A row at ``addr`` passed the next site: the sites below ``addr`` get
    ``row``, the row in force (None: the sequence has none yet, they get
    nothing): (next j, next site, sites found so far)."""
    if row is not None:
        return _assign(sites, j, addr, found, row, got)
    j = bisect.bisect_left(sites, addr)
    return j, sites[j] if j < len(sites) else _NO_SITE, got


def _fresh(sites: list[int]) -> tuple:
    """A sequence's start: (address, file, line, have a row, j, next site)."""
    return 0, 1, 1, False, 0, sites[0] if sites else _NO_SITE


def _set_address(sites: list[int], new: int, have: bool, addr: int, tag: int, j: int,
                 nxt: int, relocatable: bool) -> tuple[bool, int, int, int]:
    """DW_LNE_set_address to ``new`` in a sequence at ``addr`` whose next site
    is ``sites[j]`` = ``nxt``: (have a row, j, next site, section tag).
    Backwards, or into another section, the rest of the sequence is not
    trusted (no site is given a row from it)."""
    if not have:
        tag = new >> TAG_SHIFT
        j = bisect.bisect_left(sites, new)
        return False, j, sites[j] if j < len(sites) else _NO_SITE, tag
    if new < addr or (relocatable and new >> TAG_SHIFT != tag):
        return False, len(sites), _NO_SITE, tag
    return True, j, nxt, tag


#: the file entry formats of gcc and clang: (DW_LNCT_path, DW_FORM_line_strp),
#: (DW_LNCT_directory_index, DW_FORM_udata), then clang's (DW_LNCT_MD5, DW_FORM_data16)
_GNU_FILES = [(1, F_LINE_STRP), (2, F_UDATA)]
_MD5 = (5, 0x1e)


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
        #: v5: (offset, format, count) of the file entries not parsed yet (a
        #: kernel unit lists hundreds; a site needs a few, read when named)
        self._unread = None
        if version >= 5:
            fmt, count, p = self._v5_format(p)
            p = self._v5_entries(p, osz, fmt, count, self.dirs, False)
            fmt, count, p = self._v5_format(p)
            self._unread = (p, fmt, count)
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

    def _v5_format(self, p: int) -> tuple[list, int, int]:
        """A v5 entry format and count: (format, count, offset of the entries)."""
        d = self.sec.data
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
        return fmt, count, p

    def _v5_entries(self, p: int, osz: int, fmt: list, count: int, out: list,
                    files: bool) -> int:
        """Parse ``count`` entries of ``fmt`` at ``p`` into ``out``: the offset after."""
        d = self.sec.data
        if files and fmt[:2] == _GNU_FILES and all(f == _MD5 for f in fmt[2:]):
            # gcc's (path: line_strp, directory: udata) and clang's (+ MD5): flat
            md5 = 16 * (len(fmt) - 2)
            for _ in range(count):
                path = (F_LINE_STRP | _LAZY, p)
                p += osz
                di = d[p]
                if di < 0x80:
                    p += 1
                else:
                    di, p = uleb(d, p)
                p += md5
                out.append((path, di))
            return p
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
        if self._unread is not None and i >= len(self.files):
            p, fmt, count = self._unread
            n = min(i + 1 - len(self.files), count)
            p = self._v5_entries(p, self.osz, fmt, n, self.files, True)
            self._unread = (p, fmt, count - n) if count > n else None
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

    def _opcodes(self) -> tuple:
        """(min_inst, standard opcode lengths, const_add_pc's advance, the
        address and line advance of each special opcode by opcode, and the
        first special opcode)."""
        min_inst = self.min_inst
        line_base, line_range, opbase = self.line_base, self.line_range, self.opcode_base
        const_add = ((255 - opbase) // line_range) * min_inst
        adv_addr = [0] * opbase + [((op - opbase) // line_range) * min_inst
                                   for op in range(opbase, 256)]
        adv_line = [0] * opbase + [line_base + (op - opbase) % line_range
                                   for op in range(opbase, 256)]
        return min_inst, self.std_lengths, const_add, adv_addr, adv_line, opbase

    def match(self, sites: list[int], found: dict, relocatable: bool, want: int) -> None:
        """Run the program; every site of the sorted ``sites`` not yet in
        ``found`` that a sequence covers gets (line, file index, self): the
        row in force at its address (the last row at an address wins).
        Returns once ``want`` sites were found by this run.

        The opcodes come from an iterator over the program's bytes (a fifth
        faster than indexing them); the position is asked of the iterator only
        for a LEB128 longer than the common one or two bytes and at the rare
        opcodes (set_address, advance_pc, define_file, a long extended or an
        unknown one), whose operands are read from the section as before (the
        same errors, at the same offsets).  An operand that runs past the
        program's end ends the program; an extended opcode longer than what is
        left is DwarfError."""
        try:
            self._match(sites, found, relocatable, want)
        except StopIteration:
            pass

    def _match(self, sites: list[int], found: dict, relocatable: bool, want: int) -> None:
        sec = self.sec
        d, base, end = sec.data, self.program, self.end
        buf = d[base:end]
        min_inst, std, const_add, adv_addr, adv_line, opbase = self._opcodes()
        got = tag = pline = pfile = 0
        # the sequence: have a row (pline/pfile: the last one), next site sites[j] = nxt
        addr, fidx, line, have, j, nxt = _fresh(sites)
        it = iter(buf)
        nx, setpos = it.__next__, it.__setstate__

        def pos() -> int:                       # the offset in the section
            return base + it.__reduce__()[2]

        def goto(p: int) -> None:
            setpos(p - base)
        for op in it:
            # the opcodes by frequency in gcc's and clang's programs
            if op >= opbase:
                addr += adv_addr[op]
                line += adv_line[op]
            elif op == 1:                             # copy
                pass
            elif op == 5:                             # set_column
                if nx() >= 0x80:
                    goto(uleb(d, pos() - 1)[1])
                continue
            elif op == 6:                             # negate_stmt
                continue
            elif op == 3:                             # advance_line
                v = nx()
                if v < 0x80:
                    line += v - 128 if v & 0x40 else v
                    continue
                w = nx()
                if w < 0x80:                          # two bytes: a third of them
                    v = (v & 0x7F) | w << 7
                    line += v - 0x4000 if v & 0x2000 else v
                    continue
                v, p = sleb(d, pos() - 2)
                goto(p)
                line += v
                continue
            elif op == 4:                             # set_file
                fidx = nx()
                if fidx >= 0x80:
                    fidx, p = uleb(d, pos() - 1)
                    goto(p)
                continue
            elif op == 0:                             # extended
                n = nx()
                if n >= 0x80:
                    n, p = uleb(d, pos() - 1)
                    goto(p)
                if n == 0:
                    continue
                try:                                  # its n bytes: all in the program
                    sub = nx()
                    if n == 2:                        # set_discriminator, mostly
                        nx()
                    elif n > 8:
                        if pos() + n - 1 > end:
                            raise StopIteration
                        goto(pos() + n - 1)
                    else:
                        for _ in range(n - 1):
                            nx()
                except StopIteration:
                    raise DwarfError("extended opcode past the end of the line program") \
                        from None
                if sub == 1:                          # end_sequence
                    if have and nxt < addr:
                        j, nxt, got = _assign(sites, j, addr, found, (pline, pfile, self), got)
                        if got >= want:
                            return
                    addr, fidx, line, have, j, nxt = _fresh(sites)
                    continue
                if sub == 2:                          # set_address
                    w = n - 1
                    if w not in (4, 8):
                        raise DwarfError(f"DW_LNE_set_address of {w} bytes")
                    new = sec.u(pos() - w, w)
                    have, j, nxt, tag = _set_address(sites, new, have, addr, tag, j, nxt,
                                                     relocatable)
                    addr = new
                elif sub == 3 and self.version < 5:   # define_file
                    s_, r = cstring(d, pos() - n + 1)
                    di, _ = uleb(d, r)
                    self.files.append((s_, di))
                continue                              # set_discriminator and others
            elif op == 2:                             # advance_pc
                v, p = uleb(d, pos())
                goto(p)
                addr += v * min_inst
                continue
            elif op == 8:                             # const_add_pc
                addr += const_add
                continue
            elif op == 9:                             # fixed_advance_pc
                addr += nx() | nx() << 8
                continue
            elif op == 7 or op == 10 or op == 11:
                continue
            else:                                     # isa, unknown: uleb operands
                p = pos()
                for _ in range(std[op - 1] if op - 1 < len(std) else 0):
                    _, p = uleb(d, p)
                goto(p)
                continue
            # a row at addr
            if nxt < addr:
                j, nxt, got = _row(sites, j, addr, found, (pline, pfile, self) if have else None,
                                   got)
                if got >= want:
                    return
            have = True
            pline, pfile = line, fidx
