"""Bounded cost: every command is near-linear in the size of its input.

Each input below is one that once cost minutes for a few hundred KB (issue
10, items 12-14 and 17).  Every test builds it at two sizes, 1x and 4x, runs
the command in process and counts the Python lines it executes
(``scall_testlib.python_lines``: a count of work, which a busy machine does
not change, where a time would) and asserts that the 4x input costs at most
5x the lines: a quadratic path costs 16x.  A crafted ~1 MB input of each kind
must cost a bounded number of lines per input byte (about 5 today; a
quadratic path costs thousands).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scall_objtool import Options
from scall_objtool.core.elf import ElfFile
from scall_objtool.core.pipeline import scan_elf
from scall_testlib import python_lines

# ---------------------------------------------------------------- generators
# The logic of the reproduction generators that accompanied the issue.


def many_functions(n: int) -> str:
    """n small global functions, each calling the static call once, and no
    section symbol (what gas emits under -fno-asynchronous-unwind-tables)."""
    out = [".text", ".globl __SCT__x", ".globl __SCK__x"]
    for i in range(n):
        out += [".p2align 4", f".globl fn{i}", f".type fn{i},@function", f"fn{i}:",
                "call __SCT__x", "ret", f".size fn{i},.-fn{i}"]
    return "\n".join(out) + "\n"


def many_labels(k: int, m: int) -> str:
    """k zero-size local function symbols, then one function with m calls."""
    out = [".text", ".globl __SCT__x"]
    for i in range(k):
        out += [f".type l{i},@function", f"l{i}:", f".size l{i},0"]
    out += [".globl f", ".type f,@function", "f:", f".rept {m}", "call __SCT__x",
            "nop;nop;nop", ".endr", "ret", ".size f,.-f"]
    return "\n".join(out) + "\n"


def huge_function(k: int, m: int) -> str:
    """k zero-size functions at 0 and one function sized 2^63-1 holding m calls."""
    out = [".text", ".globl big", ".type big,@function", "big:"]
    for i in range(k):
        out += [f".type z{i},@function", f"z{i}:", f".size z{i},0"]
    out += [f".rept {m}", "call __SCT__x", ".endr", ".size big,0x7fffffffffffffff",
            ".globl __SCT__x"]
    return "\n".join(out) + "\n"


def verify_nonsites(n: int, s: int) -> str:
    """A table of n entries pointing into a function of s nops: none is a site."""
    out = [".text", ".globl f", ".type f,@function", "f:", f".rept {s}", "nop", ".endr",
           ".size f,.-f", ".globl __SCT__x", ".globl __SCK__x",
           '.section .static_call_sites,"aw"']
    step = max(1, s // n)
    for i in range(n):
        out += [f".long f + {(i * step) % s} - .", ".long __SCK__x - ."]
    return "\n".join(out) + "\n"


def many_key_names(n: int) -> str:
    """n symbols whose names end in __SCK__x, and a call whose key is missing:
    the key's name is appended to a string table full of near-matches."""
    out = [".text", ".globl f", ".type f,@function", "f:", "call __SCT__x", "ret",
           ".size f,.-f", ".globl __SCT__x"]
    for i in range(n):
        out.append(f".globl s{i}__SCK__x\n.set s{i}__SCK__x, {i}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ commands
KERNEL = Options(policy="kernel")


def do_scan(data: bytes) -> int:
    return len(scan_elf(ElfFile(data, "x.o"), KERNEL).sites)


def do_write(data: bytes) -> int:
    """What `write` computes: scan, plan, render (the bytes, not the file)."""
    from scall_objtool.table.write import decide
    action = decide(ElfFile(data, "x.o"), KERNEL)
    assert action.entries, "the input must give the writer something to do"
    return len(action.data)


def do_verify(data: bytes) -> int:
    from scall_objtool.table.verify import verify
    elf = ElfFile(data, "x.o")
    verdict = verify(elf, scan_elf(elf, KERNEL, sources=False), KERNEL)
    return len(verdict.mismatches)


CASES = {
    # item 12: addressing sites through function symbols (no section symbol)
    "many_functions/write": (lambda n: many_functions(n), do_write, 800),
    "many_labels/write": (lambda n: many_labels(n, n), do_write, 1000),
    # item 13: the function holding a site, with one huge function
    "huge_function/scan": (lambda n: huge_function(n, n), do_scan, 1500),
    # item 14: verify explaining entries that are not sites
    "verify_nonsites/verify": (lambda n: verify_nonsites(n, 20 * n), do_verify, 2000),
    # item 17: appending a name to a string table
    "many_key_names/write": (lambda n: many_key_names(n), do_write, 20000),
}
#: the ~1 MB hang guard: the size of each input, in units of its parameter
MEGABYTE = {"many_functions/write": 14000, "many_labels/write": 16000,
            "huge_function/scan": 17000, "verify_nonsites/verify": 13000,
            "many_key_names/write": 26000}


def _build(tmp_path: Path, source: str, name: str) -> bytes:
    src = tmp_path / f"{name}.s"
    src.write_text(source)
    obj = tmp_path / f"{name}.o"
    subprocess.run(["as", "-o", str(obj), str(src)], check=True)
    return obj.read_bytes()


def _lines(fn, data: bytes) -> int:
    """The Python lines one run executes (imports and caches warmed first)."""
    fn(data)
    return python_lines(fn, data)[1]


@pytest.mark.parametrize("case", sorted(CASES))
def test_cost_grows_near_linearly(case, tmp_path):
    gen, fn, n = CASES[case]
    small = _build(tmp_path, gen(n), "small")
    large = _build(tmp_path, gen(4 * n), "large")
    assert 3 * len(small) < len(large) < 5 * len(small)
    assert fn(small) <= fn(large)               # the same work, four times over
    w_small, w_large = _lines(fn, small), _lines(fn, large)
    # linear is 4x (4.0 today), n log n ~4.5x, quadratic 16x
    assert w_large <= 5 * w_small, (
        f"{case}: {len(small)} bytes ran {w_small} lines, {len(large)} bytes "
        f"{w_large}: {w_large / w_small:.1f}x for 4x the input")


@pytest.mark.parametrize("case", sorted(CASES))
def test_megabyte_input_costs_lines_in_proportion(case, tmp_path):
    gen, fn, _n = CASES[case]
    data = _build(tmp_path, gen(MEGABYTE[case]), "big")
    assert 700_000 < len(data) < 2_000_000
    lines = _lines(fn, data)
    # 0.3 to 5.5 lines a byte today; a quadratic path runs thousands
    assert lines < 20 * len(data), f"{case}: a {len(data)}-byte input ran {lines} lines"


def test_results_unchanged_by_the_indexes(tmp_path):
    """The indexes answer what the walks they replace answered: the function
    holding each site, the symbol each entry is addressed through, the
    reason an entry is not a site, and the string offsets."""
    from scall_objtool.table.render import Plan
    from scall_objtool.table.verify import verify

    elf = ElfFile(_build(tmp_path, huge_function(50, 20), "h"), "h.o")
    sites = scan_elf(elf, KERNEL).sites
    assert len(sites) == 20 and {s.function for s in sites} == {"big"}
    assert [s.function_offset for s in sites] == [5 * i for i in range(20)]

    elf = ElfFile(_build(tmp_path, many_functions(40), "f"), "f.o")
    plan = Plan(elf, scan_elf(elf, KERNEL), KERNEL)
    names = [elf.symbol(e.addr_sym).name for e in plan.entries]
    assert names == [f"fn{i}" for i in range(40)]
    assert {e.addr_addend for e in plan.entries} == {0}

    elf = ElfFile(_build(tmp_path, verify_nonsites(8, 64), "v"), "v.o")
    v = verify(elf, scan_elf(elf, KERNEL, sources=False), KERNEL)
    assert v.mismatches == [
        f"entry {i} (.text+{8 * i:#x}): the instruction there ('nop' in f+{8 * i:#x}) "
        "is not a call or jump to a trampoline" for i in range(8)]

    elf = ElfFile(_build(tmp_path, many_key_names(30), "k"), "k.o")
    plan = Plan(elf, scan_elf(elf, KERNEL), KERNEL)
    assert plan.new_keys == [b"__SCK__x"]


def _code_samples(tmp_path: Path) -> list[bytes]:
    """Code to decode: compiled C, padding and crafted byte patterns (two
    decodings of b0 b0 ... never meet; 0f 0f ... does not decode)."""
    import random
    rng = random.Random(10)
    src = tmp_path / "c.c"
    src.write_text("int g(int);\n" + "".join(
        f"int f{i}(int x) {{ for (int k = 0; k < x; k++) x ^= g(x * {i} + k); return x; }}\n"
        for i in range(40)))
    obj = tmp_path / "c.o"
    subprocess.run(["gcc", "-O2", "-c", "-o", str(obj), str(src)], check=True)
    elf = ElfFile(obj.read_bytes(), "c.o")
    text = elf.section_bytes(next(s for s in elf.sections if s.name == ".text"))
    mixed = bytearray(text)
    for at in rng.sample(range(len(mixed)), len(mixed) // 50):
        mixed[at] = rng.randrange(256)
    return [text, bytes(mixed), b"\xb0" * 3000, b"\x90" * 500 + b"\x0f\x0f" * 40 + text[:800],
            bytes(rng.randrange(256) for _ in range(3000))]


def test_shared_decoder_decodes_as_one_linear_pass(tmp_path):
    """SectionDecoder.decode(start, limit) finds, for every offset, the same
    instruction as decoding code[start:limit] on its own, and stops at the
    same place, whatever the decodes before it on the same code."""
    import random

    from scall_objtool.core.decode import SectionDecoder, disassemble
    rng = random.Random(14)
    for code in _code_samples(tmp_path):
        decoder = SectionDecoder(code)
        for _ in range(60):
            start = rng.randrange(len(code))
            limit = min(len(code), start + rng.choice((1, 7, 16, 70, 300, len(code))))
            got = decoder.decode(start, limit)
            starts, sizes, mnemonic = disassemble(code[start:limit], start)
            assert got.stop == (starts[-1] + sizes[-1] if starts else start)
            want = {}
            for k, (s, n) in enumerate(zip(starts, sizes)):
                for off in range(s, s + n):
                    want[off] = (s, n, mnemonic(k))
            for off in range(start - 2, limit + 2):
                assert got.at(off) == want.get(off), (start, limit, off)


def test_nested_functions_decode_each_byte_a_bounded_number_of_times(tmp_path):
    """Functions nested like [i, 2n - i) with a call in each one's own right
    end: every group starts at a different place and reaches far right, yet
    the bytes are decoded about once, not once per function."""
    import scall_objtool.core.decode as decode

    def nested(n: int) -> str:
        out = [".text", ".globl __SCT__x"]
        for i in range(n):
            out += [f".type g{i},@function", f"g{i}:", "nop"]
        for i in reversed(range(n)):
            out += ["call __SCT__x", "nop;nop", f"e{i}:"]
        out += [f".size g{i}, e{i} - g{i}" for i in range(n)]
        return "\n".join(out) + "\n"

    decoded = []
    real = decode._columns          # every capstone call the shared decoder makes

    def counting(code, base):
        decoded.append(len(code))
        return real(code, base)
    counts = []
    for n in (300, 1200):
        data = _build(tmp_path, nested(n), f"n{n}")
        decoded.clear()
        decode._columns = counting
        try:
            sites = scan_elf(ElfFile(data, "n.o"), KERNEL).sites
        finally:
            decode._columns = real
        assert len(sites) == n and {s.function for s in sites} == {f"g{i}" for i in range(n)}
        counts.append(sum(decoded))
    # 8 code bytes a function; a fresh decode reads at most one small chunk
    # past the point where it meets an earlier one
    assert 0 < counts[0] and counts[1] <= 6 * counts[0] \
        and counts[1] < 2 * 8 * 1200 + 64 * 1200, counts


def overlapping_names(tmp_path: Path, n: int, length: int) -> bytes:
    """An object whose N function symbols are named by the suffixes of one long
    name (each st_name points one byte further into it): names x length bytes if
    each name is read apart."""
    import struct
    name = "a" * length
    lines = [".text", ".globl __SCT__x", "f0:", " call __SCT__x", " ret",
             f".globl {name}", f".type {name},@function", f"{name}: ret", f".size {name},1"]
    lines += [f".set s{i}, f0\n.type s{i},@function\n.size s{i},6" for i in range(1, n)]
    data = bytearray(_build(tmp_path, "\n".join(lines) + "\n", f"names{n}"))
    elf = ElfFile(bytes(data), "x.o")
    sym = elf.symtab
    long_off = elf.strtab.index(name.encode())
    for i in range(elf.num_symbols):
        at = sym.offset + 24 * i
        (st_name,) = struct.unpack_from("<I", data, at)
        raw = elf.symbol_name_bytes(st_name)
        if raw[:1] == b"s" and raw[1:].isdigit():
            struct.pack_into("<I", data, at, long_off + int(raw[1:]))
    return bytes(data)


def test_overlapping_symbol_names_are_refused_not_multiplied(tmp_path):
    """A 0.5 MB object whose 20000 symbols point into one 60 KB name would make
    every reader of the section's symbols copy gigabytes: it is refused at once;
    the same shape at a size compilers produce is read as usual."""
    from scall_objtool.errors import InputError
    hostile = overlapping_names(tmp_path, 20000, 60000)
    def refused():
        with pytest.raises(InputError, match="symbol names overlap"):
            do_scan(hostile)

    _, lines = python_lines(refused)
    assert lines < 20 * len(hostile), lines
    assert do_scan(overlapping_names(tmp_path, 200, 400)) == 1


def test_a_write_packs_only_the_section_headers_it_changes(tmp_path, monkeypatch):
    """The new section header table is the original's bytes with the headers
    the write changes packed over them (the symbol and string tables, the
    table's two new sections): an object of hundreds of sections packs a
    handful, not every one, and the result is the table a full repacking
    gives."""
    from scall_objtool.core import elf as elfmod
    from scall_objtool.table.render import Plan, render
    src = "".join(f".section .data.d{i},\"aw\"\n.byte {i % 256}\n" for i in range(300))
    src += ".text\n.globl f\n.type f,@function\nf: call __SCT__x\nret\n.size f,.-f\n"
    elf = ElfFile(_build(tmp_path, src, "s"), "s.o")
    assert len(elf.sections) > 300
    plan = Plan(elf, scan_elf(elf, KERNEL), KERNEL)
    packed = []
    real = elfmod.Section.pack
    monkeypatch.setattr(elfmod.Section, "pack", lambda s: packed.append(s.index) or real(s))
    out = render(plan)
    assert len(packed) <= 6, packed
    new = ElfFile(out, "s.o")
    assert len(new.sections) == len(elf.sections) + 2
    for a, b in zip(elf.sections, new.sections):
        if a.index not in packed:
            assert real(a) == real(b)
