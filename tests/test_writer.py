"""The writer: recordmcount-style append, cross-checked by an independent
reader (LIEF), deterministic, atomic, mode-preserving."""
from __future__ import annotations

import os
import struct
import subprocess

import lief
import pytest

from scall_testlib import PREBUILT, SRC, assemble, run_cli, scan_lib, write_lib

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")


def headers(data: bytes):
    h = EHDR.unpack_from(data)
    shoff, shnum = h[6], h[12]
    if shnum == 0:
        shnum = SHDR.unpack_from(data, shoff)[5]
    return [SHDR.unpack_from(data, shoff + 64 * i) for i in range(shnum)]


def lief_table(path):
    """(section of addr symbol, addend, key symbol, flags) per entry, via LIEF."""
    b = lief.parse(str(path))
    sec = b.get_section(".static_call_sites")
    relocs = sorted((r for r in b.object_relocations
                     if r.section is not None and r.section.name == ".static_call_sites"),
                    key=lambda r: r.address)
    assert len(relocs) == 2 * (sec.size // 8)
    out = []
    for a, k in zip(relocs[0::2], relocs[1::2]):
        assert a.address + 4 == k.address and a.address % 8 == 0
        assert a.type == k.type == lief.ELF.Relocation.TYPE.X86_64_PC32
        out.append((a.symbol.name, a.addend, k.symbol.name, k.addend))
    return sec, out


@pytest.fixture
def demo(tmp_path):
    p = tmp_path / "demo.o"
    p.write_bytes((PREBUILT / "demo.o").read_bytes())
    return p


def test_original_bytes_stay_where_they_were(demo, tmp_path):
    orig = demo.read_bytes()
    res = run_cli("write", "--policy", "kernel", demo)
    assert res.rc == 0, res.stderr
    new = demo.read_bytes()
    assert len(new) > len(orig)
    # only e_shoff and e_shnum change in the first len(orig) bytes
    patched = bytearray(new[:len(orig)])
    h_old, h_new = list(EHDR.unpack_from(orig)), list(EHDR.unpack_from(new))
    assert h_new[6] >= len(orig)
    h_new[6], h_new[12] = h_old[6], h_old[12]
    EHDR.pack_into(patched, 0, *h_new)
    assert bytes(patched) == orig
    # every original section keeps its offset and size
    # every original section keeps its offset and size, but the section name
    # table, which moved to the end with the new names appended
    old_secs, new_secs = headers(orig), headers(new)
    shstrndx = h_old[13]
    for i, (a, b) in enumerate(zip(old_secs, new_secs)):
        if i != shstrndx:
            assert a == b, i
    a, b = old_secs[shstrndx], new_secs[shstrndx]
    assert new[b[4]:b[4] + a[5]] == orig[a[4]:a[4] + a[5]]
    assert new[b[4] + a[5]:b[4] + b[5]] == b".rela.static_call_sites\0"
    assert len(new_secs) == len(old_secs) + 2


def test_lief_reads_the_table_we_wrote(demo):
    report = scan_lib("--policy", "kernel", demo)
    sites = report["objects"][0]["sites"]
    write_lib("--policy", "kernel", demo)
    sec, entries = lief_table(demo)
    assert sec.entry_size == 8 and sec.size == 8 * len(sites)
    assert sec.has(lief.ELF.Section.FLAGS.ALLOC) and sec.has(lief.ELF.Section.FLAGS.WRITE)
    want = [(".text", s["offset"], "__SCK__demo_hook", 1 if s["kind"] == "tail" else 0)
            for s in sites]
    got = [(a if a else ".text", off, key, flags) for a, off, key, flags in entries]
    assert got == want
    assert sum(f for *_, f in got) == 1 and len(got) == 4


def test_missing_key_is_added_as_undefined_global(tmp_path):
    obj = assemble(SRC / "kinds.S", tmp_path / "kinds.o")
    res = run_cli("write", "--policy", "kernel", obj)
    assert res.rc == 0, res.stderr
    assert "__SCK__bar is not in the object" in res.stderr
    b = lief.parse(str(obj))
    syms = [s for s in b.symtab_symbols if s.name == "__SCK__bar"]
    assert len(syms) == 1
    assert syms[0].binding == lief.ELF.Symbol.BINDING.GLOBAL and syms[0].shndx == 0
    _, entries = lief_table(obj)
    assert any(k == "__SCK__bar" for _, _, k, _ in entries)
    out = subprocess.run(["readelf", "-a", "-W", str(obj)], capture_output=True, text=True)
    assert out.returncode == 0 and "Warning" not in out.stderr and "Error" not in out.stderr


def test_determinism(tmp_path):
    outs = []
    for i in range(2):
        p = tmp_path / f"k{i}.o"
        p.write_bytes((PREBUILT / "kinds.o").read_bytes())
        assert run_cli("write", "--policy", "kernel", p).rc == 0
        outs.append(p.read_bytes())
    assert outs[0] == outs[1]
    a = run_cli("scan", "--format", "json", PREBUILT / "kinds.o").stdout
    b = run_cli("scan", "--format", "json", PREBUILT / "kinds.o").stdout
    assert a == b and a


def test_mode_kept_and_no_temporaries(demo):
    os.chmod(demo, 0o640)
    write_lib("--policy", "kernel", demo)
    assert (os.stat(demo).st_mode & 0o777) == 0o640
    assert sorted(p.name for p in demo.parent.iterdir()) == ["demo.o"]


def test_output_option_leaves_input_alone(demo, tmp_path):
    before = demo.read_bytes()
    out = tmp_path / "out.o"
    assert run_cli("write", "--policy", "kernel", "-o", out, demo).rc == 0
    assert demo.read_bytes() == before
    assert out.read_bytes()[:4] == b"\x7fELF" and len(out.read_bytes()) > len(before)


def test_output_symlink_is_replaced_not_followed(demo, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.o"
    link.symlink_to(victim)
    res = run_cli("write", "--policy", "kernel", "-o", link, demo)
    assert res.rc == 0
    assert "symlink" in res.stderr
    assert victim.read_text() == "keep me"
    assert not link.is_symlink() and link.read_bytes()[:4] == b"\x7fELF"


def test_sections_without_section_symbols_use_the_function(tmp_path):
    src = tmp_path / "nosec.s"
    src.write_text(".text\n.globl f\n.type f,@function\nf:\n nop\n call __SCT__foo\n ret\n"
                   ".size f,.-f\n.section .text.other,\"ax\"\ng: call __SCT__foo\n ret\n")
    obj = assemble(src, tmp_path / "nosec.o")
    write_lib("--policy", "kernel", "--module", obj)
    _, entries = lief_table(obj)
    assert entries == [("f", 1, "__SCT__foo", 0), ("g", 0, "__SCT__foo", 0)]
    # the relocatable link resolves them to the same places
    merged = tmp_path / "merged.o"
    subprocess.run(["ld", "-r", "-o", str(merged), str(obj)], check=True)


def test_extended_section_numbering(tmp_path):
    """More than 0xff00 sections: e_shnum is 0 and section 0 holds the count."""
    n = 65300
    src = tmp_path / "many.s"
    with open(src, "w") as f:
        f.write(".text\n.globl f\n.type f,@function\nf:\n call __SCT__foo\n ret\n.size f,.-f\n")
        for i in range(n):
            f.write(f".section .d{i},\"a\"\n.byte {i & 0xff}\n")
        f.write(".data\n.globl __SCK__foo\n__SCK__foo: .quad 0\n")
    obj = assemble(src, tmp_path / "many.o")
    assert EHDR.unpack_from(obj.read_bytes())[12] == 0       # already extended
    res = run_cli("write", "--policy", "kernel", obj)
    assert res.rc == 0, res.stderr
    data = obj.read_bytes()
    secs = headers(data)
    assert EHDR.unpack_from(data)[12] == 0 and secs[0][5] == len(secs)
    names = subprocess.run(["readelf", "-S", "-W", str(obj)], capture_output=True, text=True)
    assert ".rela.static_call_sites" in names.stdout and not names.stderr
    report = run_cli("scan", "--format", "json", obj).json()
    assert report["objects"][0]["existing_table"] == {"entries": 1}
