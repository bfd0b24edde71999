"""Source lines from DWARF .debug_line: every site's {file, line} must be what
`addr2line -e OBJ -j SECTION OFFSET` prints, in relocatable objects with and
without -ffunction-sections, at several optimisation levels, DWARF 4 and 5,
compressed debug sections; null without debug info; never an exception on
malformed DWARF."""
from __future__ import annotations

import re
import struct
import subprocess
import sys

import pytest

from scall_testlib import PREBUILT, SRC

from scall_objtool import Options, scan_path
from scall_objtool.core.elf import SHF_EXECINSTR, ElfFile
from scall_objtool.lines import lookup, site_key


def addr2line(obj, section: str, offsets) -> list[dict | None]:
    """addr2line's answer for each offset, as {file, line} (None for ??:0)."""
    out = subprocess.run(["addr2line", "-e", str(obj), "-j", section,
                          *[hex(o) for o in offsets]],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == len(offsets)
    got = []
    for line in out:
        line = re.sub(r" \(discriminator \d+\)$", "", line)
        f, _, n = line.rpartition(":")
        got.append(None if f == "??" or not n.isdigit() or n == "0"
                   else {"file": f, "line": int(n)})
    return got


def _innermost(frames) -> dict | None:
    """What plain addr2line (no -i) prints: the innermost frame's row."""
    if not frames or frames[0].file is None or frames[0].line is None:
        return None
    return {"file": frames[0].file, "line": frames[0].line}


def static_call_lines(src: str) -> list[int]:
    text = (SRC / src).read_text().splitlines()
    return [i for i, t in enumerate(text, 1) if "static_call(lint_hook)(" in t]


def assert_sources_match_addr2line(obj, options=Options()):
    res = scan_path(str(obj), options)
    assert res.sites and not res.warnings
    for s in res.sites:
        assert s.source is not None, (s.section, s.offset)
        assert [s.source] == addr2line(obj, s.section, [s.offset]), (s.section, hex(s.offset))
    return res


@pytest.mark.parametrize("flags", [
    ("-O2", "-g"),
    ("-O2", "-g", "-ffunction-sections"),
    ("-O1", "-g"),
    ("-Os", "-g", "-ffunction-sections"),
    ("-O2", "-gdwarf-4"),
    ("-O2", "-g", "-gz"),
])
def test_site_lines_equal_addr2line(build, flags):
    obj = build("lint.c", *flags)
    res = assert_sources_match_addr2line(obj)
    # and they are the lines of the source that hold the static calls
    assert sorted(s.source["line"] for s in res.sites) == static_call_lines("lint.c")[:4]
    assert {s.source["file"] for s in res.sites} == {str(SRC / "lint.c")}
    if "-ffunction-sections" in flags:
        # each function's sequence lives in its own section, all starting at 0
        assert len({s.section for s in res.sites}) == 3


def test_moved_sites_have_moved_lines(build):
    res = assert_sources_match_addr2line(build("lint_moved.c", "-O2", "-g"))
    assert sorted(s.source["line"] for s in res.sites) == static_call_lines("lint_moved.c")[:4]


def test_staticcall_and_prebuilt_lines(build):
    assert_sources_match_addr2line(build("staticcall.c", "-O2", "-g", "-ffunction-sections"))
    assert_sources_match_addr2line(build("staticcall.c", "-Os", "-g"))
    assert_sources_match_addr2line(PREBUILT / "demo.o", Options(policy="kernel"))


def test_gas_debug_lines(build):
    """`as -g`: the lines are the assembly source's."""
    res = assert_sources_match_addr2line(build("kinds.S", "-g"))
    assert {s.source["file"].rsplit("/", 1)[-1] for s in res.sites} == {"kinds.S"}


@pytest.mark.parametrize("flags", [("-O2", "-g", "-ffunction-sections"), ("-O3", "-g")])
def test_every_offset_equals_addr2line(build, flags):
    """The lookup itself, at every byte of every code section (not only sites):
    sequences per section, rows sharing an address, the end of a sequence."""
    obj = build("staticcall.c", *flags)
    elf = ElfFile(obj.read_bytes(), str(obj))
    checked = 0
    for sec in elf.sections:
        if not sec.flags & SHF_EXECINSTR or not sec.size:
            continue
        offsets = list(range(sec.size))
        want = addr2line(obj, sec.name, offsets)
        frames = lookup(elf, [site_key(sec.index, o, None) for o in offsets])
        got = [_innermost(frames.get(site_key(sec.index, o, None))) for o in offsets]
        bad = [(hex(o), w, g) for o, w, g in zip(offsets, want, got) if w != g]
        assert not bad, (sec.name, bad[:5])
        checked += len(offsets)
    assert checked > 200


def test_no_debug_info_means_null_source(build):
    res = scan_path(str(build("lint.c", "-O2")))
    assert res.sites and all(s.source is None for s in res.sites)
    assert not res.warnings


def test_dwarf_reader_only_with_debug_info(build):
    """The DWARF reader is imported only for an object with debug info, and
    pyelftools never (our own reader has bounded cost)."""
    code = ("import sys; from scall_objtool.core.pipeline import scan_path; "
            "r = scan_path(sys.argv[1]); "
            "print(len(r.sites), 'scall_objtool.lines.dwarf' in sys.modules, "
            "'elftools' in sys.modules)")
    for flags, want in ((("-O2",), "False"), (("-O2", "-g"), "True")):
        obj = build("lint.c", *flags)
        out = subprocess.run([sys.executable, "-c", code, str(obj)], capture_output=True,
                             text=True, check=True).stdout.split()
        assert out == ["4", want, "False"], flags


def _corrupt(obj, section: str, edit):
    data = bytearray(obj.read_bytes())
    elf = ElfFile(bytes(data), str(obj))
    sec = elf.section_by_name(section)
    edit(data, sec)
    obj.write_bytes(bytes(data))
    return obj


@pytest.mark.parametrize("what", ["version", "length", "reloc-symbol", "reloc-offset",
                                  "stmt-list", "garbage"])
def test_malformed_dwarf_never_raises(build, what):
    obj = build("lint.c", "-O2", "-g")
    if what == "version":           # unit_length (4) then version (2)
        _corrupt(obj, ".debug_line", lambda d, s: struct.pack_into("<H", d, s.offset + 4, 77))
    elif what == "length":
        _corrupt(obj, ".debug_line",
                 lambda d, s: struct.pack_into("<I", d, s.offset, 0xFFFFFF00))
    elif what == "reloc-symbol":    # r_info of the first relocation: symbol 0xFFFFFF
        _corrupt(obj, ".rela.debug_line",
                 lambda d, s: struct.pack_into("<I", d, s.offset + 12, 0xFFFFFF))
    elif what == "reloc-offset":    # r_offset past the end of .debug_line
        _corrupt(obj, ".rela.debug_line",
                 lambda d, s: struct.pack_into("<Q", d, s.offset, 1 << 40))
    elif what == "stmt-list":       # DW_AT_stmt_list's relocation addend
        def edit(d, s):
            for i in range(s.size // 24):
                off, info, add = struct.unpack_from("<QQq", d, s.offset + 24 * i)
                struct.pack_into("<q", d, s.offset + 24 * i + 16, add + 0x7FFF0000)
        _corrupt(obj, ".rela.debug_info", edit)
    else:
        _corrupt(obj, ".debug_line",
                 lambda d, s: d.__setitem__(slice(s.offset + 40, s.offset + s.size),
                                            b"\xff" * (s.size - 40)))
    res = scan_path(str(obj))
    assert len(res.sites) == 4          # the scan itself is unaffected
    assert all(s.source is None for s in res.sites)
    assert len(res.warnings) == 1 and "DWARF line table" in res.warnings[0], res.warnings


@pytest.mark.parametrize("link", [(), ("-no-pie",)])
def test_linked_image_lines_by_address(tmp_path, link):
    """A linked executable's DWARF is relocated by the linker: sites are looked
    up by their final address, and agree with addr2line by address and by
    section+offset; so does every byte of .text."""
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-O2", "-g", *link, "-o", str(exe), str(SRC / "linkprog.c"),
                    str(SRC / "linktramp.S"), f"-Wl,-T,{SRC / 'static_call_sites.ld'}"],
                   check=True, capture_output=True)
    res = scan_path(str(exe))
    assert res.elf_type in ("EXEC", "DYN") and len(res.sites) >= 8 and not res.warnings
    for s in res.sites:
        assert s.source is not None and s.address is not None
        assert [s.source] == addr2line(exe, s.section, [s.offset]), hex(s.address)
        assert s.source["file"].endswith(("linkprog.c", "linktramp.S"))
    elf = ElfFile(exe.read_bytes(), str(exe))
    text = elf.section_by_name(".text")
    offsets = list(range(text.size))
    want = addr2line(exe, ".text", offsets)
    frames = lookup(elf, [text.addr + o for o in offsets])
    got = [_innermost(frames.get(text.addr + o)) for o in offsets]
    assert [(hex(o), w, g) for o, w, g in zip(offsets, want, got) if w != g] == []


def test_relocation_symbol_bound_is_exact(build):
    """The debug relocations' symbol check (read on byte columns, without an
    int per entry) says what max() of the symbol column says, at every bound
    around the largest index, for RELA entries whose indexes need two bytes."""
    obj = build("lint.c", "-O2", "-g")
    elf = ElfFile(obj.read_bytes(), str(obj))
    rsec = elf.section_by_name(".rela.debug_info")
    data = bytearray(elf.data)
    for i in range(rsec.size // 24):            # spread the indexes over two bytes
        struct.pack_into("<I", data, rsec.offset + 24 * i + 12, (i * 37) % 700)
    cols = ElfFile(bytes(data), str(obj)).relocations(rsec)
    top = max(cols.sym)
    assert top >= 256
    for bound in [*range(top - 300, top + 300), 1 << 16, 1 << 20]:
        assert cols.symbols_below(bound) == (top < bound), bound
    assert list(cols.offsets()) == cols.offset


def _programs(obj):
    """Every line program of an object with the sorted keys of all its code
    bytes: (program, keys, relocatable)."""
    from scall_objtool.lines import _Lookup
    elf = ElfFile(obj.read_bytes(), str(obj))
    keys = sorted(site_key(s.index, off, None) for s in elf.sections
                  if s.flags & SHF_EXECINSTR for off in range(0, s.size, 3))
    look = _Lookup(elf, keys)
    out = []
    for u in look.reader.units():
        prog = look.program(look.reader.unit_at(u.offset))
        if prog is not None:
            out.append((prog, keys, look.debug.relocatable))
    return out


@pytest.mark.parametrize("flags", [("-O2", "-g"), ("-O2", "-gdwarf-4", "-ffunction-sections")],
                         ids=" ".join)
def test_a_line_program_cut_short_gives_its_rows_or_a_dwarf_error(build, flags):
    """A line program's opcodes come from an iterator over its bytes: cut
    anywhere, a program gives the rows it holds up to the cut (those of the
    whole program) or DwarfError (an extended opcode past its end), never
    another exception; an operand past the end ends it."""
    from scall_objtool.lines.dwarf import DwarfError
    programs = _programs(build("inline_sites.c", *flags))
    assert programs
    errors = 0
    for prog, keys, rel in programs:
        whole = {}
        prog.match(keys, whole, rel, len(keys))
        assert len(whole) > len(keys) // 2
        body, end = prog.program, prog.end
        for cut in range(body, end):
            prog.end = cut
            found = {}
            try:
                prog.match(keys, found, rel, len(keys))
            except DwarfError as e:
                assert "past the end of the line program" in str(e)
                errors += 1
            assert found.items() <= whole.items(), cut
        prog.end = end
    assert errors
