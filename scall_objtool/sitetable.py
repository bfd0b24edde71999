"""The on-disk format of the static-call site table, in one place.

``struct static_call_site { s32 addr; s32 key; }``: 8 bytes an entry, in
section ``.static_call_sites`` (entsize 8).  In a relocatable object each
field is filled by an ``R_X86_64_PC32`` relocation (in
``.rela.static_call_sites``): ``addr`` against the site's section symbol (or
containing function) plus offset, ``key`` against ``__SCK__<name>`` (in a
module without the key, the trampoline) with the flags in the addend.  In a
linked image the fields are final, each relative to its own address, and the
table lies between ``__start_static_call_sites`` and
``__stop_static_call_sites``.
"""
from __future__ import annotations

import struct

from .elf import SHT_NOBITS
from .errors import InputError

TABLE = ".static_call_sites"
RELA_TABLE = ".rela.static_call_sites"
ENTRY = struct.Struct("<ii")             # addr, key: each relative to its own field
ENTRY_SIZE = ENTRY.size
START, STOP = b"__start_static_call_sites", b"__stop_static_call_sites"

FLAG_TAIL = 1        # the site is a jmp/jcc to the trampoline
FLAG_INIT = 2        # reserved for the runtime (the site is in an init section)
FLAG_MASK = 3


def key_name(tramp_name: bytes, options) -> bytes:
    """``__SCK__<name>`` for trampoline ``__SCT__<name>`` (under the options' prefixes)."""
    return options.key_prefix.encode() + tramp_name[len(options.tramp_prefix.encode()):]


def _symbol_exact(elf, name: bytes) -> int | None:
    for i in elf.names_with_prefix(name):
        if elf.symbol(i).name_bytes == name:
            return i
    return None


def image_table_bounds(elf) -> tuple[int, int] | None:
    """[start, stop) addresses of the table in a linked image, or None.

    The bracket symbols are what a runtime walks; GNU ld defines them only for
    sections named like C identifiers, so an image linked without a script
    that provides them is read from its ``.static_call_sites`` section."""
    a, b = _symbol_exact(elf, START), _symbol_exact(elf, STOP)
    if a is None or b is None:
        sec = elf.section_by_name(TABLE)
        if sec is None:
            return None
        start, stop = sec.addr, sec.addr + sec.size
    else:
        start, stop = elf.symbol(a).value, elf.symbol(b).value
    if stop < start or (stop - start) % ENTRY_SIZE:
        raise InputError(f"the table at {start:#x}..{stop:#x} is not a whole number of "
                         "8-byte entries", elf.path)
    if stop > start:
        sec = elf.section_at(start)
        if sec is None or sec.type == SHT_NOBITS or stop > sec.addr + sec.size:
            raise InputError(f"the table at {start:#x}..{stop:#x} is not in the file", elf.path)
    return start, stop


def object_table_section(elf):
    """The object's table section, its size checked against the file, or None."""
    sec = elf.section_by_name(TABLE)
    if sec is None:
        return None
    if sec.type == SHT_NOBITS:
        raise InputError(f"{TABLE} is SHT_NOBITS: it claims {sec.size:#x} bytes but has no "
                         "contents in the file", elf.path)
    if sec.size % ENTRY_SIZE:
        raise InputError(f"{TABLE} size {sec.size:#x} is not a multiple of 8", elf.path)
    return sec
