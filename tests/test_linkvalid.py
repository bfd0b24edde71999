"""Objects written by scall-objtool stay valid ELF, link, and run.

Everything here is checked with pyelftools, readelf, ld and gcc, and the
independent table reader scripts/tableread.py, never with scall_objtool's own
code:

- `readelf -a -W` has nothing to complain about on a written object;
- every table entry points at a real direct call/jmp/jcc whose rel32 field is
  relocated against the trampoline `__SCT__<name>` (addend -4), the key is
  `__SCK__<name>` (or the trampoline in module mode) and the tail-call flag
  matches the opcode;
- `ld -r` of written objects merges the tables (the sum of the entries);
- a final link (gcc -no-pie and -pie, with testdata/src/static_call_sites.ld)
  succeeds, each entry of the linked table resolves (s32 field + its own
  address) to an E8/E9/0F8x instruction whose destination is the trampoline
  and to the key (+ tail flag), and the program still prints what it printed
  before its objects were written;
- a module from Debian's 6.1 corpus gets its original table back.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from scall_testlib import SRC, run_objtool, write_lib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from tableread import Entry, read_table  # noqa: E402

LDSCRIPT = SRC / "static_call_sites.ld"
PREFIXES = {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF2, 0xF3}
R_X86_64_PC32, R_X86_64_PLT32 = 2, 4
TRAMP, KEY = "__SCT__", "__SCK__"

# Output of ./prog (no arguments); the last line is the number of entries.
PROG_OUTPUT = """\
call_a 12
tail_b 43
loop_ab 192
other_section 76
cold_path 18
cond_tail 7 -1
asm_tail 87
direct 201
"""


# --------------------------------------------------------------- helpers

def readelf_clean(path: Path) -> None:
    p = subprocess.run(["readelf", "-a", "-W", str(path)], capture_output=True,
                       text=True, errors="replace")
    bad = [l for l in p.stderr.splitlines()
           if l.startswith(("readelf: Warning", "readelf: Error"))]
    assert p.returncode == 0 and not bad, \
        f"readelf -a -W {path.name}: exit {p.returncode}\n" + "\n".join(bad[:20])


def run(*cmd, cwd=None) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stderr}"
    return p


def write(paths, policy: str, module: bool = False):
    """Write the table of each of PATHS in place (through the library)."""
    for p in paths:
        write_lib("--policy", policy, *(["--module"] if module else []), p)


def table(path: Path) -> list[Entry]:
    """Entries of PATH's table ([] when it has none); tableread validates it."""
    return read_table(path) or []


def _relocs_by_section(elf: ELFFile) -> dict[str, dict[int, tuple[str, int, int, str]]]:
    """section name -> {r_offset: (symbol name, type, addend, binding)}."""
    out: dict[str, dict] = {}
    names = [s.name for s in elf.iter_sections()]
    for rs in elf.iter_sections():
        if rs["sh_type"] != "SHT_RELA":
            continue
        target = elf.get_section(rs["sh_info"])
        if not target["sh_flags"] & 0x4:           # SHF_EXECINSTR
            continue
        assert names.count(target.name) == 1, f"duplicate section name {target.name}"
        symtab = elf.get_section(rs["sh_link"])
        d = out.setdefault(target.name, {})
        for r in rs.iter_relocations():
            sym = symtab.get_symbol(r["r_info_sym"])
            d[r["r_offset"]] = (sym.name, r["r_info_type"], r["r_addend"],
                                sym["st_info"]["bind"])
    return out


def decode_branch(code: bytes, at: int) -> tuple[str, int, int]:
    """(kind, offset of rel32, end of instruction) of the direct call/jmp/jcc
    starting at code[at] (legacy prefixes allowed)."""
    i = at
    while i < len(code) and code[i] in PREFIXES and i - at < 4:
        i += 1
    op = code[i]
    if op == 0xE8:
        return "call", i + 1, i + 5
    if op == 0xE9:
        return "jmp", i + 1, i + 5
    if op == 0x0F and 0x80 <= code[i + 1] <= 0x8F:
        return "jcc", i + 2, i + 6
    raise AssertionError(f"no direct call/jmp/jcc at {at:#x}: {code[at:at + 8].hex(' ')}")


def check_object_table(path: Path, module: bool = False) -> list[Entry]:
    """Every entry of PATH's table is a proven static-call site."""
    entries = table(path)
    with open(path, "rb") as f:
        elf = ELFFile(f)
        relocs = _relocs_by_section(elf)
        for e in entries:
            sec = elf.get_section_by_name(e.section)
            assert sec is not None and sec["sh_flags"] & 0x4, f"{path.name}: {e}: not code"
            kind, field, _ = decode_branch(sec.data(), e.offset)
            rel = relocs.get(e.section, {}).get(field)
            assert rel is not None, f"{path.name}: {e}: rel32 at {field:#x} not relocated"
            sym, rtype, addend, bind = rel
            assert sym.startswith(TRAMP) and bind == "STB_GLOBAL", f"{path.name}: {e}: {rel}"
            assert rtype in (R_X86_64_PC32, R_X86_64_PLT32) and addend == -4, \
                f"{path.name}: {e}: {rel}"
            name = sym[len(TRAMP):]
            keys = {KEY + name} | ({TRAMP + name} if module else set())
            assert e.key in keys, f"{path.name}: {e}: key should be {keys}"
            assert e.flags == (0 if kind == "call" else 1), f"{path.name}: {e}: {kind}"
    return entries


def naive_sites(path: Path) -> Counter:
    """All direct call/jmp/jcc instructions relocated against a global
    trampoline (addend -4), found from the relocations alone: exact for
    compiler output without prefixes (linkprog.c, linktramp.S, staticcall.c)."""
    found = Counter()
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for secname, rels in _relocs_by_section(elf).items():
            data = elf.get_section_by_name(secname).data()
            for off, (sym, rtype, addend, bind) in rels.items():
                if not (sym.startswith(TRAMP) and bind == "STB_GLOBAL" and addend == -4
                        and rtype in (R_X86_64_PC32, R_X86_64_PLT32)):
                    continue
                if off >= 1 and data[off - 1] in (0xE8, 0xE9):
                    start, tail = off - 1, int(data[off - 1] == 0xE9)
                elif off >= 2 and data[off - 2] == 0x0F and 0x80 <= data[off - 1] <= 0x8F:
                    start, tail = off - 2, 1
                else:
                    continue
                found[Entry(secname, start, KEY + sym[len(TRAMP):], tail)] += 1
    return found


def build_set(build, pic: str = "-fno-pie") -> dict[str, Path]:
    """The test objects: name -> path (freshly built)."""
    objs = {
        "linkprog": build("linkprog.c", "-O2", pic),
        "linktramp": build("linktramp.S"),
    }
    optional = {
        "staticcall-O0": ("staticcall.c", "-O0"),
        "staticcall-O2": ("staticcall.c", "-O2"),
        "staticcall-Os": ("staticcall.c", "-Os"),
        "staticcall-fs": ("staticcall.c", "-O2", "-ffunction-sections"),
        "kinds": ("kinds.S",),
        "kinds-keys": ("kinds.S", "--defsym", "ALL_KEYS=1"),
        "crossing": ("crossing.S",),
        "nostatic": ("nostatic.c", "-O2"),
    }
    for name, (src, *flags) in optional.items():
        if (SRC / src).exists():
            objs[name] = build(src, *flags)
    return objs


EXACT = ("linkprog", "linktramp", "staticcall-O0", "staticcall-O2", "staticcall-Os",
         "staticcall-fs")


# ----------------------------------------------------------------- tests

@pytest.mark.parametrize("policy,module", [("seed", False), ("kernel", False),
                                           ("kernel", True)],
                         ids=["seed", "kernel", "kernel-module"])
def test_written_objects_are_valid(build, policy, module):
    objs = build_set(build)
    before = {n: p.read_bytes() for n, p in objs.items()}
    expected = {n: naive_sites(objs[n]) for n in EXACT if n in objs}
    write(objs.values(), policy, module)
    for name, path in objs.items():
        readelf_clean(path)
        entries = check_object_table(path, module)
        if name == "nostatic":
            assert path.read_bytes() == before[name], "object without sites was changed"
            continue
        if name in expected:
            got = Counter(entries)
            if policy == "kernel":
                assert got == expected[name], \
                    f"{name}: missing {sorted((expected[name] - got).elements())}, " \
                    f"unexpected {sorted((got - expected[name]).elements())}"
            else:
                assert not got - expected[name], f"{name}: {sorted((got - expected[name]).elements())}"
        if policy == "kernel" and name in ("linkprog", "linktramp", "kinds", "crossing"):
            assert entries, f"{name}: no table written"


@pytest.mark.parametrize("policy", ["seed", "kernel"])
def test_ld_r_merges_tables(build, tmp_path, policy):
    objs = build_set(build)
    write(objs.values(), policy)
    groups = [["linkprog", "linktramp"],
              ["staticcall-fs", "kinds", "crossing", "nostatic"]]
    for gi, group in enumerate(groups):
        members = [objs[n] for n in group if n in objs]
        merged = tmp_path / f"merged{gi}.o"
        run("ld", "-r", "-o", merged, *members)
        readelf_clean(merged)
        parts = [table(p) for p in members]
        entries = check_object_table(merged)
        assert len(entries) == sum(map(len, parts))
        assert Counter((e.key, e.flags) for e in entries) == \
            sum((Counter((e.key, e.flags) for e in p) for p in parts), Counter())


def _linked_image(path: Path):
    """(symbols by name, read(addr, n), table (addr, data), elf header type)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        syms = {}
        for s in elf.get_section_by_name(".symtab").iter_symbols():
            if s.name and s["st_shndx"] != "SHN_UNDEF":
                syms.setdefault(s.name, s["st_value"])
        code = [(s["sh_addr"], s.data()) for s in elf.iter_sections()
                if s["sh_flags"] & 0x4 and s["sh_type"] == "SHT_PROGBITS"]
        sec = elf.get_section_by_name(".static_call_sites")
        tab = (sec["sh_addr"], sec.data()) if sec is not None else (None, b"")
        etype = elf["e_type"]

    def read(addr: int, n: int) -> bytes:
        for base, data in code:       # up to n bytes: a site may end its section
            if base <= addr < base + len(data):
                return data[addr - base:addr - base + n]
        raise AssertionError(f"{addr:#x} is not in an executable section")

    return syms, read, tab, etype


def check_linked_table(prog: Path, n_expected: int) -> list[tuple[int, str, int]]:
    """Resolve every entry of the linked table; returns (site, name, tail)."""
    syms, read, (base, data), _ = _linked_image(prog)
    assert len(data) == 8 * n_expected, f"linked table has {len(data) // 8} entries"
    if n_expected == 0:
        return []
    assert syms["__start_static_call_sites"] == base
    assert syms["__stop_static_call_sites"] == base + len(data)
    tramps = {v: k[len(TRAMP):] for k, v in syms.items() if k.startswith(TRAMP)}
    out = []
    for i in range(n_expected):
        field = base + 8 * i
        s_addr, s_key = struct.unpack_from("<ii", data, 8 * i)
        site = field + s_addr
        key = field + 4 + s_key
        code = read(site, 6)
        kind, rel_at, end = decode_branch(code, 0)
        assert end <= len(code), f"entry {i}: instruction at {site:#x} runs off its section"
        assert rel_at == end - 4 and code[0] in (0xE8, 0xE9, 0x0F), \
            f"entry {i}: {code.hex(' ')}"
        dest = site + end + struct.unpack_from("<i", code, rel_at)[0]
        assert dest in tramps, f"entry {i}: site {site:#x} goes to {dest:#x}, not a trampoline"
        name = tramps[dest]
        tail = int(kind != "call")
        assert key == syms[KEY + name] + tail, \
            f"entry {i}: key {key:#x} != {KEY}{name} {syms[KEY + name]:#x} + {tail}"
        out.append((site, name, tail))
    assert len(set(s for s, _, _ in out)) == len(out), "duplicate sites"
    return out


@pytest.mark.parametrize("policy", ["seed", "kernel"])
@pytest.mark.parametrize("pie", [False, True], ids=["no-pie", "pie"])
def test_final_link_and_run(build, tmp_path, policy, pie):
    cflag, lflag = ("-fPIE", "-pie") if pie else ("-fno-pie", "-no-pie")
    prog_o = build("linkprog.c", "-O2", cflag)
    tramp_o = build("linktramp.S")
    link = ["gcc", lflag, f"-Wl,-T,{LDSCRIPT}"]

    # The reference: the same program from unwritten objects.
    ref = tmp_path / "ref"
    run(*link, "-o", ref, prog_o, tramp_o)
    ref_out = run(ref).stdout
    assert ref_out == PROG_OUTPUT + "sites 0\n"

    expected = naive_sites(prog_o) + naive_sites(tramp_o)
    assert len(expected) == 10 and sum(e.flags for e in expected) == 3
    write([prog_o, tramp_o], policy)
    entries = [check_object_table(prog_o), check_object_table(tramp_o)]
    n = sum(map(len, entries))
    if policy == "kernel":
        assert Counter(entries[0] + entries[1]) == expected
    else:
        assert n > 0 and not Counter(entries[0] + entries[1]) - expected

    # ld -r of the written objects, then both final links.
    merged = tmp_path / "merged.o"
    run("ld", "-r", "-o", merged, prog_o, tramp_o)
    readelf_clean(merged)
    assert len(check_object_table(merged)) == n

    for name, inputs in (("prog", [prog_o, tramp_o]), ("prog-merged", [merged])):
        prog = tmp_path / name
        run(*link, "-o", prog, *inputs)
        readelf_clean(prog)
        _, _, _, etype = _linked_image(prog)
        assert etype == ("ET_DYN" if pie else "ET_EXEC")
        sites = check_linked_table(prog, n)
        want = Counter((e.key[len(KEY):], e.flags) for t in entries for e in t)
        assert Counter((nm, tl) for _, nm, tl in sites) == want
        assert run(prog).stdout == PROG_OUTPUT + f"sites {n}\n"


def test_module_table_matches_original(corpus, objtool, tmp_path):
    src = corpus / "crypto" / "async_tx" / "async_memcpy.ko"
    original = read_table(src)
    assert original, f"{src} has no table"
    ko = tmp_path / "async_memcpy.ko"
    shutil.copyfile(src, ko)
    run("objcopy", "--remove-section", ".static_call_sites",
        "--remove-section", ".rela.static_call_sites", ko)
    assert read_table(ko) is None
    stripped = tmp_path / "stripped.ko"
    shutil.copyfile(ko, stripped)

    write([ko], "kernel", module=True)
    readelf_clean(ko)
    assert read_table(ko) == original
    check_object_table(ko, module=True)

    # objtool 6.1 writes the same table into the same stripped module.
    p = run_objtool(objtool, stripped, "--module")
    assert p.returncode == 0, p.stderr
    assert read_table(stripped) == original
