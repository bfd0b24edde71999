"""End to end: examples/userspace-static-call patches exactly the sites that
scall-objtool lists.

For every build (-O0, -O2, -O2 -ffunction-sections, and -O2 -fno-plt, where
only the trampolines' hidden visibility keeps the calls direct; PIE and
non-PIE) and
every policy (seed, seed --allow-tail, kernel) the example is compiled with
the machine's gcc, `scall-objtool write` writes the table into demo.o and
hooks.o, the program is linked with static_call_sites.ld and run.  The demo
retargets both static calls twice and prints, after each phase, the
trampolines' destinations, every table entry (key, tail flag, the opcode and
destination read back from memory) and the instructions at the fallback
sites (addresses the test computes from the linked program's symbols and
scall-objtool's JSON report and passes with --peek).  Checked:

- the results are right before and after each static_call_update;
- the table the program walks is, entry for entry, what scall-objtool wrote
  (sites located through the final symbols), and every update rewrites as
  many sites as scall-objtool wrote entries (none refused);
- after an update every listed site calls (E8) or jumps (E9) to the new
  target directly; before, to the trampoline;
- every fallback site still calls or jumps to the trampoline, which jumps to
  the new target; under the seed policy no entry crosses a line.

And the runtime's checks: a seed-policy runtime leaves crossing sites of a
kernel-policy table on the trampoline; a false `--assume-align` promise is
caught at the final address; tables that do not describe the code (wrong
opcode, wrong destination, wrong tail flag) make the update fail without
writing anything.  Finally the README's walk-through runs as written.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from scall_testlib import ROOT, require_tools, scan_lib, write_lib

sys.path.insert(0, str(ROOT / "scripts"))
from tableread import read_table  # noqa: E402

EX = ROOT / "examples" / "userspace-static-call"
RUNTIME = ROOT / "scall_objtool" / "runtime"     # the runtime the package ships
LDSCRIPT = RUNTIME / "static_call_sites.ld"
SOURCES = {"demo": EX, "hooks": EX, "static_call": RUNTIME}
SITE_OBJECTS = ("demo", "hooks")        # the objects with static-call sites

OPTS = {"O0": ("-O0",), "O2": ("-O2",), "O2-fs": ("-O2", "-ffunction-sections"),
        "O2-noplt": ("-O2", "-fno-plt")}
PIC = {"pie": (("-fpie",), ("-pie",)), "nopie": (("-fno-pie",), ("-no-pie",))}
POLICIES = {  # name -> (scall-objtool flags, demo's --policy)
    "seed": (("--policy", "seed"), "seed"),
    "seed-tail": (("--policy", "seed", "--allow-tail"), "seed"),
    "kernel": (("--policy", "kernel"), "kernel"),
}
KEYS = ("sc_op", "sc_scale")
PHASES = {  # phase -> the target of each static call during it
    "initial": {"sc_op": "op_add", "sc_scale": "scale_double"},
    "update1": {"sc_op": "op_mul", "sc_scale": "scale_square"},
    "update2": {"sc_op": "op_sub", "sc_scale": "scale_neg"},
}
OPS = {"op_add": lambda a, b: a + b, "op_mul": lambda a, b: a * b,
       "op_sub": lambda a, b: a - b}
SCALES = {"scale_double": lambda x: 2 * x, "scale_square": lambda x: x * x,
          "scale_neg": lambda x: -x}


def expected_results(phase: str) -> str:
    """demo.c's `results PHASE:` line, computed here from the formulas."""
    op, scale = OPS[PHASES[phase]["sc_op"]], SCALES[PHASES[phase]["sc_scale"]]
    a, b, n, x = 6, 7, 5, 4
    s = 1
    for i in range(1, n + 1):
        s = op(s, i)
    r = {"compute": op(a, b) * 10 + scale(b), "sum_loop": s, "tail_scale": scale(x + 1),
         "cold_path": op(x, 3) + 1, "other_section": scale(x) + 2,
         "asm_tail": scale(x + 3), "crossing_call": scale(x) + 1,
         "hooks_apply": op(x, x) + 1, "run": op(a, x)}
    return " ".join(f"{k}={v}" for k, v in r.items()) + " ok"


# --------------------------------------------------------------- building

def sh(*cmd, cwd=None) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                       timeout=120)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """compiled(opt, pic[, cc]) -> directory with demo.o, hooks.o, static_call.o
    (compiled once per module, copied by each test before writing)."""
    cache: dict[tuple[str, str, str], Path] = {}

    def get(opt: str, pic: str, cc: str = "gcc") -> Path:
        if (opt, pic, cc) not in cache:
            d = tmp_path_factory.mktemp(f"objs-{opt}-{pic}-{cc}")
            for s, where in SOURCES.items():
                sh(cc, "-c", *OPTS[opt], *PIC[pic][0], "-Wall", "-Wextra", "-Werror",
                   f"-I{RUNTIME}", "-o", d / f"{s}.o", where / f"{s}.c")
            cache[opt, pic, cc] = d
        return cache[opt, pic, cc]

    return get


@dataclass
class Program:
    exe: Path
    pic: str
    sites: list[dict]            # scall-objtool's JSON sites of demo.o + hooks.o
    written: int                 # entries in the written tables (read independently)
    symbols: dict[str, int]      # function name -> address in the executable
    base: int                    # __executable_start

    def offset(self, site: dict) -> int:
        """The site's address relative to __executable_start (what demo prints)."""
        return self.symbols[site["function"]] + site["function_offset"] - self.base

    @property
    def listed(self) -> list[dict]:
        return [s for s in self.sites if s["patchable"]]

    @property
    def fallback(self) -> list[dict]:
        return [s for s in self.sites if not s["patchable"]]


def exe_symbols(exe: Path) -> tuple[dict[str, int], int]:
    funcs: dict[str, list[int]] = {}
    base = None
    with open(exe, "rb") as f:
        for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            if s.name == "__executable_start":
                base = s["st_value"]
            elif s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] != "SHN_UNDEF":
                funcs.setdefault(s.name, []).append(s["st_value"])
    assert base is not None, f"{exe}: no __executable_start"
    return {n: v[0] for n, v in funcs.items() if len(set(v)) == 1}, base


def make_program(compiled, tmp_path: Path, opt: str, pic: str, tool_flags=(),
                 extra_objects=(), cc: str = "gcc") -> Program:
    src = compiled(opt, pic, cc)
    for s in SOURCES:
        shutil.copyfile(src / f"{s}.o", tmp_path / f"{s}.o")
    objs = [tmp_path / f"{s}.o" for s in SITE_OBJECTS]
    sites = [s for o in scan_lib(*tool_flags, *objs)["objects"] for s in o["sites"]]
    for o in objs:
        write_lib(*tool_flags, o)
    written = sum(len(read_table(o) or []) for o in objs)
    exe = tmp_path / "demo"
    sh(cc, *PIC[pic][1], "-o", exe, *objs, tmp_path / "static_call.o", *extra_objects,
       f"-Wl,-T,{LDSCRIPT}")
    symbols, base = exe_symbols(exe)
    for s in sites:
        assert s["function"] in symbols, f"site in {s['function']!r}: no unique symbol"
    return Program(exe, pic, sites, written, symbols, base)


# ------------------------------------------------------------ the output

@dataclass
class Insn:
    site: int
    op: str
    dest: str
    cross: int
    key: str | None = None
    tail: int | None = None


@dataclass
class Phase:
    tramp: dict[str, str] = field(default_factory=dict)
    count: int | None = None
    entries: list[Insn] = field(default_factory=list)
    peeks: list[Insn] = field(default_factory=list)
    results: str | None = None
    wx: int | None = None


_ENTRY = re.compile(r"entry (\d+) key (\S+) tail (\d) site \+(\S+) op ([0-9a-f]{2}) dest (\S+) cross (\d)$")
_PEEK = re.compile(r"peek \+(\S+) op ([0-9a-f]{2}) dest (\S+) cross (\d)$")
_UPDATE = re.compile(r"update (\S+) -> (\S+): entries (\d+) rewritten (\d+) refused (\d+)$")


def parse(out: str) -> tuple[dict[str, Phase], list[tuple[str, str, int, int, int]]]:
    phases: dict[str, Phase] = {}
    updates = []
    cur = None
    for line in out.splitlines():
        if m := re.fullmatch(r"phase (\S+)", line):
            cur = phases.setdefault(m[1], Phase())
        elif m := re.fullmatch(r"tramp (\S+) -> (\S+)", line):
            cur.tramp[m[1]] = m[2]
        elif m := re.fullmatch(r"entries (\d+)", line):
            cur.count = int(m[1])
        elif m := _ENTRY.fullmatch(line):
            cur.entries.append(Insn(int(m[4], 16), m[5], m[6], int(m[7]), m[2], int(m[3])))
        elif m := _PEEK.fullmatch(line):
            cur.peeks.append(Insn(int(m[1], 16), m[2], m[3], int(m[4])))
        elif m := re.fullmatch(r"wx-mappings (-?\d+)", line):
            cur.wx = int(m[1])
        elif m := re.fullmatch(r"results (\S+): (.*)", line):
            phases[m[1]].results = m[2]
        elif m := _UPDATE.fullmatch(line):
            updates.append((m[1], m[2], int(m[3]), int(m[4]), int(m[5])))
    return phases, updates


def run_demo(prog: Program, runtime_policy: str, peek: list[dict] = (), expect_rc=0):
    args = [str(prog.exe), "--policy", runtime_policy]
    for s in peek:
        args += ["--peek", f"{prog.offset(s):x}"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert p.returncode == expect_rc, f"{args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert p.stdout.startswith(f"policy {runtime_policy}\n")
    phases, updates = parse(p.stdout)
    return p, phases, updates


def key_of(site: dict) -> str:
    assert site["key"].startswith("__SCK__")
    return site["key"][len("__SCK__"):]


def opcode(site: dict) -> str:
    return {"call": "e8", "tail": "e9"}[site["kind"]]


# ------------------------------------------------------------------ tests

#: the builds of the matrix that the everyday run (-m "not slow") takes: every
#: optimisation, PIE and not, every policy, each at least once
EVERYDAY = {("O0", "nopie", "kernel"), ("O2", "pie", "seed-tail"), ("O2-fs", "nopie", "seed"),
            ("O2-noplt", "pie", "kernel"), ("O2-noplt", "nopie", "seed")}


@pytest.mark.parametrize("opt,pic,policy", [
    pytest.param(o, p, pol, id=f"{o}-{p}-{pol}",
                 marks=() if (o, p, pol) in EVERYDAY else pytest.mark.slow)
    for o in OPTS for p in PIC for pol in POLICIES])
def test_demo_patches_what_the_tool_lists(compiled, tmp_path, opt, pic, policy):
    tool_flags, runtime_policy = POLICIES[policy]
    prog = make_program(compiled, tmp_path, opt, pic, tool_flags)

    # What scall-objtool says about the demo's sites.
    assert {s["kind"] for s in prog.sites} <= {"call", "tail"}
    assert len(prog.sites) == 10
    assert prog.written == len(prog.listed) >= 3
    by_fn = {s["function"]: s for s in prog.sites}
    crossing, asm_tail = by_fn["crossing_call"], by_fn["asm_tail"]
    assert (crossing["kind"], crossing["crossing"]) == ("call", "always")
    assert (asm_tail["kind"], asm_tail["crossing"]) == ("tail", "never")
    if policy == "kernel":
        assert not prog.fallback
    else:
        assert crossing["reason"] == "crosses-cache-line"
        assert asm_tail["patchable"] == (policy == "seed-tail")
        assert all(s["reason"] in ("crosses-cache-line", "may-cross-cache-line", "tail-call")
                   for s in prog.fallback)
        assert len(prog.fallback) >= 2

    p, phases, updates = run_demo(prog, runtime_policy, prog.fallback)
    assert list(phases) == list(PHASES)

    want_entries = sorted((prog.offset(s), key_of(s), int(s["kind"] == "tail"), opcode(s))
                          for s in prog.listed)
    for name, targets in PHASES.items():
        ph = phases[name]
        assert ph.results == expected_results(name), f"{name}:\n{p.stdout}"
        assert ph.tramp == targets
        assert ph.wx == 0, "a mapping was left writable and executable"
        # The table the program walks is the one scall-objtool wrote.
        assert ph.count == prog.written == len(ph.entries)
        assert sorted((e.site, e.key, e.tail, e.op) for e in ph.entries) == want_entries
        for e in ph.entries:
            # Listed sites call the trampoline at first, the new target directly after.
            want = f"__SCT__{e.key}" if name == "initial" else targets[e.key]
            assert e.dest == want, f"{name}: entry at +{e.site:#x}: {e}\n{p.stdout}"
            if runtime_policy == "seed":
                assert not e.cross
        # Fallback sites never change: they reach the target via the trampoline.
        assert len(ph.peeks) == len(prog.fallback)
        for pk, s in zip(ph.peeks, prog.fallback):
            assert pk.site == prog.offset(s)
            assert (pk.op, pk.dest) == (opcode(s), s["trampoline"]), f"{name}: {s}"

    # Each update rewrites exactly the entries of its key; all of them together
    # are the entries scall-objtool wrote.
    per_key = {k: sum(key_of(s) == k for s in prog.listed) for k in KEYS}
    assert [(u[0], u[1]) for u in updates] == [
        ("sc_op", "op_mul"), ("sc_scale", "scale_square"),
        ("sc_op", "op_sub"), ("sc_scale", "scale_neg")]
    for key, _, entries, rewritten, refused in updates:
        assert (entries, rewritten, refused) == (per_key[key], per_key[key], 0)
    assert sum(u[3] for u in updates[:2]) == sum(u[3] for u in updates[2:]) == prog.written

    if policy == "kernel":
        # The crossing site is listed, crosses where it is, and is rewritten.
        e = next(e for e in phases["update1"].entries if e.site == prog.offset(crossing))
        assert (e.cross, e.dest) == (1, "scale_square")


@pytest.mark.parametrize("policy", ["seed", "kernel"])
@pytest.mark.parametrize("pic", list(PIC))
def test_demo_with_clang(compiled, tmp_path, pic, policy):
    """The demo built with clang (its own choices of sites and alignment):
    right results in every phase, and every listed site calls the new
    target directly after each update, every fallback site the trampoline."""
    require_tools("clang")
    tool_flags, runtime_policy = POLICIES[policy]
    prog = make_program(compiled, tmp_path, "O2", pic, tool_flags, cc="clang")
    assert prog.written == len(prog.listed) >= 3
    p, phases, updates = run_demo(prog, runtime_policy, prog.fallback)
    for name, targets in PHASES.items():
        ph = phases[name]
        assert ph.results == expected_results(name), p.stdout
        assert ph.tramp == targets and ph.wx == 0
        assert ph.count == prog.written == len(ph.entries)
        for e in ph.entries:
            assert e.dest == (f"__SCT__{e.key}" if name == "initial" else targets[e.key])
        for pk, s in zip(ph.peeks, prog.fallback):
            assert (pk.op, pk.dest) == (opcode(s), s["trampoline"])
    assert all(u[3] == u[2] and u[4] == 0 for u in updates), updates


def test_seed_runtime_leaves_crossing_sites_of_a_kernel_table(compiled, tmp_path):
    """A kernel-policy table run with the seed checks: the sites that cross a
    line stay on the trampoline (refused) and the results are still right."""
    prog = make_program(compiled, tmp_path, "O2", "pie", ("--policy", "kernel"))
    p, phases, updates = run_demo(prog, "seed")
    crossing = {prog.offset(s) for s in prog.listed if s["crossing"] == "always"}
    assert crossing, "the demo has a site that always crosses"
    for name, targets in PHASES.items():
        ph = phases[name]
        assert ph.results == expected_results(name)
        for e in ph.entries:
            direct = name != "initial" and not e.cross
            assert e.dest == (targets[e.key] if direct else f"__SCT__{e.key}")
        assert crossing <= {e.site for e in ph.entries if e.cross}
    n_cross = sum(e.cross for e in phases["initial"].entries)
    assert sum(u[4] for u in updates[:2]) == n_cross >= 1
    assert sum(u[3] + u[4] for u in updates[:2]) == prog.written


PROMISE_S = """\
/* A site that the false promise --assume-align 64 lets the seed policy list,
 * but that crosses a line in the linked program: the default script places
 * .text.sorted.* sorted by name, so .text.sorted.1 starts at a 64-aligned
 * address + 48 and the call at offset 12 sits at 60..64. */
	.section .text.sorted.0, "ax", @progbits
	.p2align 6
	.fill	48, 1, 0xcc
	.section .text.sorted.1, "ax", @progbits
	.p2align 4
	.globl	promise_call
	.type	promise_call, @function
promise_call:
	.fill	12, 1, 0x90
	call	__SCT__sc_scale
	ret
	.size	promise_call, . - promise_call
	.section .note.GNU-stack, "", @progbits
"""


def _alignment(obj, name):
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as f:
        return ELFFile(f).get_section_by_name(name)["sh_addralign"]


def test_alignment_promise_is_kept_by_the_written_object(compiled, tmp_path):
    """With --assume-align the written section carries the alignment the
    classification relied on, so the linked site really never crosses."""
    src = tmp_path / "promise.S"
    src.write_text(PROMISE_S)
    obj = tmp_path / "promise.o"
    sh("gcc", "-c", "-o", obj, src)
    write_lib("--assume-align", "64", obj)
    prog = make_program(compiled, tmp_path, "O2", "pie", ("--policy", "seed"),
                        extra_objects=[obj])
    site = prog.symbols["promise_call"] + 12 - prog.base
    assert prog.symbols["promise_call"] % 64 == 0
    p, phases, updates = run_demo(prog, "seed")
    for name, targets in PHASES.items():
        ph = phases[name]
        assert ph.results == expected_results(name)
        e = next(e for e in ph.entries if e.site == site)
        assert (e.key, e.op, e.cross) == ("sc_scale", "e8", 0)
        if name != "initial":
            assert e.dest == targets["sc_scale"]     # patched directly


@pytest.mark.parametrize("runtime_policy", ["seed", "kernel"])
def test_false_alignment_promise_is_caught_at_run_time(compiled, tmp_path, runtime_policy):
    src = tmp_path / "promise.S"
    src.write_text(PROMISE_S)
    obj = tmp_path / "promise.o"
    sh("gcc", "-c", "-o", obj, src)
    honest = scan_lib(obj)["objects"][0]["sites"]
    assert [(s["crossing"], s["patchable"]) for s in honest] == [("depends", False)]
    write_lib("--assume-align", "64", obj)
    assert len(read_table(obj)) == 1
    # scall-objtool makes its promise hold: the section it relied on is now
    # 64-aligned in the written object.  Break the promise behind its back
    # (as a later tool could) to show that the runtime still catches it.
    assert _alignment(obj, ".text.sorted.1") == 64
    sh("objcopy", "--set-section-alignment", ".text.sorted.1=16", obj)
    assert _alignment(obj, ".text.sorted.1") == 16

    prog = make_program(compiled, tmp_path, "O2", "pie", ("--policy", "seed"),
                        extra_objects=[obj])
    site = prog.symbols["promise_call"] + 12 - prog.base
    p, phases, updates = run_demo(prog, runtime_policy)
    for name, targets in PHASES.items():
        ph = phases[name]
        assert ph.results == expected_results(name)
        assert ph.count == prog.written + 1
        e = next(e for e in ph.entries if e.site == site)
        assert (e.key, e.op, e.cross) == ("sc_scale", "e8", 1)
        if name != "initial" and runtime_policy == "kernel":
            assert e.dest == targets["sc_scale"]
        else:
            assert e.dest == "__SCT__sc_scale"
    refused = {u[0]: u[4] for u in updates[:2]}
    assert refused == ({"sc_op": 0, "sc_scale": 1} if runtime_policy == "seed"
                       else {"sc_op": 0, "sc_scale": 0})


BAD_S = """\
	.text
	.globl	bad_site_fn
	.type	bad_site_fn, @function
bad_site_fn:
.ifdef BAD_OPCODE
1:	nopl	0x0(%rax,%rax,1)		/* 0f 1f 44 00 00 */
.endif
.ifdef BAD_DEST
1:	call	op_sub				/* neither the trampoline nor the
						   current target op_add */
.endif
.ifdef BAD_FLAG
1:	call	__SCT__sc_op			/* a call, flagged as a tail call */
.endif
	ret
	.size	bad_site_fn, . - bad_site_fn

	.section .static_call_sites, "aw", @progbits
	.long	1b - .
.ifdef BAD_FLAG
	.long	__SCK__sc_op + 1 - .
.else
	.long	__SCK__sc_op - .
.endif
	.section .note.GNU-stack, "", @progbits
"""


@pytest.mark.parametrize("bad,why", [
    ("BAD_OPCODE", "not an E8 call or E9 jmp rel32"),
    ("BAD_DEST", "destination is neither the trampoline nor the current target"),
    ("BAD_FLAG", "tail flag set but the site is a call (E8)"),
])
def test_bad_table_entry_changes_nothing(compiled, tmp_path, bad, why):
    src = tmp_path / "bad.S"
    src.write_text(BAD_S)
    obj = tmp_path / "bad.o"
    sh("gcc", "-c", f"-Wa,--defsym,{bad}=1", "-o", obj, src)
    prog = make_program(compiled, tmp_path, "O2", "pie", ("--policy", "seed"),
                        extra_objects=[obj])
    p, phases, updates = run_demo(prog, "seed", expect_rc=1)
    assert phases["initial"].results == expected_results("initial")
    assert "update sc_op -> op_mul: FAILED (Invalid argument)" in p.stdout
    assert why in p.stderr and "nothing changed" in p.stderr
    # Nothing was written: the trampolines and all sites are as they were.
    failed = phases["failed"]
    assert failed.tramp == PHASES["initial"]
    assert failed.count == prog.written + 1
    bad_site = prog.symbols["bad_site_fn"] - prog.base
    for e in failed.entries:
        if e.site == bad_site:
            assert (e.key, e.tail, e.op, e.dest) == {
                "BAD_OPCODE": ("sc_op", 0, "0f", "-"),
                "BAD_DEST": ("sc_op", 0, "e8", "op_sub"),
                "BAD_FLAG": ("sc_op", 1, "e8", "__SCT__sc_op")}[bad]
        else:
            assert e.dest == f"__SCT__{e.key}"
    assert sorted(e.site for e in failed.entries) == sorted(
        [bad_site] + [prog.offset(s) for s in prog.listed])
    assert not updates


def test_readme_walkthrough(tmp_path):
    """The README's build-and-run block, run as written in a copy of the
    example directory (scall-objtool on PATH runs this checkout)."""
    readme = (EX / "README.md").read_text()
    m = re.search(r"<!-- walkthrough -->\s*```sh\n(.*?)```", readme, re.S)
    assert m, "README.md: no walk-through block"
    work = tmp_path / "example"
    shutil.copytree(EX, work)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "scall-objtool"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m scall_objtool \"$@\"\n")
    shim.chmod(0o755)
    # the walk-through asks `python3` for the runtime's directory: this one
    (bindir / "python3").symlink_to(sys.executable)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", m[1]], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"{m[1]}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}"
    for name in PHASES:
        assert f"results {name}: {expected_results(name)}" in p.stdout
    assert re.search(r"wrote \d+ entries", p.stdout + p.stderr)
