"""Source lines cost time and memory near-linear in the input (issue 10 item 15).

Compile units sharing one line program (testdata/gen/dwarf_shared_lines.py)
made memory grow with units x rows (106 KB took 1.7 GB).  Each input is
generated at 1x and 4x; the ratio of Python lines executed (a count of work
that a busy machine does not change) and of the tracemalloc peaks must stay
near 4 (a quadratic cost gives 16); a ~1 MB crafted input runs a bounded
number of lines per byte.  No times are measured."""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from scall_objtool import Options, scan_path
from scall_objtool.core.elf import ElfFile
from scall_objtool.core.pipeline import scan_elf
from scall_objtool.lines import attach_sources
from scall_testlib import inlined_wrapper_object, python_lines, traced_peak

GEN = Path(__file__).resolve().parent.parent / "testdata" / "gen"


def _generator(name: str):
    spec = importlib.util.spec_from_file_location(name, GEN / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.generate


def _assemble(tmp_path: Path, text: str, name: str) -> Path:
    src, obj = tmp_path / f"{name}.s", tmp_path / f"{name}.o"
    src.write_text(text)
    subprocess.run(["as", "-o", str(obj), str(src)], check=True, capture_output=True)
    return obj


def _cost(obj: Path, line: int) -> tuple[int, int]:
    """(Python lines executed, tracemalloc peak) of the source lookup of a
    scanned object (the scan itself is not what is measured here)."""
    elf = ElfFile(obj.read_bytes(), str(obj))
    attach_sources(elf, scan_elf(elf, Options(), sources=False))    # warm imports
    res = scan_elf(elf, Options(), sources=False)
    _, lines = python_lines(attach_sources, elf, res)
    assert res.sites and res.sites[0].source == {"file": "a.c", "line": line}, res.sites
    assert not res.warnings
    res = scan_elf(elf, Options(), sources=False)
    _, peak = traced_peak(attach_sources, elf, res)
    return lines, peak


@pytest.mark.parametrize("shape", ["units", "both"])
def test_shared_line_program_cost_is_linear(tmp_path, shape):
    """The static call's row is the program's last: the whole program is
    decoded, once however many units share it."""
    gen = _generator("dwarf_shared_lines")
    n, m = 300, 50000                         # the 106 KB input
    n4, m4 = {"units": (4 * n, m), "both": (4 * n, 4 * m)}[shape]
    small = _assemble(tmp_path, gen(n, m, call_last=True), "small")
    big = _assemble(tmp_path, gen(n4, m4, call_last=True), "big")
    w1, mem1 = _cost(small, m + 2)
    w4, mem4 = _cost(big, m4 + 2)
    # near-linear in the factor 4 (quadratic would be 16)
    assert w4 / w1 < 5, (shape, w1, w4)
    assert mem4 / mem1 < 8, (shape, mem1, mem4)
    # and memory stays within a small multiple of the input itself
    assert mem4 < 2 * big.stat().st_size + (1 << 20), (mem4, big.stat().st_size)


def test_one_megabyte_of_shared_line_programs_takes_seconds(tmp_path):
    gen = _generator("dwarf_shared_lines")
    obj = _assemble(tmp_path, gen(12000, 380000, call_last=True), "mb")
    assert obj.stat().st_size > 900_000
    res, lines = python_lines(scan_path, str(obj), Options())
    assert lines < 20 * obj.stat().st_size, lines      # a quadratic path runs thousands a byte
    assert res.sites[0].source == {"file": "a.c", "line": 380002} and not res.warnings


def _relocated_debug_info(tmp_path: Path, n: int, reverse: bool = False) -> Path:
    """An object whose .debug_info is ``n`` 4-byte fields, each relocated
    against .debug_str (``reverse``: the relocations listed last field first)."""
    if reverse:
        body = f"\t.rept {n}\n\t.long 0\n\t.endr\n" + "".join(
            f"\t.reloc {4 * i}, R_X86_64_32, .Ls+{i}\n" for i in range(n - 1, -1, -1))
    else:
        body = f"\t.rept {n}\n\t.long .Ls\n\t.endr\n"
    text = ('\t.section .debug_str,"MS",@progbits,1\n.Ls:\t.string "abcdefghijklmnop"\n'
            '\t.section .debug_info,"",@progbits\n' + body)
    return _assemble(tmp_path, text, f"rel{n}{'r' if reverse else ''}")


def test_a_relocation_table_is_searched_in_place(tmp_path):
    """Loading a debug section with 400,000 relocations (9.6 MB of entries)
    holds the section's own bytes, a byte column of the symbol check and a
    bounded chunk of the table's offsets at a time (4.9 MB): never the table
    copied, nor an int per entry (30 MB before)."""
    from scall_objtool.lines.dwarf import Debug
    n = 400_000
    obj = _relocated_debug_info(tmp_path, n)
    elf = ElfFile(obj.read_bytes(), str(obj))
    table = elf.section_by_name(".rela.debug_info").size
    assert table == 24 * n
    sec, peak = traced_peak(lambda: Debug(elf)[".debug_info"])
    assert peak < 0.6 * table, (peak, table)
    assert sec.u(4 * (n - 1), 4) == 0 and sec.u(0, 4) == 0      # .Ls is .debug_str+0
    assert sec._relocs.order is None


def test_a_relocation_table_out_of_order_is_still_searched(tmp_path):
    from scall_objtool.lines.dwarf import Debug
    from scall_objtool.lines.dwarf import sections
    n = 3 * sections._CHUNK + 5                 # over several chunks of the order check
    obj = _relocated_debug_info(tmp_path, n, reverse=True)
    elf = ElfFile(obj.read_bytes(), str(obj))
    offs = elf.relocations(elf.section_by_name(".rela.debug_info")).offset
    assert offs != sorted(offs)
    sec = Debug(elf)[".debug_info"]
    assert sec._relocs.order is not None
    for i in (0, 1, sections._CHUNK, n // 2, n - 1):
        assert sec.u(4 * i, 4) == i, i


def test_the_dwarf_structures_are_freed_with_the_lookup(tmp_path):
    """The sections a lookup loaded refer to their reader and back: without
    being let go explicitly, each object's copies waited for the cyclic
    collector (40 MB held on a kernel build tree).  With the collector off,
    nothing of a lookup survives it."""
    import gc

    from scall_objtool.lines import lookup, site_key
    from scall_objtool.lines.dwarf import Reader, Section
    gen = _generator("dwarf_shared_lines")
    obj = _assemble(tmp_path, gen(30, 500, call_last=True), "freed")
    elf = ElfFile(obj.read_bytes(), str(obj))
    res = scan_elf(elf, Options(), sources=False)
    keys = [site_key(s.section_index, s.offset, s.address) for s in res.sites]
    gc.collect()
    gc.disable()
    try:
        frames = lookup(elf, keys)
        alive = [o for o in gc.get_objects() if type(o) in (Section, Reader)]
    finally:
        gc.enable()
    assert frames and not alive, alive


def _many_functions(tmp_path, dwarf: str) -> Path:
    """A unit of 300 functions (long names: DW_FORM_strp, a fixed size), one
    site in the middle (line 454, whichever order the DIEs come in)."""
    src = tmp_path / "many.c"
    root = Path(__file__).resolve().parent.parent
    name = "function_number_"
    protos = "".join(f"int {name}{i}(int x);\n" for i in range(301))
    body = "".join(f"int {name}{i}(int x) {{ {'static_call(hook)(x); ' if i == 150 else ''}"
                   f"return x * {i + 3} + {name}{i + 1}(x - 1); }}\n" for i in range(300))
    src.write_text(f'#include "{root}/testdata/src/static_call.h"\n' + protos
                   + f"DECLARE_STATIC_CALL(hook, {name}0);\n" + body
                   + f"int {name}300(int x) {{ return x; }}\n")
    obj = tmp_path / f"many{dwarf}.o"
    subprocess.run(["gcc", "-O1", "-fno-inline", dwarf, "-c", str(src), "-o", str(obj)],
                   check=True, capture_output=True)
    return obj


def test_functions_without_a_site_are_passed_undecoded(tmp_path, monkeypatch):
    """A DWARF 4+ function whose low_pc and constant high_pc sit at fixed
    offsets is checked against the sites where its range is, and passed
    (by its DW_AT_sibling) without decoding its attributes: in a unit of 300
    functions and one site amid them, the DIEs decoded are the site's
    function and the unit's own (before: the 150 functions walked first).
    Issue 24, fourth round: passed by the skip loop itself (``next_die``
    given the sites), not handed back to the walk and the loop entered again
    for the next one: the walk asks the loop a handful of times (before:
    once a function, 154)."""
    from scall_objtool.lines.dwarf import Reader
    decoded, calls = [], []
    attrs, next_die = Reader._attrs, Reader.next_die

    def counted_attrs(self, u, ab, p, out):
        if out is not None:
            decoded.append(ab.tag)
        return attrs(self, u, ab, p, out)

    def counted_next(self, u, p, stop=True, *rest, **kw):
        calls.append(stop)
        return next_die(self, u, p, stop, *rest, **kw)
    monkeypatch.setattr(Reader, "_attrs", counted_attrs)
    monkeypatch.setattr(Reader, "next_die", counted_next)
    for dwarf in ("-gdwarf-4", "-gdwarf-5"):
        obj = _many_functions(tmp_path, dwarf)
        elf = ElfFile(obj.read_bytes(), str(obj))
        res = scan_elf(elf, Options(), sources=False)
        assert len(res.sites) == 1
        decoded.clear()
        calls.clear()
        attach_sources(elf, res)
        assert res.sites[0].source["line"] == 454 and not res.warnings, res.sites[0].source
        assert decoded.count(0x2e) <= 2 and len(decoded) < 10, (dwarf, len(decoded))
        assert calls.count(True) < 20, (dwarf, len(calls))


def test_the_skip_loop_steps_over_fixed_size_dies_by_their_first_byte():
    """A DIE of a one-byte code that is childless with attributes of fixed
    sizes, or has its children's end in a DW_AT_sibling (ref4), is passed by
    its step alone (the abbreviation is never looked up); the unit's end is
    checked on the other DIEs, so that a step past it ends in the same
    DwarfError as a DIE-by-DIE walk."""
    from scall_objtool.lines.dwarf.units import Abbrevs, DwarfError, Reader, Unit
    # 1: base type (childless: data1, data1); 2: structure (children, sibling
    # ref4, data1); 3: member (childless, data1)
    abbrev = bytes([1, 0x24, 0, 0x0b, 0x0b, 0x3e, 0x0b, 0, 0,
                    2, 0x13, 1, 0x01, 0x13, 0x0b, 0x0b, 0, 0,
                    3, 0x0d, 0, 0x38, 0x0b, 0, 0,
                    0])
    body = bytes([1, 4, 5,            # base type
                  2, 0, 0, 0, 0, 8,   # structure, its sibling set below
                  3, 0, 3, 4, 0,      # two members, the end of its children
                  1, 8, 7,            # base type (the structure's sibling)
                  0])                 # the end of the unit's children
    body = body[:4] + (3 + 14).to_bytes(4, "little") + body[8:]

    class Info:
        def __init__(self, data):
            self.data, self.size = data, len(data)
    table = Abbrevs(abbrev, 0, 4, 8, 5)
    table.get(1)
    assert (table.steps[1], table.steps[2], table.steps[3]) == (3, -1, 2)
    looked_up = []

    class Fast(dict):
        def __getitem__(self, code):
            looked_up.append(code)
            return dict.__getitem__(self, code)
    table.fast = Fast(table.fast)
    reader = Reader.__new__(Reader)
    reader.info = Info(b"\0\0\0" + body)
    assert reader.next_die(Unit(None, 0, 3 + len(body), 5, 4, 8, table, 3), 3) == \
        (None, 3 + len(body))
    assert looked_up == []            # (before: each of the 4 DIEs stepped over)
    # the unit cut before the last base type, or the data before the end of
    # the unit's children: the error of a walk DIE by DIE
    with pytest.raises(DwarfError, match="DIEs run past the unit at 0x0"):
        reader.next_die(Unit(None, 0, 3 + 12, 5, 4, 8, table, 3), 3)
    reader.info = Info(b"\0\0\0" + body[:-1])
    with pytest.raises(DwarfError, match="DIEs run past the unit at 0x0"):
        reader.next_die(Unit(None, 0, 3 + len(body) - 1, 5, 4, 8, table, 3), 3)
    # the data cut inside the structure's DW_AT_sibling: read as before, not
    # an error of the fast path's reader
    reader.info = Info(b"\0\0\0" + body[:6])
    with pytest.raises(DwarfError, match="DIEs run past the unit at 0x0"):
        reader.next_die(Unit(None, 0, 3 + 6, 5, 4, 8, table, 3), 3)


def test_an_objects_one_abbreviation_table_is_split_in_one_pass(tmp_path, monkeypatch):
    """Issue 24, fourth round: a .debug_abbrev that holds one table (an
    object's) is split by one regular-expression pass (its entries tiling it
    up to its last byte 0), not matched whole first to find its end; a
    section of two tables still is.  The entries and the skip loop's steps are
    those of the parse byte by byte."""
    from scall_objtool.lines.dwarf import units
    obj = _many_functions(tmp_path, "-gdwarf-5")
    elf = ElfFile(obj.read_bytes(), str(obj))
    sec = elf.section_by_name(".debug_abbrev")
    data = elf.data[sec.offset:sec.offset + sec.size]
    matched = []

    class Counted:
        def match(self, *args):
            matched.append(args[1:])
            return table_re.match(*args)
    table_re = units._TABLE
    monkeypatch.setattr(units, "_TABLE", Counted())

    def parsed(data: bytes, off: int, whole: bool) -> units.Abbrevs:
        t = units.Abbrevs(data, off, 4, 8, 5)
        t._tried = not whole                    # byte by byte: never split whole
        with pytest.raises(units.DwarfError):
            t.get(1 << 20)                      # every entry read
        return t
    slow = parsed(data, 0, False)
    fast = parsed(data, 0, True)
    assert matched == [] and len(fast.table) > 10
    assert {c: (a.tag, a.attrs) for c, a in fast.table.items()} == \
        {c: (a.tag, a.attrs) for c, a in slow.table.items()}
    assert fast.steps == slow.steps and any(s > 0 for s in fast.steps)
    two = data + data                           # (the second table at len(data))
    both = parsed(two, 0, True), parsed(two, len(data), True)
    assert matched == [(0,), (len(data),)]
    assert all(t.steps == slow.steps for t in both)


def test_a_relocated_value_reads_its_entry_by_one_unpack(tmp_path, monkeypatch):
    """Issue 24, fourth round: a value read through a relocation takes the
    entry's (info, addend) by one unpack from the file's bytes, with no call
    into the relocation columns per value (before: ``info_entry`` each); in
    and out of order, the values are the entries' own."""
    from scall_objtool.core.elf import RelocColumns
    from scall_objtool.lines.dwarf import Debug
    calls = []
    info_entry = RelocColumns.info_entry
    monkeypatch.setattr(RelocColumns, "info_entry",
                        lambda self, i: calls.append(i) or info_entry(self, i))
    for reverse in (False, True):
        obj = _relocated_debug_info(tmp_path, 1000, reverse=reverse)
        elf = ElfFile(obj.read_bytes(), str(obj))
        sec = Debug(elf)[".debug_info"]
        want = list(range(1000)) if reverse else [0] * 1000     # .Ls+i, or .Ls
        assert [sec.u(4 * i, 4) for i in range(1000)] == want
        assert calls == []


def test_an_inlined_functions_name_is_read_once(tmp_path, monkeypatch):
    """Issue 24, fourth round: the name of an inlined function is read from
    its abstract instance once per lookup, however many of its instances hold
    sites (a kernel wrapper such as cond_resched() is inlined into most
    functions of a unit): 30 sites through one wrapper decode its DIE once."""
    from scall_objtool.lines.dwarf import Reader
    obj = inlined_wrapper_object(tmp_path, "wrapped", 30)
    elf = ElfFile(obj.read_bytes(), str(obj))
    res = scan_elf(elf, Options(), sources=False)
    assert len(res.sites) == 30
    read = []
    die = Reader.die
    monkeypatch.setattr(Reader, "die", lambda self, u, off: read.append(off) or die(self, u, off))
    attach_sources(elf, res)
    assert all(s.inlined and s.inlined[0]["function"] == "wrapper" for s in res.sites), \
        res.sites[0].inlined
    assert [s.source["line"] for s in res.sites] == list(range(6, 36))
    assert len(read) < 5, read          # the unit DIE twice, the wrapper once (before: 32)


def test_the_abbreviation_split_is_the_parse_byte_by_byte():
    """The one-pass split (attributes taken possessively, the usual one first)
    gives the entries of the parse byte by byte on the encodings that make a
    regular expression go wrong: implicit constants of 0, of several bytes
    and negative, an entry without attributes, names and forms of two and
    three bytes, a form 0x21 that is not the first attribute."""
    from scall_objtool.lines.dwarf import units
    table = bytes([
        1, 0x2e, 1, 0x03, 0x0e, 0x3a, 0x21, 0x00, 0x3b, 0x21, 0x80, 0x01, 0x49, 0x13, 0, 0,
        2, 0x18, 0, 0, 0,                                   # no attributes
        3, 0x05, 0, 0x80, 0x40, 0x0b, 0x02, 0x81, 0x01, 0x3a, 0x21, 0x7f, 0, 0,
        0x81, 0x01, 0x34, 0, 0x03, 0x08, 0x21, 0x21, 0xc0, 0x00, 0, 0,   # code 129
        5, 0x80, 0x82, 0x01, 1, 0x01, 0x13, 0, 0,           # tag of three bytes
        0])
    slow = units.Abbrevs(table, 0, 4, 8, 5)
    slow._tried = True
    with pytest.raises(units.DwarfError):
        slow.get(1 << 20)
    fast = units.Abbrevs(table, 0, 4, 8, 5)
    fast.get(1)
    assert fast.done and sorted(fast.table) == [1, 2, 3, 5, 129]
    assert {c: (a.tag, a.children, a.attrs) for c, a in fast.table.items()} == \
        {c: (a.tag, a.children, a.attrs) for c, a in slow.table.items()}
    assert fast.steps == slow.steps


def test_a_relocation_search_probes_few_entries_of_the_view(tmp_path):
    """Issue 24, fourth round: a value's relocation is found by bisecting one
    offset in SPARSE kept as ints, then at most SPARSE entries of the table's
    view (each probe of the view makes an int): 6 probes of the view a value
    on a table of 4,000 entries, not the 12 of a whole bisection; an offset
    relocated twice (across the boundary of a kept offset) takes its first
    entry, as before."""
    from scall_objtool.lines.dwarf import Debug, sections
    n = 4000
    dup = sections.SPARSE * 3           # relocated twice: its entries on both sides
    body = f"\t.rept {n}\n\t.long 0\n\t.endr\n" + "".join(
        f"\t.reloc {4 * i}, R_X86_64_32, .Ls+{i}\n" for i in range(dup)) + \
        f"\t.reloc {4 * (dup - 1)}, R_X86_64_32, .Ls+7\n" + "".join(
        f"\t.reloc {4 * i}, R_X86_64_32, .Ls+{i}\n" for i in range(dup, n))
    obj = _assemble(tmp_path, '\t.section .debug_str,"MS",@progbits,1\n.Ls:\t.string "a"\n'
                    '\t.section .debug_info,"",@progbits\n' + body, "dup")
    elf = ElfFile(obj.read_bytes(), str(obj))
    sec = Debug(elf)[".debug_info"]
    rel = sec._relocs
    assert rel.order is None and rel.n == n + 1
    offs = elf.relocations(elf.section_by_name(".rela.debug_info")).offset
    first = offs.index(4 * (dup - 1))
    probes = []

    class Counted:
        def __init__(self, view):
            self.view = view

        def __len__(self):
            return len(self.view)

        def __getitem__(self, i):
            probes.append(i)
            return self.view[i]
    rel.offsets = Counted(rel.offsets)
    values = [sec.u(4 * i, 4) for i in range(n)]
    want = list(range(n))
    want[dup - 1] = elf.relocations(elf.section_by_name(".rela.debug_info")).addend[first]
    assert values == want
    assert len(probes) <= 7 * n, len(probes) / n         # (before: 12 a value)


def _entry(code: bytes, tag: int) -> bytes:
    """An abbreviation entry: childless, one DW_AT_byte_size (data1)."""
    return code + bytes([tag, 0, 0x0b, 0x0b, 0, 0])


def _leb(v: int) -> bytes:
    return bytes([v]) if v < 0x80 else bytes([(v & 0x7F) | 0x80, v >> 7])


def test_a_table_of_codes_1_to_n_is_split_without_decoding_each_code(monkeypatch):
    """Issue 24, fifth round: a table whose codes are 1..n in order (as gcc
    numbers them; the 6.12 vmlinux's units have hundreds, most of two bytes)
    is recognised by one comparison of its codes' bytes, no LEB128 decoded
    per code (before: a ``uleb`` call for each code); codes out of order
    are still decoded one by one.  Both give the parse byte by
    byte's entries and steps."""
    from scall_objtool.lines.dwarf import units
    calls = []
    uleb = units.uleb
    monkeypatch.setattr(units, "uleb", lambda d, p: calls.append(p) or uleb(d, p))
    for codes in (list(range(1, 301)), [*range(1, 200), 201, 200, *range(202, 301)]):
        table = b"".join(_entry(_leb(c), (0x24, 0x0f)[c % 2]) for c in codes) + b"\0"
        slow = units.Abbrevs(table, 0, 4, 8, 5)
        slow._tried = True
        with pytest.raises(units.DwarfError):
            slow.get(1 << 20)
        units._SHARED.clear()
        units.Abbrevs(table, 0, 4, 8, 5)._whole()         # its entries' bodies seen
        fast = units.Abbrevs(table, 0, 4, 8, 5)
        calls.clear()
        fast._whole()
        assert fast.done and sorted(fast.table) == list(range(1, 301))
        assert {c: (a.tag, a.attrs) for c, a in fast.table.items()} == \
            {c: (a.tag, a.attrs) for c, a in slow.table.items()}
        assert fast.steps == slow.steps and fast.steps[127] == 2
        in_order = codes == sorted(codes)
        # the codes (173 of two bytes): decoded one by one only out of order
        assert len(calls) == (0 if in_order else 300), len(calls)


def test_the_skip_loop_reads_a_code_of_two_bytes_itself(monkeypatch):
    """Issue 24, fifth round: a DIE whose code takes two bytes (code 129: no
    step by its first byte) is read by the skip loop itself, not by a
    ``uleb`` call each (before: one a DIE); a code of three bytes still is,
    and a unit cut inside a code ends in the same DwarfError."""
    from scall_objtool.lines.dwarf import units
    from scall_objtool.lines.dwarf.units import Abbrevs, DwarfError, Reader, Unit
    table = b"".join(_entry(_leb(c), 0x24) for c in range(1, 130)) + \
        bytes([0x80, 0x80, 0x01, 0x24, 0, 0x0b, 0x0b, 0, 0]) + b"\0"     # code 16384
    body = bytes([0x81, 0x01, 4] * 3 + [5, 8] + [0x80, 0x80, 0x01, 9] + [0])

    class Info:
        def __init__(self, data):
            self.data, self.size = data, len(data)
    calls = []
    uleb = units.uleb
    monkeypatch.setattr(units, "uleb", lambda d, p: calls.append(p) or uleb(d, p))
    abbrevs = Abbrevs(table, 0, 4, 8, 5)
    abbrevs.get(1)
    reader = Reader.__new__(Reader)
    reader.info = Info(b"\0\0\0" + body)
    calls.clear()
    assert reader.next_die(Unit(None, 0, 3 + len(body), 5, 4, 8, abbrevs, 3), 3) == \
        (None, 3 + len(body))
    assert calls == [3 + 11]            # the code of three bytes alone (before: 4 calls)
    with pytest.raises(DwarfError, match="DIEs run past the unit at 0x0"):
        reader.next_die(Unit(None, 0, 3 + 1, 5, 4, 8, abbrevs, 3), 3)
