"""Design 1 of the seed thread, the cs-prefix patcher, end to end.

- static_call_prefixed()'s asm states the x86-64 SysV calling convention:
  examples/runtime-stress/clobber.c keeps values live across one prefixed
  call in more registers than a callee preserves, against a target that
  writes garbage into every caller-saved register.  With the shipped header
  it computes right (gcc and clang, -O2); with any one clobber removed from
  a copy of the header it does not.
- The tool: a cs-prefixed call (2E E8) is fallback `prefixed` under the seed
  policy and listed with --allow-prefixed, crossing a line or not; other
  prefixes stay fallback; the kernel policy lists them all.
- A program of its own (examples/runtime-stress/prefixed.c) that calls only
  through static_call_prefixed(), built with gcc and clang (PIE and not),
  `scall-objtool write --allow-prefixed`, linked and run under the prefix
  patcher while threads call through the sites: every site is listed,
  rewritten by every update and ends on the current target; no wrong value.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scall_testlib import ROOT, scan_lib

sys.path.insert(0, str(ROOT / "scripts"))
import runtime_build  # noqa: E402

RUNTIME = ROOT / "scall_objtool" / "runtime"
EX = ROOT / "examples" / "runtime-stress"
HEADER = (RUNTIME / "static_call.h").read_text()
# caller-saved registers a one-argument prefixed call must name: the unused
# argument registers, %r10, %r11 and every SSE register
GPRS = ("rsi", "rdx", "rcx", "r8", "r9", "r10", "r11")
XMMS = tuple(f"xmm{i}" for i in range(16))


def without(what: str) -> str:
    """static_call.h with one part of static_call_prefixed()'s asm removed."""
    if what in ("rsi", "rdx", "rcx", "r8", "r9"):     # __SC_CS_CLOB1: 1-argument calls
        line = re.search(r"#define __SC_CS_CLOB1\t.*", HEADER)[0]
        new = HEADER.replace(line, re.sub(rf'"{what}",\s?', "", line))
    elif what == "memory":
        new = HEADER.replace(', "memory"', "", 1)
    elif what == "align":
        new = HEADER.replace('"and $-16, %%rsp\\n\\t"', '""', 1)
    else:
        new = re.sub(rf'"{what}",[ \t]?', "", HEADER, count=1)
    assert new != HEADER, what
    return new


def clobber_run(cc: str, header_dir: Path, out: Path) -> subprocess.CompletedProcess:
    runtime_build.run([runtime_build.compiler(cc), "-O2", "-Wall", "-Wextra", "-Werror",
                       f"-I{header_dir}", EX / "clobber.c", EX / "clobber_asm.S", "-o", out])
    return subprocess.run([str(out)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("cc", runtime_build.COMPILERS)
def test_prefixed_call_states_every_clobber(cc, tmp_path):
    p = clobber_run(cc, RUNTIME, tmp_path / "ok")
    assert p.returncode == 0 and "0 of 100 calls wrong" in p.stdout, p.stdout + p.stderr
    # the asm really is a cs-prefixed call the caller makes with live values
    dis = subprocess.run(["objdump", "-d", str(tmp_path / "ok")], capture_output=True,
                         text=True).stdout
    assert re.search(r"\t2e e8 .*cs call", dis)
    missed = []
    for reg in GPRS + XMMS:
        d = tmp_path / reg
        d.mkdir()
        (d / "static_call.h").write_text(without(reg))
        p = clobber_run(cc, d, d / "clobber")
        if p.returncode == 0:
            missed.append(reg)
    assert not missed, f"{cc}: removing these clobbers went unnoticed: {missed}"


def test_memory_clobber_and_stack_alignment_are_needed(tmp_path):
    """Without "memory" gcc keeps a global in a register across the call;
    without the alignment clang calls with a misaligned stack (the target
    checks).  Each compiler shows one of them: both are needed."""
    caught = {}
    for what in ("memory", "align"):
        for cc in runtime_build.COMPILERS:
            d = tmp_path / f"{what}-{cc}"
            d.mkdir()
            (d / "static_call.h").write_text(without(what))
            if clobber_run(cc, d, d / "clobber").returncode != 0:
                caught.setdefault(what, []).append(cc)
    assert set(caught) == {"memory", "align"}, caught


@pytest.fixture(scope="module")
def prefixed_objects(tmp_path_factory):
    d = tmp_path_factory.mktemp("psites")
    asm = runtime_build.compile_c("gcc", EX / "stress_asm.S", d / "stress_asm.o", True)
    c = runtime_build.compile_c("gcc", EX / "prefixed.c", d / "prefixed.o", True)
    return asm, c


def test_tool_lists_cs_prefixed_calls_with_allow_prefixed(prefixed_objects):
    asm, c = prefixed_objects
    seed = scan_lib(str(asm), str(c))
    allow = scan_lib("--allow-prefixed", str(asm), str(c))
    kernel = scan_lib("--policy", "kernel", str(asm), str(c))
    assert allow["policy"]["allow_prefixed"] is True and seed["policy"]["allow_prefixed"] is False

    def prefixed(rep):
        return {(o["path"], s["function"]): s for o in rep["objects"] for s in o["sites"]
                if s["kind"] == "prefixed-call"}
    ps, pa, pk = prefixed(seed), prefixed(allow), prefixed(kernel)
    # p_cross59_a .. p_cross62_b in the assembly, use_* in prefixed.c
    assert len(ps) == 9 and ps.keys() == pa.keys() == pk.keys()
    assert all(s["prefixes"] == "2e" and s["length"] == 6 for s in ps.values())
    assert all(not s["patchable"] and s["reason"] == "prefixed" for s in ps.values())
    assert all(s["patchable"] and s["reason"] is None for s in pa.values())
    assert all(s["patchable"] for s in pk.values())
    # crossing a line does not matter to design 1: listed all the same
    crossing = {k[1]: s["crossing"] for k, s in pa.items() if k[1].startswith("p_cross")}
    assert crossing == {"p_cross59_a": "always", "p_cross60_b": "always",
                        "p_cross61_a": "always", "p_cross62_b": "always"}
    # the plain sites are classified as before
    plain = lambda rep: sorted((s["function"], s["patchable"], s["reason"])  # noqa: E731
                               for o in rep["objects"] for s in o["sites"]
                               if s["kind"] != "prefixed-call")
    assert plain(seed) == plain(allow)


def test_other_prefixes_stay_fallback(tmp_path):
    """Only 2E E8 is design 1's site: a 3E (ds) or 67 (addr32) prefix is not."""
    src = tmp_path / "p.S"
    src.write_text("""
	.text
	.globl f
	.type f, @function
f:	.byte 0x2e
	call __SCT__k
	.byte 0x3e
	call __SCT__k
	.byte 0x67
	call __SCT__k
	.byte 0x2e, 0x2e
	call __SCT__k
	ret
	.size f, . - f
	.globl __SCK__k
	.section .note.GNU-stack, "", @progbits
""")
    obj = runtime_build.compile_c("gcc", src, tmp_path / "p.o", True)
    rep = scan_lib("--allow-prefixed", str(obj))
    got = [(s["prefixes"], s["patchable"], s["reason"]) for s in rep["objects"][0]["sites"]]
    assert got == [("2e", True, None), ("3e", False, "prefixed"), ("67", False, "prefixed"),
                   ("2e2e", False, "prefixed")]


def test_allow_prefixed_is_one_policy_option_everywhere(cli, prefixed_objects):
    """The flag goes through the CLI (write, check, verify) like --allow-tail."""
    asm, c = prefixed_objects
    r = cli("check", "--allow-prefixed", str(c))
    assert r.rc == 0, r.out + r.err
    assert cli("check", str(c)).rc == 1            # seed: the five sites are fallback


LINE = re.compile(r"^prefixed: (\d+) sites in the table, (\d+) cs-prefixed, (\d+) on the "
                  r"current target; (\d+) calls, (\d+) updates, (\d+) wrong; (\d+) traps at a "
                  r"site; (\d+) short updates$", re.M)


@pytest.mark.parametrize("pie", [True, False], ids=["pie", "nopie"])
@pytest.mark.parametrize("cc", runtime_build.COMPILERS)
def test_own_program_under_the_prefix_patcher(cc, pie, tmp_path):
    objs = [runtime_build.compile_c(cc, RUNTIME / "static_call.c", tmp_path / "sc.o", pie),
            runtime_build.compile_c(cc, EX / "prefixed.c", tmp_path / "prefixed.o", pie)]
    out = runtime_build.write_table(objs[1:], "seed")      # --allow-prefixed
    assert "wrote 5 entries (5 sites, 5 patchable, 0 fallback" in out, out
    exe = runtime_build.link(cc, pie, objs, tmp_path / "prefixed")
    p = subprocess.run([str(exe), "--updates", "3000", "--threads", "2"], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ))
    m = LINE.search(p.stdout)
    assert m, p.stdout + p.stderr
    sites, prefixed, direct, calls, updates, wrong, traps, short = map(int, m.groups())
    assert (sites, prefixed, direct) == (5, 5, 5)
    assert (wrong, short) == (0, 0) and updates == 15000 and calls > 0
    assert p.returncode == 0, p.stdout + p.stderr
