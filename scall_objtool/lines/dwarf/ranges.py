"""Addresses and PC ranges: ``DW_FORM_addrx`` through ``.debug_addr``, and
range lists (DWARF 4 ``.debug_ranges``, DWARF 5 ``.debug_rnglists``)."""
from __future__ import annotations

from .forms import F_RNGLISTX, DwarfError, uleb


def addrx(debug, u, index: int) -> int:
    """Address ``index`` of unit ``u``'s ``.debug_addr`` table."""
    sec = debug[".debug_addr"]
    base = u.addr_base[1] if u.addr_base else 8
    if sec is None:
        raise DwarfError("DW_FORM_addrx without .debug_addr")
    return sec.u(base + index * u.asz, u.asz)


def read_ranges(debug, u, form: int, v: int, base: int) -> list:
    """The ranges of a ``DW_AT_ranges`` value in unit ``u``: DWARF 4
    ``.debug_ranges`` or DWARF 5 ``.debug_rnglists`` (``DW_FORM_rnglistx``,
    ``addrx`` entries); empty ranges left out."""
    out = []
    asz = u.asz
    if u.version < 5:
        sec = debug[".debug_ranges"]
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
    sec = debug[".debug_rnglists"]
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
            base = addrx(debug, u, i)
        elif kind == 2:                       # startx_endx
            i, p = uleb(d, p)
            j, p = uleb(d, p)
            a, b = addrx(debug, u, i), addrx(debug, u, j)
            if b > a:
                out.append((a, b))
        elif kind == 3:                       # startx_length
            i, p = uleb(d, p)
            n, p = uleb(d, p)
            a = addrx(debug, u, i)
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

