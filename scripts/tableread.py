#!/usr/bin/env python3
"""Read a `.static_call_sites` table from an x86-64 relocatable ELF object.

This reader is deliberately independent of `scall_objtool`: it uses only
pyelftools, so the tests and the kernel-parity script can check what the tool
wrote against what objtool wrote without trusting the tool's own code.

The table is an array of `struct static_call_site { s32 addr; s32 key; }`
(8 bytes an entry).  In a relocatable object both fields are filled by
`R_X86_64_PC32` relocations in the table's relocation section:

- addr (at 8*i):   a section symbol + site offset, or a function (or other
  defined) symbol + offset within it;
- key  (at 8*i+4): the key symbol `__SCK__<name>` (or, in module mode, the
  trampoline `__SCT__<name>`), with flag bits in the addend (1 = tail call).

`read_table(path)` returns the entries in table order as `Entry` tuples
`(site_section_name, site_offset, key_symbol_name, flags)`, or None when the
object has no `.static_call_sites` section.  Any structural problem raises
`TableError`.

    python scripts/tableread.py OBJ...          # print the entries
    python scripts/tableread.py --count OBJ...  # only the counts
"""
from __future__ import annotations

import argparse
import struct
import sys
from collections import Counter
from pathlib import Path
from typing import BinaryIO, NamedTuple

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

TABLE = ".static_call_sites"
ENTRY_SIZE = 8
R_X86_64_PC32 = 2
SHT_REL = "SHT_REL"
SHT_RELA = "SHT_RELA"

__all__ = ["Entry", "TableError", "read_table", "read_table_elf",
           "summarize", "TABLE", "ENTRY_SIZE"]


class TableError(Exception):
    """The object's static-call table is malformed (or the file is not a
    readable x86-64 relocatable object)."""


class Entry(NamedTuple):
    section: str   # name of the section holding the call site
    offset: int    # offset of the site's instruction start in that section
    key: str       # name of the key symbol (or trampoline, module mode)
    flags: int     # addend of the key relocation (1 = tail call)

    def __str__(self) -> str:
        return f"{self.section}+{self.offset:#x} {self.key} flags={self.flags}"


def _section_name(elf: ELFFile, index) -> str:
    if not isinstance(index, int) or index <= 0 or index >= elf.num_sections():
        raise TableError(f"symbol refers to section index {index!r}")
    return elf.get_section(index).name


def _resolve_addr(elf: ELFFile, sym, addend: int, where: str) -> tuple[str, int]:
    shndx = sym["st_shndx"]
    if shndx == "SHN_UNDEF":
        raise TableError(f"{where}: addr relocation against undefined symbol "
                         f"{sym.name!r}")
    if not isinstance(shndx, int):
        raise TableError(f"{where}: addr relocation against symbol {sym.name!r} "
                         f"in special section {shndx}")
    secname = _section_name(elf, shndx)
    if sym["st_info"]["type"] == "STT_SECTION":
        return secname, addend
    return secname, sym["st_value"] + addend


def _key_name(elf: ELFFile, sym, where: str) -> str:
    if sym["st_info"]["type"] == "STT_SECTION":
        # Not expected in practice, but name it unambiguously.
        return _section_name(elf, sym["st_shndx"])
    if not sym.name:
        raise TableError(f"{where}: key relocation against an unnamed symbol")
    return sym.name


def read_table_elf(elf: ELFFile) -> list[Entry] | None:
    """Entries of the table of an open ELFFile, in table order (None if the
    object has no table)."""
    if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
        raise TableError(f"not an x86-64 ELF64 object "
                         f"(class {elf.elfclass}, machine {elf['e_machine']})")
    if elf["e_type"] != "ET_REL":
        raise TableError(f"not a relocatable object (e_type {elf['e_type']})")

    tables = [(i, s) for i, s in enumerate(elf.iter_sections()) if s.name == TABLE]
    if not tables:
        return None
    if len(tables) > 1:
        raise TableError(f"{len(tables)} sections named {TABLE}")
    tidx, table = tables[0]
    size = table["sh_size"]
    entsize = table["sh_entsize"]
    if table["sh_type"] != "SHT_PROGBITS":
        raise TableError(f"{TABLE} has type {table['sh_type']}, expected SHT_PROGBITS")
    # objtool writes entsize 8; `ld -r` (which produced the modules) writes 0.
    if entsize not in (0, ENTRY_SIZE):
        raise TableError(f"{TABLE} has sh_entsize {entsize}, expected {ENTRY_SIZE} (or 0)")
    if size % ENTRY_SIZE:
        raise TableError(f"{TABLE} size {size} is not a multiple of {ENTRY_SIZE}")
    n = size // ENTRY_SIZE

    relsecs = [s for s in elf.iter_sections()
               if s["sh_type"] in (SHT_REL, SHT_RELA) and s["sh_info"] == tidx]
    if not relsecs:
        if n:
            raise TableError(f"{TABLE} has {n} entries but no relocation section")
        return []
    if len(relsecs) > 1:
        raise TableError(f"{TABLE} has {len(relsecs)} relocation sections: "
                         + ", ".join(s.name for s in relsecs))
    relsec = relsecs[0]
    expected_rel = (".rela" if relsec["sh_type"] == SHT_RELA else ".rel") + TABLE
    if relsec.name != expected_rel:
        raise TableError(f"relocation section of {TABLE} is named {relsec.name!r}, "
                         f"expected {expected_rel!r}")
    want_entsize = 24 if relsec["sh_type"] == SHT_RELA else 16
    if relsec["sh_entsize"] != want_entsize:
        raise TableError(f"{relsec.name} has sh_entsize {relsec['sh_entsize']}, "
                         f"expected {want_entsize}")
    if relsec["sh_size"] % want_entsize:
        raise TableError(f"{relsec.name} size {relsec['sh_size']} is not a "
                         f"multiple of {want_entsize}")
    symtab = elf.get_section(relsec["sh_link"])
    if symtab is None or symtab["sh_type"] != "SHT_SYMTAB":
        raise TableError(f"{relsec.name} sh_link {relsec['sh_link']} is not a symbol table")
    nsyms = symtab.num_symbols()
    data = table.data() if relsec["sh_type"] == SHT_REL else b""

    by_offset: dict[int, tuple[int, int]] = {}   # r_offset -> (symidx, addend)
    for k, rel in enumerate(relsec.iter_relocations()):
        where = f"{relsec.name}[{k}]"
        off = rel["r_offset"]
        rtype = rel["r_info_type"]
        symidx = rel["r_info_sym"]
        if rtype != R_X86_64_PC32:
            raise TableError(f"{where}: relocation type {rtype} at {off:#x}, "
                             f"expected R_X86_64_PC32 ({R_X86_64_PC32})")
        if off % 4 or off + 4 > size:
            raise TableError(f"{where}: relocation offset {off:#x} is not a field "
                             f"of the {size}-byte table")
        if off in by_offset:
            raise TableError(f"{where}: second relocation at offset {off:#x}")
        if symidx == 0 or symidx >= nsyms:
            raise TableError(f"{where}: relocation at {off:#x} has symbol index {symidx}")
        if relsec["sh_type"] == SHT_RELA:
            addend = rel["r_addend"]
        else:
            addend = struct.unpack_from("<i", data, off)[0]
        by_offset[off] = (symidx, addend)

    missing = [o for o in range(0, size, 4) if o not in by_offset]
    if missing:
        raise TableError(f"{len(missing)} table field(s) without a relocation, first at "
                         f"offset {missing[0]:#x} (entry {missing[0] // ENTRY_SIZE})")

    entries: list[Entry] = []
    for i in range(n):
        a_idx, a_add = by_offset[ENTRY_SIZE * i]
        k_idx, k_add = by_offset[ENTRY_SIZE * i + 4]
        where = f"{TABLE} entry {i}"
        secname, off = _resolve_addr(elf, symtab.get_symbol(a_idx), a_add, where)
        key = _key_name(elf, symtab.get_symbol(k_idx), where)
        entries.append(Entry(secname, off, key, k_add))
    return entries


def read_table_stream(stream: BinaryIO) -> list[Entry] | None:
    try:
        return read_table_elf(ELFFile(stream))
    except TableError:
        raise
    except (ELFError, struct.error, ValueError, KeyError, IndexError) as e:
        raise TableError(f"unreadable ELF: {e}") from e


def read_table(path: str | Path) -> list[Entry] | None:
    """Entries of PATH's `.static_call_sites` table in table order, or None if
    PATH has no such section.  Raises TableError on a malformed table."""
    with open(path, "rb") as f:
        try:
            return read_table_stream(f)
        except TableError as e:
            raise TableError(f"{path}: {e}") from e


def summarize(entries: list[Entry] | None) -> Counter:
    """Counts: entries, calls (flags 0), tail calls (flags 1), other flags."""
    c = Counter()
    for e in entries or ():
        c["sites"] += 1
        if e.flags == 0:
            c["calls"] += 1
        elif e.flags == 1:
            c["tail calls"] += 1
        else:
            c["other flags"] += 1
    return c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("objects", nargs="+", metavar="OBJ")
    ap.add_argument("--count", action="store_true",
                    help="print only per-object and total counts")
    args = ap.parse_args(argv)
    total = Counter()
    with_table = 0
    rc = 0
    for path in args.objects:
        try:
            entries = read_table(path)
        except (TableError, OSError) as e:
            print(f"tableread: {e}", file=sys.stderr)
            rc = 1
            continue
        multi = len(args.objects) > 1
        if entries is None:
            print(f"{path}: no {TABLE}")
            continue
        with_table += 1
        c = summarize(entries)
        total += c
        if args.count:
            print(f"{path}: {c['sites']} sites ({c['calls']} calls, "
                  f"{c['tail calls']} tail calls)")
            continue
        if multi:
            print(f"{path}:")
        for i, e in enumerate(entries):
            print(f"{i:5d}  {e.section}+{e.offset:#x}  {e.key}  {e.flags}")
    if len(args.objects) > 1:
        print(f"total: {len(args.objects)} objects, {with_table} with a table, "
              f"{total['sites']} sites ({total['calls']} calls, "
              f"{total['tail calls']} tail calls, {total['other flags']} other flags)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
