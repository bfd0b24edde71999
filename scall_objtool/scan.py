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
from .elf import ET_REL, ElfFile, reloc_name
from .errors import InputError
from .find import find_candidates, find_trampolines
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


def scan_elf(elf: ElfFile, options: Options) -> ObjectResult:
    """Find, prove and classify every static-call site of a parsed object."""
    if elf.e_type != ET_REL:
        raise InputError(f"linked images (ELF type {elf.elf_type}) are not supported yet; "
                         "pass relocatable objects (.o, .ko)", elf.path)
    result = ObjectResult(path=elf.path, elf_type=elf.elf_type)
    result.elf = elf
    existing = elf.section_by_name(TABLE)
    if existing is not None:
        result.existing_table = {"entries": existing.size // 8}

    tramps = find_trampolines(elf, options.tramp_prefix.encode())
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
        align = effective_alignment(sec.addralign, options)
        site = Site(
            section=sec.name, section_index=sec.index, offset=insn.start, address=None,
            function=proof.function, function_offset=proof.function_offset,
            trampoline=c.tramp.name, tramp_sym=c.tramp.index,
            key=printable(key_name(c.tramp.name_bytes, options)),
            kind=proof.site_kind, length=insn.length, prefixes=insn.prefixes,
            reloc_type=reloc_name(c.rtype), alignment=align)
        if site.kind != "indirect":
            site.crossing = crossing(insn.start, insn.length, align, options.cache_line)
        apply_policy(site, options)
        result.sites.append(site)
    result.sites.sort(key=lambda s: (s.section_index, s.offset))
    refs.sort(key=lambda r: r[:2])
    result.references = [r[2] for r in refs]
    if result.sites and elf.section_by_name(".debug_line") is not None:
        from .lines import attach_sources
        attach_sources(elf, result)
    return result


def scan_path(path: str, options: Options | None = None) -> ObjectResult:
    """Scan one file; raises InputError for anything that is not a usable object."""
    return scan_elf(open_elf(path), options or Options())
