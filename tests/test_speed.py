"""Speed, second round (issue 24), as work counted, never as time.

* Source lines are read from the DWARF only where an output shows them (scan
  JSON; check's findings in text, JSON and SARIF), and ``--no-lines`` turns
  them off: each command line runs in this process with the DWARF reader's
  section loader (``dwarf.Debug._load``) counting what it loads.
* Start-up: a run on an object without static calls imports a bounded set of
  modules (ours and the standard library's beyond the interpreter's own
  start-up), counted in a fresh interpreter; and the command ends without the
  interpreter's teardown (no module torn down, counted with ``python -v``)
  unless something could observe it.
"""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scall_testlib import ROOT, inlined_wrapper_object, near_and_full

SRC = ROOT / "testdata" / "src"


@pytest.fixture(scope="module")
def inline_o(tmp_path_factory):
    """gcc -O2 -g: static calls with DWARF, one fallback site under the seed policy."""
    obj = tmp_path_factory.mktemp("speed") / "inline.o"
    subprocess.run(["gcc", "-O2", "-g", "-c", "-o", str(obj), str(SRC / "inline_sites.c")],
                   check=True)
    return obj


def _run_counting(monkeypatch, argv: list[str]) -> tuple[int, str, list[str]]:
    """(exit status, stdout, names of the debug sections loaded) of one command
    line, run in this process through the fast path (one input: no worker)."""
    from scall_objtool.lines import dwarf
    from scall_objtool import cli as fastcli
    loaded: list[str] = []
    real = dwarf.Debug._load

    def counting(self, name):
        loaded.append(name)
        return real(self, name)
    monkeypatch.setattr(dwarf.Debug, "_load", counting)
    monkeypatch.delenv("SCALL_OBJTOOL_NO_FASTPATH", raising=False)
    parsed = fastcli.parse(argv)
    assert parsed is not None, argv
    out = io.StringIO()
    from scall_objtool.cli.commands import run
    with contextlib.redirect_stdout(out):
        rc = run(*parsed)
    return rc, out.getvalue(), loaded


NOT_SHOWN = [
    ["scan"], ["scan", "-q"], ["scan", "--group-by", "dir"], ["scan", "--stats"],
    ["scan", "--format", "openmetrics"], ["scan", "--format", "json", "--no-lines"],
    ["check", "-q"], ["check", "--group-by", "reason"], ["check", "--format", "openmetrics"],
    ["check", "--no-lines"], ["check", "--format", "sarif", "--no-lines"],
    ["check", "--format", "json", "--no-lines"], ["verify"], ["verify", "--format", "json"],
    ["write", "--dry-run"],
]


@pytest.mark.parametrize("argv", NOT_SHOWN, ids=" ".join)
def test_no_dwarf_read_where_no_line_is_shown(monkeypatch, inline_o, argv):
    rc, out, loaded = _run_counting(monkeypatch, [*argv, "-j", "1", str(inline_o)]
                                    if argv[0] != "write" else [*argv, str(inline_o)])
    assert rc in (0, 1), (rc, out)
    assert loaded == [], f"{' '.join(argv)} read {loaded}"
    assert "inline_sites.c" not in out


SHOWN = [["scan", "--format", "json"], ["check"], ["check", "--format", "json"],
         ["check", "--format", "sarif"]]


@pytest.mark.parametrize("argv", SHOWN, ids=" ".join)
def test_lines_read_where_shown(monkeypatch, inline_o, argv):
    rc, out, loaded = _run_counting(monkeypatch, [*argv, "-j", "1", str(inline_o)])
    assert rc in (0, 1), (rc, out)
    assert ".debug_info" in loaded and ".debug_line" in loaded
    assert "inline_sites.c" in out


def test_no_lines_leaves_sources_null(monkeypatch, inline_o):
    _, with_lines, _ = _run_counting(monkeypatch, ["scan", "-f", "json", str(inline_o)])
    _, without, _ = _run_counting(monkeypatch, ["scan", "-f", "json", "--no-lines",
                                                str(inline_o)])
    a, b = json.loads(with_lines), json.loads(without)
    sites_a = a["objects"][0]["sites"]
    sites_b = b["objects"][0]["sites"]
    assert any(s["source"] for s in sites_a)
    assert all(s["source"] is None and s["inlined"] == [] for s in sites_b)
    # nothing else changes
    strip = [{k: v for k, v in s.items() if k not in ("source", "inlined")} for s in sites_a]
    assert strip == [{k: v for k, v in s.items() if k not in ("source", "inlined")}
                     for s in sites_b]


def test_check_reads_lines_of_the_fallback_sites_only(monkeypatch, inline_o):
    """check shows only its findings: patchable sites are not looked up."""
    from scall_objtool import lines as sourcelines
    looked: list[int] = []
    real = sourcelines.lookup

    def counting(elf, keys, *a, **kw):
        looked.append(len(keys))
        return real(elf, keys, *a, **kw)
    monkeypatch.setattr(sourcelines, "lookup", counting)
    rc, out, _ = _run_counting(monkeypatch, ["check", "--format", "json", str(inline_o)])
    doc = json.loads(out)
    assert rc == 1 and looked == [doc["summary"]["fallback"]]
    assert 0 < doc["summary"]["fallback"] < doc["summary"]["sites"]
    assert all(f["source"] for f in doc["findings"])


# ------------------------------------------------------------------ start-up
#: what a run on an object without static calls may import beyond the
#: interpreter's own start-up: our modules (the command line's fast path, the
#: command, read, find trampolines) and a few small standard ones.  Measured
#: with `python -X importtime`; README "Speed" has the figures.
MAX_OWN_MODULES = 16
#: standard modules: ``-m`` brings runpy's (importlib.util, contextlib,
#: functools, collections, ...: 16 in a clean venv); the installed command
#: (bin/scall-objtool) only struct, itertools and __future__ for a write, the
#: text report's few for a scan
MAX_STDLIB_MODULES = {"-m": 21, "command": 11}
NEVER = {"re", "enum", "dataclasses", "typing", "inspect", "json", "argparse", "typer",
         "click", "rich", "capstone", "numpy", "zstandard", "zlib", "hashlib", "tempfile",
         "pathlib", "shutil", "subprocess", "concurrent", "multiprocessing", "heapq",
         "math", "ctypes", "fnmatch", "locale", "bisect"}
#: not even what runpy imports, for a write through the installed command
NEVER_FOR_THE_COMMAND = {"functools", "collections", "contextlib", "importlib", "operator"}
ENTRIES = {"-m": ["-m", "scall_objtool"], "command": [str(ROOT / "bin" / "scall-objtool")]}


def _imported(*args: str) -> set[str]:
    """The modules a fresh interpreter imports for ``args`` (-X importtime),
    with this source tree first on the path (as for the installed command)."""
    import os
    env = {k: v for k, v in os.environ.items() if k != "SCALL_OBJTOOL_NO_FASTPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    r = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines()
            if line.startswith("import time:") and "| imported package" not in line
            and not line.endswith("| package")} - {"package"}


@pytest.fixture(scope="module")
def no_calls_o(tmp_path_factory):
    d = tmp_path_factory.mktemp("nocalls")
    (d / "plain.c").write_text("int add(int a, int b) { return a + b; }\n"
                               "static int (*hook)(int, int) = add;\n"
                               "int call(int x) { return hook(x, 1); }\n")
    subprocess.run(["gcc", "-O2", "-g", "-c", "-o", str(d / "plain.o"), str(d / "plain.c")],
                   check=True)
    return d / "plain.o"


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("argv", [["write", "-q", "--dry-run", "--policy", "kernel"],
                                  ["scan", "-q"]], ids=" ".join)
def test_startup_imports_are_bounded(no_calls_o, argv, entry):
    base = _imported("-c", "pass")
    run = _imported(*ENTRIES[entry], *argv, str(no_calls_o))
    beyond = run - base
    own = {m for m in beyond if m.split(".")[0] == "scall_objtool"}
    stdlib = {m for m in beyond if not m.startswith(("scall_objtool", "__editable__"))}
    # scan: + report, report.text
    limit = MAX_OWN_MODULES + (2 if argv[0] == "scan" else 0)
    assert len(own) <= limit, sorted(own)
    assert len(stdlib) <= MAX_STDLIB_MODULES[entry], sorted(stdlib)
    never = NEVER | (NEVER_FOR_THE_COMMAND if entry == "command" and argv[0] == "write"
                     else set())
    assert not {m.split(".")[0] for m in beyond} & never, sorted(
        m for m in beyond if m.split(".")[0] in never)


# ------------------------------------------------------------------ exit
def _env_first() -> dict:
    import os
    env = {k: v for k, v in os.environ.items() if k != "SCALL_OBJTOOL_NO_FASTPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _torn_down(r: subprocess.CompletedProcess) -> int:
    """Modules the interpreter's finalization tore down (``python -v`` says each)."""
    return sum(line.startswith(("# cleanup", "# destroy")) for line in r.stderr.splitlines())


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("argv,rc", [(["write", "-q", "--dry-run", "--policy", "kernel"], 0),
                                     (["scan"], 0), (["check", "--policy", "seed"], 1),
                                     (["scan", "--no-such-option"], 2)], ids=str)
def test_command_ends_without_teardown(inline_o, entry, argv, rc):
    """The command ends at once when it is done (cli.leave): no module is torn
    down, and the output, exit status and stderr are those of a full exit."""
    env = _env_first()
    cmd = [*ENTRIES[entry], *argv, str(inline_o)]
    fast = subprocess.run([sys.executable, "-v", *cmd], capture_output=True, text=True,
                          env=env)
    assert _torn_down(fast) == 0, fast.stderr[-2000:]
    # the same command with a profile function set ends through sys.exit
    full = subprocess.run([sys.executable, "-v", "-c", (
        "import runpy, sys\nsys.setprofile(lambda *a: None)\n"
        f"sys.argv = {['scall-objtool', *argv, str(inline_o)]!r}\n"
        + ("runpy.run_module('scall_objtool', run_name='__main__', alter_sys=True)"
           if entry == "-m" else f"runpy.run_path({cmd[0]!r}, run_name='__main__')"))],
        capture_output=True, text=True, env=env)
    assert _torn_down(full) > 50
    assert fast.returncode == full.returncode == rc, (fast.stderr[-500:], full.stderr[-500:])
    assert fast.stdout == full.stdout and (fast.stdout or "-q" in argv or rc == 2)
    errors = [[x for x in r.stderr.splitlines() if x.startswith("scall-objtool")]
              for r in (fast, full)]
    assert errors[0] == errors[1]


def test_command_runs_atexit_handlers(inline_o):
    """An atexit handler (an installed package's, coverage's) still runs, after
    the command's output, and the exit status is the command's."""
    code = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: print('handler ran', flush=True))\n"
            f"sys.argv = ['scall-objtool', 'check', '--policy', 'seed', {str(inline_o)!r}]\n"
            f"runpy.run_path({ENTRIES['command'][0]!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-v", "-c", code], capture_output=True, text=True,
                       env=_env_first())
    assert r.returncode == 1, r.stderr[-2000:]
    assert r.stdout.endswith("handler ran\n") and "summary:" in r.stdout
    assert _torn_down(r) == 0


# ------------------------------------------------------------------ capstone
def test_capstone_library_bound_directly_decodes_as_the_package(inline_o):
    """decode.py calls capstone's C library without importing the capstone
    package (its import costs more than proving kvm.ko's sites): the layout it
    assumes is the package's, and every instruction decodes the same."""
    import ctypes

    import capstone

    from scall_objtool.core import decode
    from scall_objtool.core.elf import ElfFile
    assert decode._library_path() is not None       # the direct path is the one taken
    layout = decode._bulk_layout()
    t = capstone._cs_insn
    assert layout[3:7] == (ctypes.sizeof(t), t.address.offset, t.size.offset,
                           t.mnemonic.offset)
    elf = ElfFile(Path(inline_o).read_bytes(), str(inline_o))
    text = next(s for s in elf.sections if s.name == ".text")
    code = bytes(elf.data[text.offset:text.offset + text.size])
    starts, sizes, mnemonic = decode.disassemble(code, 0)
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    want = list(md.disasm_lite(code, 0))
    assert len(starts) == len(want) > 10
    assert [(a, n, mnemonic(i)) for i, (a, n) in enumerate(zip(starts, sizes))] == \
        [(a, n, m) for a, n, m, _ in want]


def test_proving_sites_does_not_import_the_capstone_package(inline_o):
    """Scanning and writing an object with sites imports neither the capstone
    package nor dataclasses/inspect/re/typing (beyond what start-up had)."""
    code = ("import sys\nbefore = set(sys.modules)\n"
            "from scall_objtool import scan_path, write_path\n"
            f"assert scan_path({str(inline_o)!r}).sites\n"
            f"assert write_path({str(inline_o)!r}, dry_run=True).entries\n"
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
            "('capstone', 'dataclasses', 'inspect', 're', 'typing')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_decoding_builds_no_class_per_call(inline_o):
    """capstone's result is viewed in place without a ctypes array type of its
    own size (a class built per decode, later collected as a cycle: 2,764 of
    them over the corpus, 19,000 objects for the collector)."""
    import gc

    from scall_objtool.core import decode
    from scall_objtool.core.elf import ElfFile
    elf = ElfFile(Path(inline_o).read_bytes(), str(inline_o))
    text = next(s for s in elf.sections if s.name == ".text")
    code = elf.section_bytes(text)
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        for n in range(16, len(code), max(1, len(code) // 200)):
            starts, _sizes, mnemonic = decode.disassemble(code[:n], 0)
            assert starts and mnemonic(0)
        del mnemonic
        assert gc.collect() < 10
    finally:
        if was:
            gc.enable()


def test_function_index_reads_only_the_symbols_near_the_sites():
    """FunctionIndex finds the symbols that answer the queries by walking back
    from each over symbols sorted by start: the same functions and labels as
    a pass over every symbol of the section, examining a handful of symbols
    a query (kvm.ko's .text: thousands of symbols, a few hundred sites)."""
    from scall_objtool.core import decode
    from scall_objtool.core.elf import ElfFile
    sections = 0
    for path in sorted((ROOT / "testdata" / "prebuilt").glob("*.o")):
        elf = ElfFile(path.read_bytes(), str(path))
        for sec in elf.sections:
            if not sec.executable or not sec.size or elf.symtab is None:
                continue
            offsets = list(range(0, sec.size, max(1, sec.size // 40)))
            before = decode.NEAR_EXAMINED[0]
            fast, full = near_and_full(elf, sec, offsets)
            assert (fast.funcs, fast.labels) == (full.funcs, full.labels), (path, sec.name)
            examined = decode.NEAR_EXAMINED[0] - before
            assert examined <= len(elf.syms.in_section(sec.index)) + 1
            for off in offsets:
                assert fast.containing(off) == full.containing(off)
            sections += 1
    assert sections >= 5


def test_function_index_of_kvm_examines_a_few_symbols_a_site(corpus):
    """kvm.ko's .text (1,927 symbols, 876 candidates): the index of its candidates is
    the full pass's, found by examining fewer symbols than there are sites."""
    from scall_objtool.core import decode
    from scall_objtool.core.candidates import find_candidates, find_trampolines
    from scall_objtool.core.elf import ElfFile
    path = corpus / "arch/x86/kvm/kvm.ko"
    elf = ElfFile(path.read_bytes(), str(path))
    cands = find_candidates(elf, find_trampolines(elf, b"__SCT__"))
    text = next(s for s in elf.sections if s.name == ".text")
    offsets = [c.offset for c in cands if c.section.index == text.index]
    symbols = len(elf.syms.in_section(text.index))
    assert len(offsets) > 800 and symbols > 1900
    before = decode.NEAR_EXAMINED[0]
    fast, full = near_and_full(elf, text, offsets)
    assert (fast.funcs, fast.labels) == (full.funcs, full.labels)
    assert decode.NEAR_EXAMINED[0] - before < len(offsets)


def test_writing_an_object_imports_no_tempfile(inline_o, tmp_path):
    """A write creates its temporary itself (fileio.create_temporary): tempfile
    brings in shutil, random, re, bz2 and lzma, more than the rest of a
    write of one object."""
    import shutil
    import capstone
    obj = tmp_path / "w.o"
    shutil.copy(inline_o, obj)
    # without site (-S): a .pth file of the machine's may import tempfile itself;
    # capstone's directory added by hand
    packages = str(Path(capstone.__file__).parent.parent)
    code = (f"import sys\nsys.path.append({packages!r})\nbefore = set(sys.modules)\n"
            "from scall_objtool import write_path\n"
            f"assert write_path({str(obj)!r}).entries\n"
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
            "('tempfile', 'shutil', 'random', 're', 'bz2', 'lzma')))")
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                       env=_env_first())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.o"]


def test_a_large_file_truncated_in_place_after_it_is_loaded_is_scanned_as_read(tmp_path):
    """A large input is read, not mapped (issue 24, fifth round, measured a
    mapping: 0.1-0.2 s less on the 6.12 vmlinux): a mapped file truncated
    in place while it is read (``cp`` over a vmlinux) kills the process with
    SIGBUS, no error line.  Loaded, the file is truncated to nothing; the
    scan of what was loaded still runs, in a child process so that a bus
    error would fail this test rather than end the run."""
    from scall_testlib import PREBUILT
    big = tmp_path / "big.o"
    big.write_bytes((PREBUILT / "staticcall-O2.o").read_bytes())
    with open(big, "r+b") as f:            # a sparse tail past every section
        f.truncate(40 << 20)
    code = ("import sys\n"
            "from scall_objtool import Options\n"
            "from scall_objtool.core.elf import ElfFile, load_file\n"
            "from scall_objtool.core.pipeline import scan_elf\n"
            "data = load_file(sys.argv[1])\n"
            "open(sys.argv[1], 'r+b').truncate(0)\n"
            "r = scan_elf(ElfFile(data, sys.argv[1]), Options(), sources=False)\n"
            "print(type(data).__name__, len(data), len(r.sites), data[-4096:] == bytes(4096))\n")
    r = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True,
                       env=_env_first())
    assert r.returncode == 0, (r.returncode, r.stderr)
    kind, size, sites, tail = r.stdout.split()
    assert (kind, int(size), tail) == ("bytes", 40 << 20, "True") and int(sites) > 0


def test_a_scan_runs_no_cyclic_collection(tmp_path):
    """Issue 24, fifth round: the cyclic garbage collector is paused during a
    scan (each collection traverses every live container: the symbol
    columns, the abbreviation tables; on the 6.12 vmlinux with lines 490
    collections, 0.2 s of CPU), re-enabled after it, and left off when the
    caller had turned it off; what the scan leaves is collected after it."""
    import gc
    from scall_objtool import Options
    from scall_objtool.core.elf import ElfFile
    from scall_objtool.core.pipeline import scan_elf
    obj = inlined_wrapper_object(tmp_path, "many", 200)
    collections = []

    def counted(phase, info):
        if phase == "start":
            collections.append(info["generation"])
    gc.callbacks.append(counted)
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            elf = ElfFile(obj.read_bytes(), str(obj))
            collections.clear()
            result = scan_elf(elf, Options())
            assert len(result.sites) == 200 and result.sites[0].inlined
            assert collections == [] and gc.isenabled() == enabled   # (before: 12)
    finally:
        gc.callbacks.remove(counted)
        gc.enable()


# ------------------------------------------------------------------ find stage
class _Blob:
    """What ``RelocColumns`` reads of an object: its bytes."""

    def __init__(self, data: bytes):
        self.data = data


def _rela_table(entries, rel: bool = False, lead: bytes = b"\x00" * 8):
    """A RelocColumns over (offset, type, symbol, addend) ``entries``, laid out
    after ``lead`` bytes (SHT_REL: 16-byte entries, no addend)."""
    import struct
    from scall_objtool.core.elf import RelocColumns, Section
    if rel:
        body = b"".join(struct.pack("<QQ", o, (s << 32) | t) for o, t, s, _a in entries)
    else:
        body = b"".join(struct.pack("<QQq", o, (s << 32) | t, a) for o, t, s, a in entries)
    sec = Section(1, 0, 9 if rel else 4, 0, 0, len(lead), len(body), 0, 0, 8, 16 if rel else 24)
    cols = object.__new__(RelocColumns)
    cols._data, cols._sec, cols._words = lead + body, sec, 2 if rel else 3
    return cols


@pytest.mark.parametrize("rel", [False, True])
def test_entries_naming_wanted_symbols_are_found_as_a_scan_of_every_entry(rel):
    """``with_symbols`` gives what a look at every entry gives, on each of its
    paths (few entries share a wanted low byte, many do, many wanted symbols),
    with symbol bytes that also occur in offsets and addends and across two
    fields (a straddling match), and symbols of 3 and 4 bytes."""
    import random
    rng = random.Random(24)
    pool = [1, 2, 3, 0x100, 0x1F4, 0x10000, 0x01F400, 0x1000000, 0xF4000001, 0xFFFFFFFF,
            0x0101, 0x0001F4]
    for trial in range(300):
        n = rng.choice([0, 1, 5, 200, 3000])
        syms = pool + [rng.randrange(1, 5000) for _ in range(20)]
        entries = []
        for _ in range(n):
            s = rng.choice(syms) if rng.random() < 0.7 else rng.choice((2, 3))
            # offsets and addends made of a wanted symbol's bytes
            o = rng.choice([rng.randrange(1 << 20), rng.choice(syms), rng.choice(syms) << 8])
            a = rng.choice([0, -4, rng.choice(syms), rng.choice(syms) << 16])
            entries.append((o, rng.choice((2, 4, 11)), s, a))
        cols = _rela_table(entries, rel=rel)
        wanted = set(rng.sample(syms, rng.choice([1, 2, 5, 16, 17, 30])))
        expect = [(i, e[2]) for i, e in enumerate(entries) if e[2] in wanted]
        assert cols.with_symbols(wanted) == expect, (trial, sorted(wanted))
    # a few entries share a wanted symbol's low byte, and one of them is it
    entries = [(i, 2, 3, 0) for i in range(1000)] + [(0, 4, 0x2F4, 0), (0, 4, 0x1F4, 0),
                                                     (0, 4, 0x1F4 << 8, 0)]
    assert _rela_table(entries, rel=rel).with_symbols({0x1F4, 7}) == [(1001, 0x1F4)]


def test_a_table_of_section_symbols_is_passed_without_an_int_per_entry():
    """An unwind or patch-site table (.orc_unwind_ip: 381,801 of the corpus's
    1.08 M entries) names only section symbols: looking for trampolines in
    it reads one byte an entry and makes no column of Python ints, for a few
    wanted symbols and for many."""
    entries = [(i * 4, 2, 2 + i % 3, i) for i in range(50000)]
    for wanted in ({4007}, {4007, 4100, 5817}, set(range(4007, 4007 + 243))):
        cols = _rela_table(entries)
        assert cols.with_symbols(wanted) == []
        assert "sym" not in cols.__dict__, len(wanted)
    # a few entries whose low byte is a wanted one's: each read alone
    cols = _rela_table(entries + [(0, 4, 4007, -4), (8, 4, 4007 - 256, -4)])
    assert cols.with_symbols({4007}) == [(50000, 4007)]
    assert "sym" not in cols.__dict__


def test_an_object_without_static_calls_makes_two_section_records(no_calls_o, inline_o):
    """A write of an object without static calls makes the records of its
    symbol table and of that table's string table, not one a section (a
    batch reads thousands of such objects); every header is still checked
    (tests/test_robust_mutation.py), and an object with sites makes them all."""
    from scall_objtool.core import Options
    from scall_objtool.core.elf import ElfFile
    from scall_objtool.table.write import decide
    elf = ElfFile(no_calls_o.read_bytes(), str(no_calls_o))
    assert decide(elf, Options(policy="kernel")).action == "unchanged"
    made = [s.name for s in elf._made if s is not None]
    assert sorted(made) == [".strtab", ".symtab"] and len(elf._made) > 10
    elf = ElfFile(inline_o.read_bytes(), str(inline_o))
    assert decide(elf, Options(policy="kernel")).entries
    assert None not in elf._made and [s.index for s in elf.sections] == list(range(len(elf._made)))


@pytest.mark.parametrize("hits", [1, 3, 16, 17, 40])
def test_symbols_named_with_a_prefix_are_found_as_a_scan_of_every_name(hits):
    """``names_with_prefix`` gives what a look at every symbol's name gives,
    searching the name fields for a few string-table hits (a field whose
    bytes straddle two symbols is no match) and scanning the column for
    many; and a second call gives the first answer."""
    import random
    import struct
    from scall_objtool.core.elf import ElfFile, Section, SymbolColumns
    rng = random.Random(hits)
    strtab = bytearray(b"\0")
    offsets = []
    for k in range(hits):
        offsets.append(len(strtab))
        strtab += b"__SCT__key%d\0" % k
    for k in range(300):
        strtab += b"other_%d\0" % k
    strtab = bytes(strtab)
    names = [rng.choice(offsets + [1, len(strtab) - 2] + [o + 3 for o in offsets])
             for _ in range(2000)]
    # a name field whose high bytes and the next field's low byte spell a hit
    assert offsets[0] == 1
    names[7], names[8] = 0x100, 0x200      # bytes 00 01 00 00 | 00 02 00 00
    symtab = b"".join(struct.pack("<IBBHQQ", n, 0x12, 0, 1, 0, 0) for n in names)
    elf = object.__new__(ElfFile)
    elf.data = bytes(8) + symtab
    elf.__dict__.update(symtab=Section(2, 0, 2, 0, 0, 8, len(symtab), 3, 0, 8, 24),
                        strtab=strtab, _prefixed={})
    elf.__dict__["syms"] = SymbolColumns(elf)
    expect = [i for i, n in enumerate(names) if strtab.startswith(b"__SCT__", n)]
    assert elf.names_with_prefix(b"__SCT__") == expect and expect
    assert elf.names_with_prefix(b"__SCT__") == expect



def _both_handles():
    """(the library's cs_disasm/cs_free as attributes, regular handle, quiet handle)."""
    from types import SimpleNamespace

    from scall_objtool.core import decode
    layout = decode._bulk_layout()
    if not layout:
        pytest.skip("capstone's C library is not bound directly")
    return SimpleNamespace(cs_disasm=layout[0], cs_free=layout[1]), layout[2], layout[7]


def _code_sections(path: Path):
    from scall_objtool.core.elf import ElfFile
    elf = ElfFile(path.read_bytes(), str(path))
    return [elf.section_bytes(s) for s in elf.sections if s.executable and s.size]


def test_the_quiet_handle_decodes_every_instruction_as_the_regular_one(inline_o):
    """The handle the prover decodes with formats no text (its printer is
    capstone's cs_support, a no-op for it) and finds the same instructions
    as a regular handle in every code section of real objects: gcc's, the
    prebuilt ones of several compilers, and the assembler's sources with
    prefixes, VEX/EVEX and padding."""
    from scall_objtool.core import decode
    lib, regular, quiet = _both_handles()
    assert quiet != regular         # on this machine's capstone the quiet path is taken
    objects = [Path(inline_o)] + sorted((ROOT / "testdata" / "prebuilt").glob("*.o"))
    checked = 0
    for obj in objects:
        for code in _code_sections(obj):
            want = decode._decoded(lib, regular, code)
            got = decode._decoded(lib, quiet, code)
            assert [w[:2] for w in want] == [g[:2] for g in got], obj
            assert all(w[2] for w in want) and not any(g[2] for g in got), obj
            checked += len(want)
    assert checked > 1000


def test_a_printer_field_that_is_not_the_librarys_is_never_written(monkeypatch):
    """When the third field of a new handle does not hold a function of the
    capstone library itself (another layout), nothing is written there and
    the regular handle decodes for both."""
    import ctypes

    from scall_objtool.core import decode
    lib = ctypes.CDLL(decode._library_path() or "libcapstone.so")
    _lib, regular, _quiet = _both_handles()
    for name, argtypes, restype in (
            ("cs_open", (ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_size_t)),
             ctypes.c_int),
            ("cs_disasm", (ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64,
                           ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p)), ctypes.c_size_t),
            ("cs_free", (ctypes.c_void_p, ctypes.c_size_t), None)):
        getattr(lib, name).argtypes, getattr(lib, name).restype = argtypes, restype
    monkeypatch.setattr(decode, "_object_of", lambda address: address)   # never equal
    assert decode._quiet_handle(lib, regular) == regular
    monkeypatch.undo()
    quiet = decode._quiet_handle(lib, regular)
    assert quiet != regular
    assert [d[:2] for d in decode._decoded(lib, quiet, decode._REFERENCE)] == \
        [d[:2] for d in decode._decoded(lib, regular, decode._REFERENCE)]


@pytest.mark.slow
def test_the_quiet_handle_decodes_the_corpus_as_the_regular_one(corpus):
    """Every code section of every module of Debian's 6.1 cloud corpus
    (1,121 modules): the same instructions from both handles."""
    from scall_objtool.core import decode
    lib, regular, quiet = _both_handles()
    total = 0
    for mod in sorted(corpus.rglob("*.ko")):
        for code in _code_sections(mod):
            want = decode._decoded(lib, regular, code)
            got = decode._decoded(lib, quiet, code)
            assert [w[:2] for w in want] == [g[:2] for g in got], mod
            total += len(want)
    assert total > 3_000_000        # 4.05 M: each section up to its first invalid byte
