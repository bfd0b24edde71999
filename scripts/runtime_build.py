"""Build the runtime's stress and benchmark programs (examples/runtime-stress)
with gcc or clang, PIE or not, writing their static-call tables with this
checkout's scall-objtool (`python -m scall_objtool write`).

Used by scripts/runtime-stress, scripts/runtime-bench and tests/test_runtime.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scall_objtool import runtime  # noqa: E402

RUNTIME = runtime.path()
EXAMPLE = ROOT / "examples" / "runtime-stress"
COMPILERS = ("gcc", "clang")
PIC = {True: (("-fpie",), ("-pie",)), False: (("-fno-pie",), ("-no-pie",))}
CFLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-pthread")
# the stress program's patchers -> the policy its table is written under
STRESS_TABLES = {"store": "seed", "breakpoint": "kernel", "prefix": "seed",
                 "store-crossing": "kernel", "prefix-early": "seed"}
# the policy -> scall-objtool write's options: the seed table lists the
# cs-prefixed sites too (--allow-prefixed), which the store patcher leaves
# on the trampoline and the prefix patcher rewrites
POLICY_FLAGS = {"seed": ("--policy", "seed", "--allow-prefixed"),
                "kernel": ("--policy", "kernel")}
# flags that make every indirect call go through a retpoline thunk
RETPOLINE = {"gcc": ("-mindirect-branch=thunk", "-mfunction-return=keep",
                     "-fcf-protection=none"),
             "clang": ("-mretpoline",)}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


class BuildError(Exception):
    pass


def run(cmd, env=None) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env,
                       timeout=300)
    if p.returncode != 0:
        raise BuildError(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p


def compiler(cc: str) -> str:
    if shutil.which(cc) is None:
        raise BuildError(f"{cc} not found (Debian: apt-get install {cc}; "
                         "scripts/debian-packages/runtime.txt lists it)")
    return cc


def compile_c(cc: str, src: Path, out: Path, pie: bool, *extra: str) -> Path:
    run([compiler(cc), "-c", *CFLAGS, *PIC[pie][0], f"-I{RUNTIME}", f"-I{EXAMPLE}",
         *extra, "-o", out, src])
    return out


def write_table(objs: list[Path], policy: str) -> str:
    """scall-objtool write under POLICY_FLAGS[policy] on the objects (this checkout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("SRCARCH", None)
    p = run([sys.executable, "-m", "scall_objtool", "write", *POLICY_FLAGS[policy], *objs],
            env=env)
    return p.stdout + p.stderr


def link(cc: str, pie: bool, objs: list[Path], out: Path) -> Path:
    run([compiler(cc), "-pthread", *PIC[pie][1], "-o", out, *objs,
         f"-Wl,-T,{RUNTIME / 'static_call_sites.ld'}"])
    return out


def build_stress(outdir: Path, cc: str = "gcc", pie: bool = True) -> dict[str, Path]:
    """{patcher: executable}: the stress program with a seed-policy table (for
    the store patcher) and with a kernel-policy table (breakpoint, control)."""
    outdir.mkdir(parents=True, exist_ok=True)
    common = [compile_c(cc, RUNTIME / "static_call.c", outdir / "static_call.o", pie),
              compile_c(cc, EXAMPLE / "stress.c", outdir / "stress.o", pie)]
    exes: dict[str, Path] = {}
    for policy in sorted(set(STRESS_TABLES.values())):
        d = outdir / policy
        d.mkdir(exist_ok=True)
        sites = [compile_c(cc, EXAMPLE / "stress_sites.c", d / "stress_sites.o", pie),
                 compile_c(cc, EXAMPLE / "stress_asm.S", d / "stress_asm.o", pie)]
        write_table(sites, policy)
        exe = link(cc, pie, common + sites, d / "stress")
        for patcher, p in STRESS_TABLES.items():
            if p == policy:
                exes[patcher] = exe
    return exes


def build_bench(outdir: Path, cc: str = "gcc", pie: bool = True) -> Path:
    """The benchmark: one loop source compiled five ways (bench_loop.c)."""
    outdir.mkdir(parents=True, exist_ok=True)
    loop = EXAMPLE / "bench_loop.c"

    def variant(name, *flags):
        return compile_c(cc, loop, outdir / f"loop_{name}.o", pie,
                         f"-DLOOP_NAME=loop_{name}", *flags)

    objs = [compile_c(cc, RUNTIME / "static_call.c", outdir / "static_call.o", pie),
            compile_c(cc, EXAMPLE / "bench.c", outdir / "bench.o", pie),
            variant("retpoline", "-DVIA_POINTER", *RETPOLINE[cc]),
            variant("pointer", "-DVIA_POINTER"),
            variant("trampoline")]
    listed = [variant("direct"), variant("prefixed", "-DVIA_PREFIX")]
    # Only the direct and prefixed loops get a table (seed policy with
    # --allow-prefixed, which lists both): the trampoline loop's call stays
    # a call to the trampoline, like any site scall-objtool does not list.
    write_table(listed, "seed")
    return link(cc, pie, objs + listed, outdir / "bench")
