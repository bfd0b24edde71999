"""The pipeline for one object: read -> find -> decode -> classify.

``scan_path`` is the library's main entry point::

    from scall_objtool import Options, scan_path
    result = scan_path("foo.o", Options(policy="kernel"))
    for site in result.sites:
        print(site.section, hex(site.offset), site.kind, site.patchable)
"""
from __future__ import annotations

import os

from .classify import apply_policy, crossing, effective_alignment
from .elf import ElfFile, reloc_name
from .errors import InputError
from .find import (find_candidates, find_code_candidates, find_trampolines,
                   has_code_relocations)
from .model import ObjectResult, Options, Reference, Site

TABLE = ".static_call_sites"
RELA_TABLE = ".rela.static_call_sites"
#: refuse files larger than this (a sanity bound; vmlinux is ~340 MB)
MAX_FILE = 4 << 30


def read_file(path: str) -> bytes:
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror}", path) from None
    if not os.path.isfile(path):
        raise InputError("not a regular file", path)
    if st.st_size > MAX_FILE:
        raise InputError(f"file is too large ({st.st_size} bytes)", path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None


def open_elf(path: str) -> ElfFile:
    return ElfFile(read_file(path), path)


def key_name(tramp_name: bytes, options: Options) -> bytes:
    return options.key_prefix.encode() + tramp_name[len(options.tramp_prefix.encode()):]


def scan_elf(elf: ElfFile, options: Options, candidates_from: str = "auto",
             sources: bool = True) -> ObjectResult:
    """Find, prove and classify every static-call site of a parsed object.

    ``candidates_from`` matters for linked images only: ``relocs`` uses the
    relocations an image keeps (``--emit-relocs``), ``code`` scans the code
    for direct branches to trampolines, ``auto`` uses relocations when the
    image has any for its code."""
    result = ObjectResult(path=elf.path, elf_type=elf.elf_type)
    result.elf = elf
    linked = elf.linked
    if linked:
        from .table import image_table_bounds
        bounds = image_table_bounds(elf)
        if bounds is not None:
            result.existing_table = {"entries": (bounds[1] - bounds[0]) // 8}
    else:
        existing = elf.section_by_name(TABLE)
        if existing is not None:
            result.existing_table = {"entries": existing.size // 8}

    tramps = find_trampolines(elf, options.tramp_prefix.encode())
    if linked and (candidates_from == "code" or (
            candidates_from == "auto" and not has_code_relocations(elf))):
        candidates = find_code_candidates(elf, tramps)
    else:
        candidates = find_candidates(elf, tramps)
    if not candidates:
        return result
    from .decode import prove
    from .elf import printable

    seen = set()
    refs = []
    for proof in prove(elf, candidates):
        c = proof.candidate
        sec = c.section
        if proof.site_kind is None:
            if c.from_code:
                continue        # a byte pattern that decoding did not confirm
            kind = "data" if not sec.executable else (
                "unproven" if proof.insn is None else "address")
            refs.append((sec.index, c.offset, Reference(
                section=sec.name, offset=c.offset, function=proof.function,
                function_offset=proof.function_offset, symbol=c.tramp.name,
                reloc_type=reloc_name(c.rtype), kind=kind,
                detail=proof.detail if kind != "data" else "referenced from data")))
            continue
        insn = proof.insn
        if (sec.index, insn.start) in seen:
            continue
        seen.add((sec.index, insn.start))
        if linked:
            address = sec.addr + insn.start
            align = options.cache_line         # the address is final: exact placement
        else:
            address = None
            align = effective_alignment(sec.addralign, options)
        site = Site(
            section=sec.name, section_index=sec.index, offset=insn.start, address=address,
            function=proof.function, function_offset=proof.function_offset,
            trampoline=c.tramp.name, tramp_sym=c.tramp.index,
            key=printable(key_name(c.tramp.name_bytes, options)),
            kind=proof.site_kind, length=insn.length, prefixes=insn.prefixes,
            reloc_type="none" if c.from_code else reloc_name(c.rtype), alignment=align)
        if site.kind != "indirect":
            site.crossing = crossing(insn.start if address is None else address, insn.length,
                                     align, options.cache_line)
        apply_policy(site, options)
        result.sites.append(site)
    result.sites.sort(key=lambda s: (s.section_index, s.offset))
    refs.sort(key=lambda r: r[:2])
    result.references = [r[2] for r in refs]
    if sources and result.sites and (elf.section_by_name(".debug_info") is not None
                                     or elf.section_by_name(".zdebug_info") is not None):
        from .lines import attach_sources
        attach_sources(elf, result)
    return result


def scan_path(path: str, options: Options | None = None,
              candidates_from: str = "auto") -> ObjectResult:
    """Scan one file; raises InputError for anything that is not a usable object."""
    return scan_elf(open_elf(path), options or Options(), candidates_from)
