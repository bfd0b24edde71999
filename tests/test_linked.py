"""Linked images (executables, PIE, vmlinux) and `verify`."""
from __future__ import annotations

import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from scall_testlib import PREBUILT, SRC, near_and_full, run_cli, scan_lib, write_lib

from scall_objtool import Options
from scall_objtool.core.elf import ElfFile
from scall_objtool.core.pipeline import scan_elf
from scall_objtool.table import image_table_bounds
from scall_objtool.table.verify import verify

LDSCRIPT = SRC / "static_call_sites.ld"


def _symbols(path):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}


@pytest.fixture(params=["-no-pie", "-pie"])
def prog(request, build, tmp_path):
    """linkprog with its table written (kernel policy), linked as PIE / non-PIE."""
    pic = "-fPIE" if request.param == "-pie" else "-fno-pie"
    objs = [build("linkprog.c", "-O2", pic), build("linktramp.S")]
    for o in objs:
        write_lib("--policy", "kernel", o)
    out = tmp_path / f"prog{request.param}"
    subprocess.run(["gcc", request.param, f"-Wl,-T,{LDSCRIPT}", "-o", str(out),
                    *map(str, objs)], check=True, capture_output=True)
    relocs = tmp_path / f"prog{request.param}-relocs"
    subprocess.run(["gcc", request.param, "-Wl,--emit-relocs", f"-Wl,-T,{LDSCRIPT}", "-o",
                    str(relocs), *map(str, objs)], check=True, capture_output=True)
    return out, relocs, objs


def test_scan_linked_image_has_exact_addresses_and_crossing(prog):
    exe, _, objs = prog
    report = scan_lib("--policy", "kernel", exe)
    obj = report["objects"][0]
    assert obj["elf_type"] in ("EXEC", "DYN")
    sites = obj["sites"]
    want = sum(o["summary"]["sites"]
               for o in scan_lib("--policy", "kernel", *objs)["objects"])
    assert len(sites) == want > 0
    assert obj["existing_table"] == {"entries": want}
    syms = _symbols(exe)
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        text = {s.name: s for s in elf.iter_sections()}
        for s in sites:
            sec = text[s["section"]]
            assert s["address"] == sec["sh_addr"] + s["offset"]
            assert s["crossing"] in ("never", "always") and s["alignment"] == 64
            assert s["crossing"] == ("always" if s["address"] % 64 + s["length"] > 64
                                     else "never")
            code = sec.data()[s["offset"]:s["offset"] + s["length"]]
            field = len(code) - 4
            dest = s["address"] + s["length"] + struct.unpack("<i", code[field:])[0]
            assert dest == syms[s["trampoline"]]
            if s["function"] is not None:
                assert s["address"] == syms[s["function"]] + s["function_offset"]


def test_relocations_and_code_scanning_agree(prog):
    exe, relocs, _ = prog

    def sites(path, how):
        rep = scan_lib("--policy", "kernel", "--candidates", how, path)
        return [(s["section"], s["offset"], s["address"], s["kind"], s["trampoline"])
                for s in rep["objects"][0]["sites"]]

    from_code = sites(exe, "code")
    assert from_code == sites(exe, "auto")
    assert from_code == sites(relocs, "relocs") == sites(relocs, "code")


def test_verify_passes_on_linked_image_and_objects(prog):
    exe, relocs, objs = prog
    res = run_cli("verify", "--policy", "kernel", exe, relocs, *objs)
    assert res.rc == 0, res.stdout + res.stderr
    # only failures are listed: the summary line alone
    assert res.stdout.splitlines() == [
        f"verify: {2 + len(objs)} objects, {res.stdout.split()[3]} entries, 0 failed, "
        "0 with policy findings (policy kernel)"]


def test_verify_names_an_entry_altered_by_one_byte(prog, tmp_path):
    exe, _, _ = prog
    data = bytearray(exe.read_bytes())
    elf = ElfFile(bytes(data), str(exe))
    start, stop = image_table_bounds(elf)
    n = (stop - start) // 8
    assert n >= 3
    sec = elf.section_at(start)
    at = sec.offset + (start - sec.addr) + 8 * 2      # entry 2's addr field
    data[at] = (data[at] + 1) & 0xFF
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    res = run_cli("verify", "--policy", "kernel", bad)
    assert res.rc == 1
    assert "entry 2 (" in res.stdout and "mismatch" in res.stdout
    # the site entry 2 used to name is now missing from the table
    assert "missing:" in res.stdout


def test_verify_catches_a_wrong_tail_flag_and_key(build, tmp_path):
    obj = build("linktramp.S")
    write_lib("--policy", "kernel", obj)
    data = bytearray(obj.read_bytes())
    # flip the tail flag of the first entry: find .rela.static_call_sites
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        rsec = elf.get_section_by_name(".rela.static_call_sites")
        off = rsec["sh_offset"]
    key_rela = off + 24 + 16                 # second relocation's addend
    addend = struct.unpack_from("<q", data, key_rela)[0]
    struct.pack_into("<q", data, key_rela, addend ^ 1)
    bad = tmp_path / "bad.o"
    bad.write_bytes(bytes(data))
    res = run_cli("verify", "--policy", "kernel", bad)
    assert res.rc == 1
    assert "entry 0 (" in res.stdout and "tail flag" in res.stdout


def test_verify_reports_an_entry_inside_an_instruction(build, tmp_path):
    obj = build("linktramp.S")
    write_lib("--policy", "kernel", obj)
    data = bytearray(obj.read_bytes())
    with open(obj, "rb") as f:
        rsec = ELFFile(f).get_section_by_name(".rela.static_call_sites")
        off = rsec["sh_offset"]
    addend = struct.unpack_from("<q", data, off + 16)[0]
    struct.pack_into("<q", data, off + 16, addend + 1)
    bad = tmp_path / "bad.o"
    bad.write_bytes(bytes(data))
    res = run_cli("verify", "--policy", "kernel", bad)
    assert res.rc == 1
    assert "is not an instruction start" in res.stdout


def test_linker_relaxed_got_call_is_a_prefixed_call(tmp_path):
    """ld turns `call *f@GOTPCREL(%rip)` into `addr32 call f` (67 E8)."""
    src = tmp_path / "got.S"
    src.write_text("""
        .text
        .globl main
        .type main,@function
main:   push %rbx
        call *__SCT__g@GOTPCREL(%rip)
        pop %rbx
        xor %eax,%eax
        ret
        .size main,.-main
        .section .static_call.text,"ax"
        .globl __SCT__g
        .type __SCT__g,@function
__SCT__g: ret
        .size __SCT__g,.-__SCT__g
""")
    exe = tmp_path / "got"
    subprocess.run(["gcc", "-no-pie", "-o", str(exe), str(src)], check=True)
    report = run_cli("scan", "--format", "json", exe).json()
    sites = report["objects"][0]["sites"]
    assert [(s["kind"], s["prefixes"], s["function"]) for s in sites] == [
        ("prefixed-call", "67", "main")]
    assert sites[0]["reason"] == "prefixed"


def test_write_refuses_linked_images(prog):
    exe, _, _ = prog
    before = exe.read_bytes()
    res = run_cli("write", exe)
    assert res.rc == 2 and "linked image" in res.stderr
    assert exe.read_bytes() == before


@pytest.mark.slow
def test_verify_all_modules_of_the_corpus(corpus):
    res = run_cli("verify", "--policy", "kernel", "--module", corpus, timeout=600)
    assert res.rc == 0, res.stdout[-2000:] + res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last == ("verify: 1121 objects, 7113 entries, 0 failed, 0 with policy findings "
                    "(policy kernel)")
    # the tables objtool wrote verify with no options at all (issue 13)
    plain = run_cli("verify", "-q", corpus, timeout=600)
    assert plain.rc == 0 and ", 7113 entries, 0 failed, " in plain.stdout, plain.stdout


@pytest.mark.slow
def test_vmlinux_scan_matches_its_own_table(vmlinux):
    data = vmlinux.read_bytes()
    elf = ElfFile(data, str(vmlinux))
    options = Options(policy="kernel")
    for how in ("relocs", "code"):
        result = scan_elf(elf, options, how, sources=False)
        verdict = verify(elf, result, options)
        assert verdict.ok, (how, verdict.mismatches[:5], verdict.missing[:5])
        assert verdict.entries == len(result.sites) == 4275
        assert {s.crossing for s in result.sites} == {"never", "always"}
        assert all(s.address == elf.sections[s.section_index].addr + s.offset
                   for s in result.sites)
    # one byte altered in one entry: verify names it
    start, _ = image_table_bounds(elf)
    sec = elf.section_at(start)
    at = sec.offset + (start - sec.addr) + 8 * 1000
    bad = bytearray(data)
    bad[at] ^= 0x01
    elf2 = ElfFile(bytes(bad), "altered")
    verdict = verify(elf2, scan_elf(elf2, options, "code", sources=False), options)
    assert not verdict.ok
    assert any(m.startswith("entry 1000 (") for m in verdict.mismatches), verdict.mismatches


def test_verify_path_library_api(tmp_path):
    from scall_objtool import verify_path, write_path
    out = tmp_path / "demo.o"
    write_path(str(PREBUILT / "demo.o"), Options(), output=str(out))
    seed = verify_path(str(out))
    assert seed.ok and seed.entries == 3
    kernel = verify_path(str(out), Options(policy="kernel"))
    assert not kernel.ok and len(kernel.missing) == 1 and "tail to __SCT__demo_hook" in \
        kernel.missing[0]


def test_a_linked_image_reads_only_the_entries_naming_a_trampoline(prog):
    """In a linked image a site's relocation names the trampoline itself; the
    entries through a section symbol (the image's own calls: 520,000 in the
    6.1 vmlinux) are passed over unread: entries read = entries naming a
    trampoline."""
    from scall_objtool.core.candidates import find_candidates, find_trampolines
    from scall_objtool.core.elf import STT_SECTION, RelocColumns
    out, _, objs = prog
    link = out.name.removeprefix("prog")                # -pie or -no-pie, as the fixture
    extra = relocs = objs[0].parent / "addressed"
    # functions beside the trampolines whose addresses are taken: entries
    # through their section's symbol
    at = '__attribute__((section(".static_call.text"), noinline))'
    extra.with_suffix(".c").write_text(f"static {at} int one(void) {{ return 1; }}\n"
                                       f"static {at} int two(void) {{ return 2; }}\n"
                                       "int (*const addressed[])(void) = { one, two };\n")
    subprocess.run(["gcc", "-O2", "-fPIE" if link == "-pie" else "-fno-pie", "-c",
                    str(extra.with_suffix(".c")), "-o",
                    str(extra.with_suffix(".o"))], check=True, capture_output=True)
    subprocess.run(["gcc", link, "-Wl,--emit-relocs", f"-Wl,-T,{LDSCRIPT}", "-o", str(relocs),
                    *map(str, objs), str(extra.with_suffix(".o"))],
                   check=True, capture_output=True)
    elf = ElfFile(relocs.read_bytes(), str(relocs))
    tramps = find_trampolines(elf, b"__SCT__")
    defining = {s.shndx for s in tramps.values()}
    secsyms = {i for i, info in enumerate(elf.syms.info)
               if info & 0xF == STT_SECTION and elf.syms.shndx[i] in defining}
    naming = through = 0
    for rsec in elf.relocation_sections():
        if elf.sections[rsec.info].flags & 0x2 and elf.sections[rsec.info].name != \
                ".static_call_sites":
            syms = elf.relocations(rsec).sym
            naming += sum(s in tramps for s in syms)
            through += sum(s in secsyms for s in syms)
    assert through > 0 and naming > 0, (through, naming)
    read = []
    orig = RelocColumns.entry

    def counted(self, i):
        read.append(i)
        return orig(self, i)
    RelocColumns.entry = counted
    try:
        found = find_candidates(elf, tramps)
    finally:
        RelocColumns.entry = orig
    assert len(read) == naming and len(found) == naming, (len(read), naming, len(found))


def test_a_linked_images_function_index_reads_only_the_symbols_near_the_sites(prog):
    """Issue 24, fifth round: a linked image's FunctionIndex (symbol values
    are addresses) walks back from each query over the symbols sorted by
    start, as a relocatable object's does (before: a pass over every symbol
    of the section, 100,000 in a vmlinux's .text): the same functions and
    labels, and symbols examined through that walk."""
    from scall_objtool.core import decode
    exe, _, _ = prog
    elf = ElfFile(exe.read_bytes(), str(exe))
    text = next(s for s in elf.sections if s.name == ".text")
    offsets = list(range(0, text.size, max(1, text.size // 50)))
    before = decode.NEAR_EXAMINED[0]
    fast, full = near_and_full(elf, text, offsets)     # (the full pass examines none)
    examined = decode.NEAR_EXAMINED[0] - before
    assert (fast.funcs, fast.labels) == (full.funcs, full.labels) and fast.funcs
    assert all(fast.containing(o) == full.containing(o) for o in offsets)
    assert 0 < examined <= len(elf.syms.in_section(text.index)) + 1


def test_code_candidates_are_found_in_chunks(prog):
    """Issue 24, fifth round: a linked image's code is searched for branches
    to trampolines CODE_CHUNK positions at a time (the masks of a 16 MiB
    .text took a hundred MiB of fresh pages at once; the 6.12 vmlinux's
    search 0.30 -> 0.05 s of CPU): the same candidates with chunks of a few
    bytes (a branch across every boundary) as with one chunk."""
    from scall_objtool.core import candidates
    exe, _, _ = prog
    elf = ElfFile(exe.read_bytes(), str(exe))
    tramps = candidates.find_trampolines(elf, b"__SCT__")

    def found(chunk):
        was, candidates.CODE_CHUNK = candidates.CODE_CHUNK, chunk
        try:
            return [(c.section.index, c.offset, c.tramp.name)
                    for c in candidates.find_code_candidates(elf, tramps)]
        finally:
            candidates.CODE_CHUNK = was
    whole = found(1 << 30)
    assert len(whole) >= 3
    assert all(found(n) == whole for n in (1, 2, 3, 5, 7, 64))
