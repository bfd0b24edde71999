"""The C runtime the package ships (scall_objtool/runtime), patching live.

examples/runtime-stress is built with the runtime from the package and
tables written by this checkout's `scall-objtool write` (seed policy with
--allow-prefixed for the store and the prefix patchers, kernel policy for the
breakpoint patcher), with gcc and clang, PIE and non-PIE.  Caller threads check every landing while one
thread retargets both static calls as fast as it can; the program then reads
back every listed site.  Checked: no wrong landing, no crash, every site the
patcher rewrites calls the current target directly (the others the
trampoline), as many listed sites as scall-objtool wrote entries; the
breakpoint and prefix patchers really went through their SIGTRAP handler.
The controls' crashes must all be explained by a torn displacement (the
prefix patcher's control must crash).  And the benchmark and the two scripts
run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import runtime_build  # noqa: E402
from tableread import read_table  # noqa: E402

from scall_objtool import runtime  # noqa: E402

LAST = re.compile(r"stress (\S+): (\d+) calls, (\d+) updates, (\d+) wrong, (\d+) crashes$")
FINAL = re.compile(r"^final: entries (\d+), direct (\d+), via-trampoline (\d+), bad (\d+)$", re.M)
HEAD = re.compile(r"stress (\S+): (\d+) sites, (\d+) listed in the table \((\d+) crossing a "
                  r"line\), (\d+) cs-prefixed, (\d+) the patcher's")
STRESS_SITES = 19           # stress.c's site list
PREFIXED_SITES = 7          # of which cs-prefixed (2E E8)


def test_runtime_path_holds_the_sources_the_package_ships():
    d = runtime.path()
    assert d == ROOT / "scall_objtool" / "runtime"
    for name in runtime.FILES:
        assert (d / name).is_file(), name
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    from setuptools import find_packages
    assert "scall_objtool.runtime" in find_packages(str(ROOT), **cfg["packages"]["find"])
    patterns = cfg["package-data"]["scall_objtool.runtime"]
    for name in runtime.FILES:
        assert any(fnmatch(name, p) for p in patterns), f"{name} not package data"
    # the example's sources are no longer copies of the runtime
    assert not list((ROOT / "examples").rglob("static_call.[ch]"))


def test_importing_the_runtime_module_is_cheap():
    code = ("import sys, scall_objtool.runtime as r; r.path(); "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'capstone', 'elftools', 'typer', 'rich'))))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ""


@pytest.fixture(scope="module")
def stress_build(tmp_path_factory):
    cache: dict[tuple[str, bool], dict[str, Path]] = {}

    def get(cc: str, pie: bool) -> dict[str, Path]:
        if (cc, pie) not in cache:
            out = tmp_path_factory.mktemp(f"stress-{cc}-{'pie' if pie else 'nopie'}")
            try:
                cache[cc, pie] = runtime_build.build_stress(out, cc, pie)
            except runtime_build.BuildError as e:
                pytest.fail(str(e))
        return cache[cc, pie]

    return get


def written_entries(exe: Path) -> int:
    """Entries scall-objtool wrote into the program's site objects."""
    return sum(len(read_table(exe.parent / o) or []) for o in ("stress_sites.o", "stress_asm.o"))


def run_stress(exe: Path, patcher: str, seconds: float, env=None):
    if patcher.startswith("prefix"):       # as scripts/runtime-stress runs them
        env = {"STATIC_CALL_WRITE_SPACING": "5", **(env or {})}
    p = subprocess.run([str(exe), "--patcher", patcher, "--seconds", str(seconds),
                        "--threads", "4"], capture_output=True, text=True,
                       timeout=seconds + 60, env=dict(os.environ, **(env or {})))
    lines = p.stdout.splitlines()
    assert lines and (m := LAST.fullmatch(lines[-1])), f"{p.stdout}\n{p.stderr}"
    assert m[1] == patcher
    calls, updates, wrong, crashes = map(int, m.groups()[1:])
    return p, calls, updates, wrong, crashes


#: how many times a stress run that did too little to have raced is run
#: again, each time twice as long (1 s: 1, 2, 4, 8 s at most)
LONGER = 3


def run_until(exe: Path, patcher: str, seconds: float, enough, env=None, check=None):
    """``run_stress``, run again twice as long (at most LONGER times) until
    ``enough(p, calls, updates, wrong, crashes)``: how much racing a run
    gets done depends on the machine's load (a busy one gives far fewer
    calls a second), so the amount of work is asserted, never a rate, and a
    run that fell short is not a failure but a reason to run longer.
    ``check`` is applied to every run (what must hold however long it ran:
    no wrong landing, no crash).  Returns the last run."""
    for k in range(LONGER + 1):
        run = run_stress(exe, patcher, seconds * 2 ** k, env)
        if check is not None:
            check(*run)
        if enough(*run):
            break
    return run


def _traps(out: str) -> re.Match | None:
    return re.search(r"serialising with (\S+); (\d+) (calls emulated|traps returned)", out)


def check_patcher(exe: Path, patcher: str, seconds: float, env=None) -> str:
    def correct(p, calls, updates, wrong, crashes):
        assert (wrong, crashes) == (0, 0), p.stdout
        assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"

    def raced(p, calls, updates, wrong, crashes):
        # enough work to have raced, and for the breakpoint and prefix
        # patchers, int3 hit and handled at least once
        m = _traps(p.stdout)
        return calls > 10**4 and updates > 100 and (
            patcher == "store" or bool(m and int(m[2]) > 0))
    p, calls, updates, wrong, crashes = run_until(exe, patcher, seconds, raced, env, correct)
    out = p.stdout
    assert calls > 10**4 and updates > 100, out
    head = HEAD.match(out)
    final = FINAL.search(out)
    assert head and final, out
    listed, crossing, prefixed, own = map(int, head.groups()[2:])
    entries, direct, tramp, bad = map(int, final.groups())
    assert int(head[2]) == STRESS_SITES
    # The table the program walks is the one scall-objtool wrote ...
    assert entries == listed == written_entries(exe)
    assert prefixed == PREFIXED_SITES          # seed --allow-prefixed and kernel list them
    # ... and every site the patcher owns now calls the current target
    # directly, the others (the other designs' sites) the trampoline.
    assert (direct, tramp, bad) == (own, entries - own, 0), out
    if patcher == "store":
        # the seed policy's promise: every plain entry is the store's
        assert own == listed - prefixed and own >= 4
    elif patcher == "prefix":
        assert own == prefixed and crossing >= 4      # crossing ones included
    else:
        assert listed == own == STRESS_SITES and crossing >= 9
    if patcher != "store":
        m = _traps(out)
        assert m and int(m[2]) > 0, out               # int3 was hit and handled
        return m[1]
    return ""


@pytest.mark.parametrize("cc,pie", [
    pytest.param(cc, pie, id=f"{cc}-{'pie' if pie else 'nopie'}",
                 marks=() if (cc, pie) == ("gcc", True) else pytest.mark.slow)
    for cc in runtime_build.COMPILERS for pie in (True, False)])
def test_stress_three_patchers(stress_build, cc, pie):
    """Stress of the store, breakpoint and prefix patchers per build, 1 second
    each.  The everyday run stresses the gcc PIE build (the one the other
    tests use); the other three builds are a stress suite (slow)."""
    exes = stress_build(cc, pie)
    check_patcher(exes["store"], "store", 1)
    assert check_patcher(exes["breakpoint"], "breakpoint", 1) == "membarrier-sync-core"
    assert check_patcher(exes["prefix"], "prefix", 1) == "membarrier-sync-core"


def test_breakpoint_patcher_with_the_expedited_fallback(stress_build):
    exes = stress_build("gcc", True)
    method = check_patcher(exes["breakpoint"], "breakpoint", 1,
                           env={"STATIC_CALL_SYNC": "expedited"})
    assert method == "membarrier-expedited"


@pytest.mark.parametrize("slots", ["1024", "0"], ids=["slots", "no-slots"])
def test_prefix_patcher_nudges_the_threads_it_released(stress_build, slots):
    """A thread the prefix handler released onto an E8 gets a signal at the
    next update (back onto the prefix byte if it is still on the E8): with a
    slot per thread, or, without one (STATIC_CALL_NUDGE_SLOTS=0), every
    thread of the process found in /proc/self/task."""
    exe = stress_build("gcc", True)["prefix"]

    def nudges(out: str) -> re.Match | None:
        return re.search(r"(\d+) traps returned to their E8 by the SIGTRAP handler; "
                         r"(\d+) nudges", out)

    def correct(p, calls, updates, wrong, crashes):
        assert (wrong, crashes, p.returncode) == (0, 0, 0), p.stdout
        assert "bad 0" in p.stdout, p.stdout

    def raced(p, calls, updates, wrong, crashes):
        m = nudges(p.stdout)
        return calls > 10**4 and updates > 100 and bool(m and int(m[1]) > 0 and int(m[2]) > 0)
    p, calls, updates, wrong, crashes = run_until(
        exe, "prefix", 1, raced, {"STATIC_CALL_NUDGE_SLOTS": slots}, correct)
    assert calls > 10**4 and updates > 100, p.stdout
    m = nudges(p.stdout)
    assert m and int(m[1]) > 0 and int(m[2]) > 0, p.stdout


def test_control_crashes_only_by_torn_displacements(stress_build):
    """The single store on crossing sites: whatever happens is reported, and
    every crash is a torn rel32 of a site that crosses a line."""
    exe = stress_build("gcc", True)["store-crossing"]
    p, calls, updates, wrong, crashes = run_stress(exe, "store-crossing", 2)
    assert calls > 0 and updates > 0
    assert p.returncode == (1 if wrong or crashes else 0)
    if crashes:
        m = re.search(r"crashed children: (\d+) \(.*\); (\d+) explained by a torn rel32", p.stdout)
        assert m and int(m[1]) == int(m[2]) == crashes, p.stdout


def test_prefix_control_crashes_and_every_crash_is_a_torn_rel32(stress_build):
    """prefix-early: the handler returns before the displacement is written
    (bytes spaced wide to make the window visible): threads run torn rel32s.
    A torn rel32 mixes the bytes of up to three targets and may land in other
    code, which then fails somewhere else: crashes are explained, not all."""
    exe = stress_build("gcc", True)["prefix-early"]

    def explained(out: str) -> re.Match | None:
        return re.search(r"crashed children: (\d+) \(.*\); (\d+) explained by a torn rel32",
                         out)

    def reported(p, calls, updates, wrong, crashes):
        # whatever a run gives, a crash is counted and reported as such
        assert p.returncode == (1 if wrong or crashes else 0), p.stdout
        if crashes:
            m = explained(p.stdout)
            assert m and int(m[1]) == crashes, p.stdout

    def torn(p, calls, updates, wrong, crashes):
        m = explained(p.stdout)
        return crashes > 0 and bool(m and int(m[2]) > 0)
    p, calls, updates, wrong, crashes = run_until(
        exe, "prefix-early", 3, torn, {"STATIC_CALL_WRITE_SPACING": "100"}, reported)
    assert crashes > 0 and p.returncode == 1, p.stdout
    m = explained(p.stdout)
    assert m and int(m[1]) == crashes and int(m[2]) > 0, p.stdout


@pytest.fixture(scope="module")
def bench_exe(tmp_path_factory) -> Path:
    """The benchmark, built once for the three patchers."""
    return runtime_build.build_bench(tmp_path_factory.mktemp("bench"), "gcc", True)


@pytest.mark.parametrize("patcher", ["store", "breakpoint", "prefix"])
def test_bench_reports_rates_and_update_latency(bench_exe, patcher):
    exe = bench_exe
    p = subprocess.run([str(exe), "--patcher", patcher, "--calls", "2000000", "--runs", "3",
                        "--updates", "300"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rates = dict(re.findall(r"^(\S.*?)\s+([\d.]+) M calls/s", p.stdout, re.M))
    assert list(rates) == ["retpoline function pointer", "function pointer", "trampoline",
                           "patched direct call", "patched cs-prefixed call"], p.stdout
    own = {"store": ("E8",), "breakpoint": ("E8", "2E E8"), "prefix": ("2E E8",)}[patcher]
    assert all(f"the {s} site" in p.stdout for s in own), p.stdout
    m = re.search(r"^updates (\S+): 300 updates in [\d.]+ s with 1 caller threads, (\d+) "
                  r"updates/s, latency median ([\d.]+) us, p99 ([\d.]+) us; (\d+) traps",
                  p.stdout, re.M)
    assert m and m[1] == patcher, p.stdout
    assert 0 < float(m[3]) <= float(m[4])
    if patcher == "store":
        assert int(m[5]) == 0
    # the retpoline loop really calls through a thunk (how much slower it is
    # is the bench's to say: no test compares times)
    dis = subprocess.run(["objdump", "-dr", str(exe.parent / "loop_retpoline.o")],
                         capture_output=True, text=True).stdout
    assert "__x86_indirect_thunk" in dis


def test_runtime_stress_script(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "runtime-stress"),
                        "--seconds", "0.3", "--threads", "2", "--control-may-pass"],
                       capture_output=True, text=True, timeout=240,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    last = {m[1]: m for m in map(LAST.fullmatch, p.stdout.splitlines()) if m}
    assert set(last) == {"store", "breakpoint", "prefix", "store-crossing", "prefix-early"}
    for name in ("store", "breakpoint", "prefix"):
        assert (last[name][4], last[name][5]) == ("0", "0")
    assert re.search(r"^runtime-stress: store: passed; breakpoint: passed; prefix: passed; "
                     r"control store-crossing: .*; control prefix-early: ", p.stdout, re.M)


def test_runtime_bench_script():
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "runtime-bench"), "--calls",
                        "1000000", "--runs", "1", "--updates", "200", "--no-corpus"],
                       capture_output=True, text=True, timeout=240,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    for patcher in ("store", "breakpoint", "prefix"):
        assert re.search(rf"^  {patcher}: .* [\d.]+M +\d+ +[\d.]+ +[\d.]+ +\d+$", p.stdout,
                         re.M), p.stdout
    assert "  prefix      6 + 15 + 8 + 32 = 61 bytes" in p.stdout


@pytest.mark.slow
def test_runtime_stress_script_20_seconds():
    """20 s per patcher: no wrong call and no crash under concurrent updates,
    and both controls fail.  The issue's rates (C >= 10^8, U >= 10^5 on a quiet
    machine) are the script's to print, not a test's to assert: a loaded
    machine gives far fewer calls a second; the floors here count work done."""
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "runtime-stress"),
                        "--seconds", "20"], capture_output=True,
                       text=True, timeout=900, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    seen = set()
    for m in filter(None, map(LAST.fullmatch, p.stdout.splitlines())):
        calls, updates, wrong, crashes = map(int, m.groups()[1:])
        seen.add(m[1])
        if m[1] in ("store-crossing", "prefix-early"):
            assert wrong + crashes > 0, p.stdout
            continue
        assert (wrong, crashes) == (0, 0)
        assert calls >= 10**6 and updates >= 10**4, p.stdout
    assert seen == {"store", "breakpoint", "prefix", "store-crossing", "prefix-early"}
