"""Shared test helpers (conftest.py keeps only the fixtures).

- paths of the checkout and its test data; running the CLI (`run_cli`),
  objtool (`run_objtool`), `as` and `gcc`; fetching the Debian data;
- counting work instead of timing it (`python_lines`);
- independent readers used to check what scall-objtool reports and writes:
  the .static_call_sites table (pyelftools), objdump's view of the branches to
  trampolines, symbols, sections, and the crossing rule;
- the same report through the CLI (`scan`) or the library (`scan_lib`)."""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

import cliserver

R_X86_64_PC32 = 2
TABLE = ".static_call_sites"
RELA_TABLE = ".rela.static_call_sites"

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"
SRC = TESTDATA / "src"
PREBUILT = TESTDATA / "prebuilt"


# ------------------------------------------------------------ processes
@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_cli(*args, cwd=None, env=None, timeout=120) -> Result:
    """Run `python -m scall_objtool ARGS` (see cliserver.py) and capture everything."""
    full_env = dict(os.environ)
    full_env.pop("SRCARCH", None)
    if env:
        full_env.update(env)
    p = cliserver.run(args, cwd=cwd, env=full_env, timeout=timeout, text=True)
    return Result(p.returncode, p.stdout, p.stderr)


# ------------------------------------------------------------ packages
INSTALL_HINT = "run scripts/install-debian-deps (the packages of scripts/debian-packages/*.txt)"


def missing_tool_message(*names: str) -> str:
    return f"{', '.join(names)} not installed: {INSTALL_HINT}"


def require_tools(*names: str) -> None:
    """Fail (never skip: a CI run must not go green without them) when a
    program the test runs is not installed."""
    import pytest
    missing = [n for n in names if shutil.which(n) is None and not Path(n).exists()]
    if missing:
        pytest.fail(missing_tool_message(*missing), pytrace=False)


# ------------------------------------------------------------ work counts
def python_lines(fn, *args, **kwargs):
    """(fn(*args, **kwargs), the number of Python lines it executed).

    A count of work that a busy machine cannot change: cost tests compare
    these counts at 1x and 4x the input instead of timing the two runs.  A
    loop's every pass counts (a backward jump is a line event), in
    comprehensions too; work done inside one C call (a ``bytes.find``) counts
    once, so a test of such a path counts what it reads as well."""
    count = 0

    def local(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return local

    previous = sys.gettrace()
    sys.settrace(lambda frame, event, arg: local)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.settrace(previous)
    return result, count


def traced_peak(fn, *args, **kwargs):
    """(fn(*args, **kwargs), the peak of Python's allocations meanwhile, in
    bytes, from tracemalloc): a memory bound a busy machine cannot change."""
    import tracemalloc
    tracemalloc.start()
    try:
        result = fn(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assemble(src: Path, out: Path, *flags: str) -> Path:
    subprocess.run(["as", "--64", *flags, "-o", str(out), str(src)], check=True,
                   capture_output=True, text=True)
    return out


def compile_c(src: Path, out: Path, *flags: str) -> Path:
    subprocess.run(["gcc", "-c", *flags, "-o", str(out), str(src)], check=True,
                   capture_output=True, text=True)
    return out


def inlined_wrapper_object(tmp_path: Path, name: str, callers: int) -> Path:
    """gcc -O2 -g of ``callers`` functions that each call the static call
    ``hook`` through one always-inlined ``wrapper`` (as the kernel's
    cond_resched() is inlined into most functions): an object with that many
    sites and as many inlined instances of one function."""
    src = tmp_path / f"{name}.c"
    src.write_text(f'#include "{SRC}/static_call.h"\n'
                   "int target(int x);\nDECLARE_STATIC_CALL(hook, target);\n"
                   "static inline __attribute__((always_inline)) int wrapper(int x)\n"
                   "{ return static_call(hook)(x); }\n"
                   + "".join(f"int caller{i}(int x) {{ return wrapper(x + {i}) * {i + 2}; }}\n"
                             for i in range(callers)))
    return compile_c(src, tmp_path / f"{name}.o", "-O2", "-g")


def near_and_full(elf, sec, offsets) -> tuple:
    """(FunctionIndex of ``offsets`` in ``sec`` as built, the same built by
    the full pass over the section's symbols, ``decode._near`` off)."""
    from scall_objtool.core import decode
    fast = decode.FunctionIndex(elf, sec, offsets)
    real = decode._near
    decode._near = lambda *a: None
    try:
        full = decode.FunctionIndex(elf, sec, offsets)
    finally:
        decode._near = real
    return fast, full


def build_source(name: str, dst: Path, *flags: str) -> Path:
    """Assemble or compile testdata/src/NAME into DST."""
    src = SRC / name
    if src.suffix in (".S", ".s"):
        return assemble(src, dst, *flags)
    return compile_c(src, dst, *flags)


class FetchError(Exception):
    pass


def fetch_debian(what: str) -> Path:
    """scripts/fetch-debian WHAT (objtool, corpus, vmlinux): the path it prints."""
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch-debian"), what],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise FetchError(f"cannot fetch {what}: {p.stderr.strip()}")
    return Path(p.stdout.strip().splitlines()[-1])


def run_objtool(objtool: Path, obj: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(objtool), "--static-call", *flags, str(obj)],
                          capture_output=True, text=True, timeout=120)


def copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


# --------------------------------------------------------------------- ELF
def sections(path: Path) -> dict[str, dict]:
    """name -> {index, align, flags, size, type} (first section of a name)."""
    out: dict[str, dict] = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        for i, s in enumerate(elf.iter_sections()):
            out.setdefault(s.name, {"index": i, "align": s["sh_addralign"],
                                    "flags": s["sh_flags"], "size": s["sh_size"],
                                    "type": s["sh_type"], "entsize": s["sh_entsize"]})
    return out


def section_names(path: Path) -> list[str]:
    with open(path, "rb") as f:
        return [s.name for s in ELFFile(f).iter_sections()]


def section_bytes(path: Path, name: str) -> bytes:
    with open(path, "rb") as f:
        return ELFFile(f).get_section_by_name(name).data()


def symbols(path: Path) -> list[dict]:
    """Every .symtab entry as {index, name, bind, type, shndx, value, size}."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        tab = elf.get_section_by_name(".symtab")
        return [{"index": i, "name": s.name, "bind": s["st_info"]["bind"],
                 "type": s["st_info"]["type"], "shndx": s["st_shndx"],
                 "value": s["st_value"], "size": s["st_size"]}
                for i, s in enumerate(tab.iter_symbols())]


def symbol(path: Path, name: str) -> dict | None:
    found = [s for s in symbols(path) if s["name"] == name]
    assert len(found) <= 1, f"{name} defined {len(found)} times in {path}"
    return found[0] if found else None


def functions(path: Path) -> dict[str, tuple[str, int, int]]:
    """STT_FUNC name -> (section name, value, size)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        tab = elf.get_section_by_name(".symtab")
        out = {}
        for s in tab.iter_symbols():
            if s["st_info"]["type"] == "STT_FUNC" and isinstance(s["st_shndx"], int):
                out[s.name] = (elf.get_section(s["st_shndx"]).name, s["st_value"], s["st_size"])
        return out


def read_table_raw(path: Path, check_entsize: bool = True) -> list[tuple[str, int, str, int]] | None:
    """The entries of .static_call_sites in file order, each as
    (site section, site offset, key symbol, flags), or None without a table.

    Checks the table's shape on the way: entsize 8, SHF_ALLOC, exactly one
    R_X86_64_PC32 relocation at 8*i and one at 8*i+4 for every entry."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        names = [s.name for s in elf.iter_sections()]
        if TABLE not in names:
            assert RELA_TABLE not in names, f"{path}: {RELA_TABLE} without {TABLE}"
            return None
        assert names.count(TABLE) == 1, f"{path}: {names.count(TABLE)} {TABLE} sections"
        assert names.count(RELA_TABLE) == 1, f"{path}: {names.count(RELA_TABLE)} {RELA_TABLE}"
        tidx = names.index(TABLE)
        table = elf.get_section(tidx)
        rela = elf.get_section_by_name(RELA_TABLE)
        assert table["sh_size"] % 8 == 0, f"{path}: table size {table['sh_size']}"
        if check_entsize:
            assert table["sh_entsize"] == 8, f"{path}: table entsize {table['sh_entsize']}"
        assert table["sh_flags"] & 0x2, f"{path}: table is not SHF_ALLOC"
        assert rela["sh_info"] == tidx, f"{path}: {RELA_TABLE} applies to section {rela['sh_info']}"
        symtab = elf.get_section(rela["sh_link"])
        n = table["sh_size"] // 8
        by_off = {}
        for r in rela.iter_relocations():
            assert r["r_info_type"] == R_X86_64_PC32, f"{path}: reloc type {r['r_info_type']}"
            assert r["r_offset"] not in by_off, f"{path}: two relocs at {r['r_offset']:#x}"
            by_off[r["r_offset"]] = r
        assert set(by_off) == {8 * i + d for i in range(n) for d in (0, 4)}, \
            f"{path}: relocations at {sorted(by_off)} for {n} entries"
        entries = []
        for i in range(n):
            a, k = by_off[8 * i], by_off[8 * i + 4]
            asym = symtab.get_symbol(a["r_info_sym"])
            assert isinstance(asym["st_shndx"], int) and asym["st_shndx"] > 0, \
                f"{path}: entry {i} addr relocation against undefined {asym.name!r}"
            site_sec = elf.get_section(asym["st_shndx"]).name
            entries.append((site_sec, asym["st_value"] + a["r_addend"],
                            symtab.get_symbol(k["r_info_sym"]).name, k["r_addend"]))
        return entries


def read_table(path: Path, check_entsize: bool = True) -> list[tuple[str, int, str, int]] | None:
    raw = read_table_raw(path, check_entsize)
    return None if raw is None else sorted(raw)


# ------------------------------------------------------------------ objdump
_SEC = re.compile(r"^Disassembly of section (\S+):$")
_INSN = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(.*)$")
_CONT = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*$")
_RELOC = re.compile(r"^\s+([0-9a-f]+): (R_X86_64_\w+)\s+(\S+)$")
_PREFIX_WORDS = {"cs", "ds", "addr32", "data16", "notrack", "bnd", "rex", "rex.W"}


def objdump_branches(path: Path, tramp_prefix: str = "__SCT__") -> dict:
    """What `objdump -dr` shows relocated against a trampoline in code:
    {"sites": {(section, insn offset): (kind, symbol)} for direct call/jmp/jcc
    whose rel32 is relocated to symbol-4 with PLT32 or PC32,
    "other": [(section, reloc offset, type, target)] for the rest}."""
    out = subprocess.run(["objdump", "-dr", str(path)], check=True,
                         capture_output=True, text=True).stdout
    sec = None
    last = None
    sites, other = {}, []
    for line in out.splitlines():
        m = _SEC.match(line)
        if m:
            sec, last = m.group(1), None
            continue
        m = _RELOC.match(line)
        if m:
            off, rtype, target = int(m.group(1), 16), m.group(2), m.group(3)
            if not target.startswith(tramp_prefix):
                continue
            sym, _, addend = target.partition("-")
            words = last[2].split() if last else []
            while words and words[0] in _PREFIX_WORDS:
                words.pop(0)
            mnem = words[0] if words else ""
            if (rtype in ("R_X86_64_PLT32", "R_X86_64_PC32") and addend == "0x4"
                    and "+" not in sym and last and off == last[0] + last[1] - 4
                    and (mnem == "call" or mnem.startswith("j"))):
                kind = "call" if mnem == "call" else ("tail" if mnem == "jmp" else "jcc-tail")
                sites[(sec, last[0])] = (kind, sym)
            else:
                other.append((sec, off, rtype, target))
            continue
        m = _INSN.match(line)
        if m:
            nbytes = len(m.group(2).split())
            last = (int(m.group(1), 16), nbytes, m.group(3))
            continue
        m = _CONT.match(line)
        if m and last:      # the rest of a long instruction's bytes
            last = (last[0], last[1] + len(m.group(2).split()), last[2])
    return {"sites": sites, "other": other}


# ----------------------------------------------------------------- crossing
def crossing(offset: int, length: int, addralign: int, cache_line: int = 64,
             assume_align: int | None = None) -> str:
    g = math.gcd(max(addralign or 1, assume_align or 1), cache_line)
    o = offset % g
    if o + length <= g:
        return "never"
    if o + length > cache_line:
        return "always"
    return "depends"


def effective_alignment(addralign: int, cache_line: int = 64,
                        assume_align: int | None = None) -> int:
    return math.gcd(max(addralign or 1, assume_align or 1), cache_line)


# ---------------------------------------------------------------- the CLI
def scan(cli, *args) -> dict:
    r = cli("scan", "--format", "json", *args)
    assert r.rc == 0, f"scan {args} -> rc {r.rc}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    return r.json()


def sites_of(report: dict, i: int = 0) -> list[dict]:
    return report["objects"][i]["sites"]


def by_pos(report: dict, i: int = 0) -> dict[tuple[str, int], dict]:
    return {(s["section"], s["offset"]): s for s in sites_of(report, i)}


def write_ok(cli, *args):
    r = cli("write", *args)
    assert r.rc == 0, f"write {args} -> rc {r.rc}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    return r


def expected_table(report: dict, i: int = 0) -> list[tuple[str, int, str, int]]:
    """The table that the report's patchable sites call for (key names as
    the report gives them)."""
    return sorted((s["section"], s["offset"], s["key"],
                   1 if s["kind"] in ("tail", "jcc-tail") else 0)
                  for s in sites_of(report, i) if s["patchable"])


def assert_error_line(r, path=None):
    """Exit 2, and an error line in the contract's format, no traceback."""
    assert r.rc == 2, f"rc {r.rc}, stderr: {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    errs = [l for l in r.stderr.splitlines() if l.startswith("scall-objtool: error: ")]
    assert len(errs) == 1, f"expected one error line, got: {r.stderr!r}"
    if path is not None:
        assert errs[0].startswith(f"scall-objtool: error: {path}: "), errs[0]
    return errs[0]


# ------------------------------------------------------------ the library
#: the options of each command that the library takes besides ``Options``
_LIBRARY_OPTIONS = {"scan": set(), "write": {"output", "force", "dry_run", "backup"}}


def parse_args(command: str, args):
    """CLI-style arguments of ``command`` -> (scall_objtool.Options, the
    command's other values by option dest), parsed by the same option table the
    CLI uses, for tests that state options as the CLI spells them but call the
    library.  An option the library does not take is a test error."""
    from scall_objtool.cli import parse
    from scall_objtool.options import COMMANDS, options_of
    parsed = parse([command, *map(str, args)])
    assert parsed is not None, f"{command} {args}: not a well-formed command line"
    options, values = options_of(COMMANDS[command], parsed[1])
    for opt in COMMANDS[command].options:
        if opt.dest not in values:
            continue                    # a field of Options
        given = values[opt.dest] != (False if opt.kind == "flag" else opt.default)
        assert not given or opt.dest in _LIBRARY_OPTIONS[command], \
            f"{opt.flags[0]}: not a library option; test it through the CLI"
    return options, values


def scan_lib(*args) -> dict:
    """`scan --format json ARGS` through the library (scan_path on each
    object file): the same report, as a dict."""
    from scall_objtool import scan_path
    from scall_objtool.report.jsondoc import scan_doc    # the JSON renderer
    options, values = parse_args("scan", args)
    results = [scan_path(p, options) for p in values["paths"]]
    return json.loads(json.dumps(scan_doc(results, options)))


def write_lib(*args):
    """`write ARGS` on one object through the library (scall_objtool.write_path);
    returns its outcome."""
    from scall_objtool import write_path
    options, values = parse_args("write", args)
    assert len(values["paths"]) == 1, f"write_lib takes one object, not {values['paths']}"
    return write_path(values["paths"][0], options, output=values["output"],
                      force=values["force"], dry_run=values["dry_run"],
                      backup=values["backup"])
