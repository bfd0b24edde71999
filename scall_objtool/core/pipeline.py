"""The pipeline for one object: read -> find -> decode -> classify.

``scan_path`` is the library's main entry point::

    from scall_objtool import Options, scan_path
    result = scan_path("foo.o", Options(policy="kernel"))
    for site in result.sites:
        print(site.section, hex(site.offset), site.kind, site.patchable)
"""
from __future__ import annotations

import gc

from ..options import CANDIDATES, check
from ..table import ENTRY_SIZE, foreign_table_problem, key_name, table_sections
from ..vocabulary import KIND_TABLE
from . import ObjectResult, Options, Reference, Site
from .candidates import (find_candidates, find_code_candidates, find_trampolines,
                         has_code_relocations)
from ..records import later
from .elf import SHT_NOBITS, ElfFile, display_name, open_elf, reloc_name

#: what only an object with candidates needs (and remedy, one with sites)
_classify, _decode = later("scall_objtool.core.classify"), later("scall_objtool.core.decode")
_placement, _remedy = later("scall_objtool.core.placement"), later("scall_objtool.core.remedy")

#: the kinds of site with a rel32, whose placement matters
_DIRECT = frozenset(k for k, spec in KIND_TABLE.items() if spec.direct)

#: what ``scan_elf(sources=...)`` reads source lines (DWARF) for: every site,
#: the fallback sites only (what a check shows), or none
SOURCES = ("all", "fallback", "none")
#: processes a linked image's source lines may use (``lines.lookup``); the
#: command line sets its --jobs here, a batch's worker processes never split
LINE_JOBS = 1


def scan_elf(elf: ElfFile, options: Options, candidates_from: str | None = None,
             sources: bool | str = True) -> ObjectResult:
    """Find, prove and classify every static-call site of a parsed object.

    The cyclic garbage collector is paused meanwhile (when it runs): a scan
    makes many containers and no cycle it does not break itself (the
    DWARF lookup's are undone by ``_Lookup.close``), and each collection
    traverses every live container, the symbol columns and the abbreviation
    tables included (the 6.12 vmlinux with lines: 490 collections, 0.2 s of
    CPU).  What a scan leaves is collected after it, as before.

    ``options.candidates`` (or ``candidates_from``, when given) matters for
    linked images only: ``relocs`` uses the relocations an image keeps
    (``--emit-relocs``), ``code`` scans the code for direct branches to
    trampolines, ``auto`` uses relocations when the image has any for its
    code.  ``sources``: whose source lines to read from the DWARF (one of
    SOURCES; True is all, False none): only what an output shows is paid for."""
    if candidates_from is None:
        candidates_from = options.candidates
    else:
        check(CANDIDATES, candidates_from)
    sources = {True: "all", False: "none"}.get(sources, sources)
    if not gc.isenabled():
        return _scan(elf, options, candidates_from, sources)
    gc.disable()
    try:
        return _scan(elf, options, candidates_from, sources)
    finally:
        gc.enable()


def _scan(elf: ElfFile, options: Options, candidates_from: str, sources: str) -> ObjectResult:
    result = ObjectResult(path=elf.path, elf_type=elf.elf_type)
    linked = elf.linked
    if linked:
        from ..table import image_table_bounds
        bounds = image_table_bounds(elf)
        if bounds is not None:
            result.existing_table = {"entries": (bounds[1] - bounds[0]) // ENTRY_SIZE}
    else:
        existing, foreign = table_sections(elf)
        if existing is not None:
            result.existing_table = {"entries": existing.size // ENTRY_SIZE}
        result.warnings.extend(f"{foreign_table_problem(s)}; ignored" for s in foreign)

    if not linked:
        result.no_code = _lto_without_code(elf)
        if result.no_code:
            result.warnings.append(result.no_code)
    tramps = find_trampolines(elf, options.tramp_prefix.encode())
    if linked and (candidates_from == "code" or (
            candidates_from == "auto" and not has_code_relocations(elf))):
        candidates = find_code_candidates(elf, tramps)
    else:
        candidates = find_candidates(elf, tramps)
    if not candidates:
        return result
    classify, decode, placement = _classify(), _decode(), _placement()
    policy_reason, crossing_of = classify.policy_reason, classify.crossing
    ADDRESS, Placer = placement.ADDRESS, placement.Placer
    found: dict[tuple[int, int], Site] = {}     # (section, instruction start) -> its site
    refs = []
    tramp_of: dict[int, tuple] = {}   # trampoline symbol -> (name, index, its key's name, shown)
    reloc_of: dict[int, str] = {}     # relocation type -> its name
    verdict_of: dict[tuple, tuple] = {}     # (kind, prefixes, crossing) -> (patchable, reason)
    line = options.cache_line
    placer = None if linked else Placer(elf, options, result.warnings)
    last = None
    for proof in decode.prove(elf, candidates):
        c = proof.candidate
        sec = c.section
        kind = proof.site_kind
        if kind is None:
            if c.from_code:
                continue        # a byte pattern that decoding did not confirm
            kind = "data" if not sec.executable else (
                "unproven" if proof.insn is None else "address")
            refs.append((sec.index, c.offset, Reference(
                sec.name, c.offset, proof.function, proof.function_offset, c.tramp.name,
                reloc_of.get(c.rtype) or reloc_of.setdefault(c.rtype, reloc_name(c.rtype)), kind,
                proof.detail if kind != "data" else "referenced from data")))
            continue
        insn = proof.insn
        if sec is not last:
            # what a site's placement rests on, once a section (the proofs
            # come section by section): the first site of each section is
            # the first of its proofs, so the placer's warnings come in the
            # same order as when it was asked for every site
            last = sec
            index, name = sec.index, sec.name
            if linked:
                align = line         # the address is final: exact placement
                base = sec.addr
                placed = ADDRESS
            else:
                # the section's start is `base` bytes past an `align`-aligned boundary
                align, base, placed = placer.where(sec)
        start = insn.start
        at = (index, start)
        if at in found:
            continue
        tramp = c.tramp
        t = tramp_of.get(tramp.index)
        if t is None:
            t = tramp_of[tramp.index] = (tramp.name, tramp.index,
                                         display_name(key_name(tramp.name_bytes, options)))
        rname = "none" if c.from_code else (
            reloc_of.get(c.rtype) or reloc_of.setdefault(c.rtype, reloc_name(c.rtype)))
        length, prefixes = insn.length, insn.prefixes
        if kind in _DIRECT:                     # an indirect call has no rel32
            crossing = crossing_of(base + start, length, align, line)
        else:
            crossing = None
        verdict = verdict_of.get((kind, prefixes, crossing))
        if verdict is None:
            reason = policy_reason(kind, prefixes, crossing, options)
            verdict = verdict_of[kind, prefixes, crossing] = (reason is None, reason)
        found[at] = Site(name, index, start, base + start if linked else None,
                         proof.function, proof.function_offset, t[0], t[1], t[2], kind,
                         length, prefixes, rname, align, crossing, verdict[0], verdict[1],
                         None, [], placed)
    result.sites = [found[at] for at in sorted(found)]
    if result.sites:
        result.compiler = _remedy().compiler_of(elf)
    refs.sort(key=lambda r: r[:2])
    result.references = [r[2] for r in refs]
    if sources != "none" and result.sites and (elf.section_by_name(".debug_info") is not None
                                     or elf.section_by_name(".zdebug_info") is not None):
        from ..lines import attach_sources
        attach_sources(elf, result, fallback_only=sources == "fallback", jobs=LINE_JOBS)
    return result


def _lto_without_code(elf: ElfFile) -> str | None:
    """A GCC LTO object whose only contents are GIMPLE (``.gnu.lto_*``): the
    machine code, and so every static call, only exists after the link."""
    if b".gnu.lto_" not in elf.shstrtab \
            or not any(s.name.startswith(".gnu.lto_") for s in elf.sections):
        return None             # (a name absent from the name table names no section)
    if any(s.executable and s.size and s.type != SHT_NOBITS for s in elf.sections):
        return None             # a fat LTO object: its machine code is here
    return ("GCC LTO object (.gnu.lto_* sections only): no machine code to check; "
            "build with -ffat-lto-objects or check the final link")


def scan_path(path: str, options: Options | None = None,
              candidates_from: str | None = None) -> ObjectResult:
    """Scan one file; raises InputError for anything that is not a usable object."""
    return scan_elf(open_elf(path), options or Options(), candidates_from)
