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

from ..core.elf import SHF_ALLOC, SHF_EXECINSTR, SHT_NOBITS, SHT_PROGBITS, SHT_REL, SHT_RELA
from ..errors import InputError

TABLE = ".static_call_sites"
_TABLE_BYTES = TABLE.encode()
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


def is_table(elf, sec) -> bool:
    """Is ``sec`` a static-call table by its structure (its name aside)?
    A table is allocated, writable-or-not data (SHT_PROGBITS, SHF_ALLOC, not
    code), a whole number of 8-byte entries inside the file, with one
    relocation section against the symbol table applying to it (the one named
    ``.rela.static_call_sites`` if several do), holding two relocations an
    entry (the site and the key)."""
    if sec.type != SHT_PROGBITS or not sec.flags & SHF_ALLOC or sec.flags & SHF_EXECINSTR:
        return False
    if sec.size % ENTRY_SIZE or sec.entsize not in (0, ENTRY_SIZE) \
            or sec.offset + sec.size > len(elf.data):
        return False
    symtab = elf.symtab
    rels = [r for r in elf.sections if r.type in (SHT_RELA, SHT_REL) and r.info == sec.index]
    named = [r for r in rels if r.name == RELA_TABLE]
    if len(named) == 1:
        rels = named            # the one named for it, when others point there too
    if symtab is None or len(rels) != 1:
        return False
    rel = rels[0]
    per = 24 if rel.type == SHT_RELA else 16
    return rel.link == symtab.index and rel.size == sec.size // ENTRY_SIZE * 2 * per


def table_sections(elf):
    """(the object's static-call table or None, the other sections named
    ``.static_call_sites``: not tables, never to be taken for one)."""
    if _TABLE_BYTES not in elf.shstrtab:
        return None, []         # no section is named so (the common case)
    named = [s for s in elf.sections if s.name == TABLE]
    tables = [s for s in named if is_table(elf, s)]
    table = tables[0] if len(tables) == 1 else None
    return table, [s for s in named if s is not table]


def foreign_table_problem(sec) -> str:
    """Why a section named like the table is not one."""
    why = (f"SHT_NOBITS: its size {sec.size:#x} has no contents in the file"
           if sec.type == SHT_NOBITS else "its type, flags, size or relocations do not fit")
    return f"a section named {TABLE} is not a static-call table ({why})"


def object_table_section(elf):
    """The object's table section, or None when it has none; InputError when a
    section of that name is not a table."""
    table, foreign = table_sections(elf)
    if table is None and foreign:
        raise InputError(foreign_table_problem(foreign[0]), elf.path)
    return table
