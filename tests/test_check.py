"""`scall-objtool check`: the CI gate (exit 1 on fallback sites, 0 without,
2 on errors), its text and JSON output, --max-fallback, --stats, and
baselines that survive unrelated edits but not new fallback sites."""
from __future__ import annotations

import json
import re
import struct

import jsonschema
import pytest

from scall_testlib import SRC, run_cli

from scall_objtool.core.elf import ElfFile
from scall_objtool.report.findings import LintSite, Report, check, match, norm_function
from scall_objtool.report.jsondoc import schema

LINT_C = str(SRC / "lint.c")
TAIL_LINE = 31          # `return static_call(lint_hook)(a + 1);` in lint.c
EXTRA_LINE = 37         # the -DLINT_EXTRA tail call
MSG = "warning: static call to __SCT__lint_hook is not patchable: tail-call [scall-objtool]"
#: with a source line, the finding ends with the object and function instead
SRC_MSG = "warning: static call to __SCT__lint_hook is not patchable: tail-call [{}: {}]"


def finding_lines(out: str) -> list[str]:
    return [x for x in out.splitlines() if ": warning: " in x]


def summary_line(out: str) -> str:
    lines = out.splitlines()
    assert lines and lines[-1].startswith("summary: "), out
    return lines[-1]


@pytest.fixture
def cli(tmp_path):
    """run_cli, from the test's directory unless told otherwise, so that the
    source paths (outside it) are shown absolute."""
    def run(*args, cwd=None, **kw):
        return run_cli(*args, cwd=cwd or tmp_path, **kw)
    return run


@pytest.fixture
def lint_o(build):
    return build("lint.c", "-O2", "-g", out="lint.o")


# ---------------------------------------------------------------- the gate
def test_default_policy_fails_on_the_tail_call(cli, lint_o):
    res = cli("check", lint_o)
    assert res.rc == 1, res.stderr
    assert finding_lines(res.stdout) == [
        f"{LINT_C}:{TAIL_LINE}: {SRC_MSG.format(lint_o, 'lint_forward+0x3')}"]
    s = summary_line(res.stdout)
    assert "1 object, 4 sites, 3 patchable, 1 fallback (policy seed)" in s
    assert "check failed: 1 structural fallback site, at most 0 allowed" in s
    assert res.stderr == ""


def test_kernel_policy_and_allow_tail_pass(cli, lint_o):
    for args in (["--policy", "kernel"], ["--allow-tail"]):
        res = cli("check", *args, lint_o)
        assert res.rc == 0, (args, res.stdout, res.stderr)
        assert finding_lines(res.stdout) == []
        assert re.search(r"check passed: 0 (structural )?fallback sites", summary_line(res.stdout))


def test_without_debug_info_objtool_form(cli, build):
    obj = build("lint.c", "-O2", out="nodebug.o")
    res = cli("check", obj)
    assert res.rc == 1
    assert finding_lines(res.stdout) == [f"{obj}: lint_forward+0x3: {MSG}"]


def test_source_paths_relative_to_the_current_directory(cli, lint_o):
    res = cli("check", lint_o, cwd=SRC.parent.parent)
    msg = SRC_MSG.format(lint_o, "lint_forward+0x3")
    assert finding_lines(res.stdout) == [f"testdata/src/lint.c:{TAIL_LINE}: {msg}"]
    res = cli("check", "--source-root", SRC, lint_o)
    assert finding_lines(res.stdout) == [f"lint.c:{TAIL_LINE}: {msg}"]


def test_max_fallback(cli, build):
    obj = build("lint.c", "-O2", "-g", "-DLINT_EXTRA")
    assert cli("check", obj).rc == 1
    res = cli("check", "--max-fallback", "1", obj)
    assert res.rc == 1 and "2 structural fallback sites, at most 1 allowed" in res.stdout
    res = cli("check", "--max-fallback", "2", obj)
    assert res.rc == 0 and "check passed: 2 structural fallback sites, at most 2 allowed" in \
        res.stdout
    # the findings are still listed when they are allowed
    assert [int(x.split(":")[1]) for x in finding_lines(res.stdout)] == [TAIL_LINE, EXTRA_LINE]
    assert cli("check", "--max-fallback", "-1", obj).rc == 2


def test_errors_exit_2_and_other_inputs_still_checked(cli, lint_o, tmp_path):
    res = cli("check", lint_o, tmp_path / "missing.o")
    assert res.rc == 2
    assert re.search(r"^scall-objtool: error: .*missing\.o: cannot open", res.stderr, re.M)
    assert finding_lines(res.stdout) == [
        f"{LINT_C}:{TAIL_LINE}: {SRC_MSG.format(lint_o, 'lint_forward+0x3')}"]
    # an error wins even when nothing is fallback
    res = cli("check", "--policy", "kernel", lint_o, tmp_path / "missing.o")
    assert res.rc == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 2}')
    res = cli("check", "--baseline", bad, lint_o)
    assert res.rc == 2 and "not a scall-objtool JSON report" in res.stderr
    res = cli("check", "--baseline", tmp_path / "nope.json", lint_o)
    assert res.rc == 2 and "nope.json: cannot open" in res.stderr
    assert cli("check", "--format", "xml", lint_o).rc == 2


def test_directories_and_jobs(cli, build, tmp_path):
    build("lint.c", "-O2", "-g", out="a.o")
    build("lint.c", "-O2", "-g", "-DLINT_EXTRA", out="b.o")
    res = cli("check", "--jobs", "2", tmp_path)
    assert res.rc == 1
    assert len(finding_lines(res.stdout)) == 3
    assert "2 objects, 9 sites, 6 patchable, 3 fallback" in res.stdout


def test_dwarf_warning_is_shown(cli, lint_o):
    data = bytearray(lint_o.read_bytes())
    sec = ElfFile(bytes(data)).section_by_name(".debug_line")
    struct.pack_into("<H", data, sec.offset + 4, 77)
    lint_o.write_bytes(bytes(data))
    res = cli("check", lint_o)
    assert res.rc == 1
    (warning,) = res.stderr.splitlines()          # once
    assert warning.startswith("scall-objtool: warning: ") and "DWARF line table" in warning
    assert finding_lines(res.stdout) == [f"{lint_o}: lint_forward+0x3: {MSG}"]


# ------------------------------------------------------------ json, stats
def test_json_output(cli, build, tmp_path):
    obj = build("lint.c", "-O2", "-g", "-DLINT_EXTRA")
    out = tmp_path / "check.json"
    res = cli("check", "--format", "json", "-o", out, obj)
    assert res.rc == 1 and res.stdout == ""
    doc = json.loads(out.read_text())
    jsonschema.Draft202012Validator(schema("check")).validate(doc)
    assert doc["check"] == {"passed": False, "status": "failed", "findings": 2, "failing": 2,
                            "max_fallback": 0, "new": 2,
                            "baseline": None, "baselined": 0, "fixed": 0, "errors": [],
                            "layout": {"mode": "chance", "pinned": False, "calls": 3,
                                       "findings": 0, "new": 0, "expected": 0.75,
                                       "sigma": 0.75, "baseline": None, "limit": 3,
                                       "excess": 0}}
    assert [(f["function"], f["kind"], f["reason"], f["source"]["line"])
            for f in doc["findings"]] == [("lint_forward", "tail", "tail-call", TAIL_LINE),
                                          ("lint_extra", "tail", "tail-call", EXTRA_LINE)]
    assert doc["summary"]["by_trampoline"] == {
        "__SCT__lint_hook": {"sites": 5, "patchable": 3, "fallback": 2}}


def test_stats(cli, build, tmp_path):
    a = build("lint.c", "-O2", "-g", out="a.o")
    b = build("kinds.S", out="k.o")
    text = cli("scan", "--stats", a, b).stdout
    rep = cli("scan", "--format", "json", a, b).json()
    jsonschema.Draft202012Validator(schema("report")).validate(rep)
    summ = rep["summary"]
    assert summ["by_object"] == [
        {"path": str(a), "sites": 4, "patchable": 3, "fallback": 1, "references": 0},
        {"path": str(b), "sites": 10, "patchable": 2, "fallback": 8, "references": 5}]
    assert summ["by_trampoline"]["__SCT__lint_hook"] == {"sites": 4, "patchable": 3,
                                                         "fallback": 1}
    assert sum(t["sites"] for t in summ["by_trampoline"].values()) == summ["sites"] == 14
    assert sum(t["fallback"] for t in summ["by_trampoline"].values()) == summ["fallback"]
    # the text tables carry the same numbers
    for title in ("by trampoline:", "by kind:", "by reason:", "by object:"):
        assert title in text
    for name, t in summ["by_trampoline"].items():
        assert re.search(rf"^  {re.escape(name)}\s+{t['sites']}\s+{t['patchable']}\s+"
                         rf"{t['fallback']}$", text, re.M), name
    for kind, n in summ["by_kind"].items():
        assert re.search(rf"^  {re.escape(kind)}\s+{n}$", text, re.M), kind
    for reason, n in summ["by_reason"].items():
        assert re.search(rf"^  {re.escape(reason)}\s+{n}$", text, re.M), reason
    assert re.search(rf"^  {re.escape(str(b))}\s+10\s+2\s+8\s+5$", text, re.M)
    # check --stats: the same tables, the summary line last (as in scan)
    res = cli("check", "--stats", a)
    assert res.rc == 1
    assert res.stdout.splitlines()[-1].startswith("summary: ")
    assert res.stdout.index("by trampoline:") < res.stdout.index("summary: ")
    assert text.splitlines()[-1].startswith("summary: ")
    assert "by trampoline:" not in cli("check", a).stdout


# --------------------------------------------------------------- baselines
def test_baseline_same_object_passes(cli, lint_o, tmp_path):
    base = tmp_path / "base.json"
    assert cli("scan", "--format", "json", "-o", base, lint_o).rc == 0
    res = cli("check", "--baseline", base, lint_o)
    assert res.rc == 0, res.stdout
    assert finding_lines(res.stdout) == []
    assert f"baseline {base}: 1 known, 0 new; check passed" in res.stdout


def test_baseline_survives_code_moving(cli, build, tmp_path):
    """Rebuild the object at the same path from lint_moved.c (unrelated code
    above the sites): every site moved, the baseline still covers them."""
    obj = build("lint.c", "-O2", "-g", out="lint.o")
    base = tmp_path / "base.json"
    cli("scan", "--format", "json", "-o", base, obj)
    before = json.loads(base.read_text())["objects"][0]["sites"]
    build("lint_moved.c", "-O2", "-g", out="lint.o")
    after = cli("scan", "--format", "json", obj).json()["objects"][0]["sites"]
    # the rebuild really moved everything: offsets and source lines differ
    assert len(before) == len(after) == 4
    for b, a in zip(before, after):
        assert b["offset"] != a["offset"] and b["source"]["line"] != a["source"]["line"]
        assert (b["function"], b["kind"], b["reason"]) == (a["function"], a["kind"],
                                                           a["reason"])
    res = cli("check", "--baseline", base, obj)
    assert res.rc == 0, res.stdout
    assert "1 known, 0 new" in res.stdout
    # without the baseline the same object fails
    assert cli("check", obj).rc == 1
    # relative paths, run from the object's directory, match as well
    rel = tmp_path / "rel.json"
    cli("scan", "--format", "json", "-o", rel, "lint.o", cwd=tmp_path)
    assert cli("check", "--baseline", rel, obj).rc == 0
    assert cli("check", "--baseline", base, "./lint.o", cwd=tmp_path).rc == 0


def test_new_fallback_site_fails_the_baseline(cli, build, tmp_path):
    obj = build("lint.c", "-O2", "-g", out="lint.o")
    base = tmp_path / "base.json"
    cli("scan", "--format", "json", "-o", base, obj)
    build("lint.c", "-O2", "-g", "-DLINT_EXTRA", out="lint.o")
    res = cli("check", "--baseline", base, obj)
    assert res.rc == 1
    # only the new site is reported; the known tail call stays silent
    assert finding_lines(res.stdout) == [
        f"{LINT_C}:{EXTRA_LINE}: {SRC_MSG.format(obj, 'lint_extra+0x3')}"]
    assert "1 known, 1 new; check failed: 1 new structural fallback site" in res.stdout
    assert cli("check", "--baseline", base, "--max-fallback", "1", obj).rc == 0
    # a baseline from another object does not cover this one
    other = build("lint.c", "-O2", "-g", out="other.o")
    base2 = tmp_path / "other.json"
    cli("scan", "--format", "json", "-o", base2, other)
    assert cli("check", "--baseline", base2, obj).rc == 1
    # fixed sites are counted
    build("lint.c", "-O2", "-g", "-DLINT_EXTRA", out="x.o")
    base3 = tmp_path / "x.json"
    cli("scan", "--format", "json", "-o", base3, tmp_path / "x.o")
    build("lint.c", "-O2", "-g", out="x.o")
    res = cli("check", "--baseline", base3, tmp_path / "x.o")
    assert res.rc == 0 and "1 known, 0 new, 1 fixed" in res.stdout


def test_baseline_from_another_policy_warns(cli, lint_o, tmp_path):
    base = tmp_path / "kernel.json"
    cli("scan", "--format", "json", "--policy", "kernel", "-o", base, lint_o)
    res = cli("check", "--baseline", base, lint_o)
    # under kernel policy the tail call was patchable: it is new under seed
    assert res.rc == 1
    assert "warning:" in res.stderr and "different options" in res.stderr
    assert "policy 'kernel' vs 'seed'" in res.stderr
    assert cli("check", "--policy", "kernel", "--baseline", base, lint_o).stderr == ""


def test_baseline_json_check_output(cli, build, tmp_path):
    obj = build("lint.c", "-O2", "-g", out="lint.o")
    base = tmp_path / "base.json"
    cli("scan", "--format", "json", "-o", base, obj)
    build("lint.c", "-O2", "-g", "-DLINT_EXTRA", out="lint.o")
    doc = cli("check", "--format", "json", "--baseline", base, obj).json()
    jsonschema.Draft202012Validator(schema("check")).validate(doc)
    assert [(f["function"], f["baselined"]) for f in doc["findings"]] == [
        ("lint_forward", True), ("lint_extra", False)]
    assert doc["check"]["failing"] == 1 and doc["check"]["baselined"] == 1
    assert doc["check"]["baseline"] == str(base) and not doc["check"]["passed"]


# ------------------------------------------------- matching, as a library
def site(obj="a.o", func="f", off=0x10, tramp="__SCT__x", kind="tail", reason="tail-call",
         section=".text"):
    return LintSite(object=obj, section=section, offset=off, function=func,
                    function_offset=off, trampoline=tramp, key="__SCK__x", kind=kind,
                    patchable=reason is None, reason=reason,
                    crossing="never" if kind != "indirect" else None)


def test_identities_are_counted():
    base = Report("b.json", {}, [site(off=1), site(off=2)])
    assert check([site(off=7), site(off=9)], 0, base).passed
    res = check([site(off=7), site(off=8), site(off=9)], 0, base)
    assert not res.passed and res.failing == 1
    # the extra one is the last in the function
    assert [f.site.offset for f in res.findings if not f.baselined] == [9]
    res = check([site(off=3)], 0, base)
    assert res.passed and len(res.gone) == 1


@pytest.mark.parametrize("change", [dict(obj="b.o"), dict(func="g"), dict(tramp="__SCT__y"),
                                    dict(kind="jcc-tail", reason="conditional-tail-call"),
                                    dict(kind="call", reason="crosses-cache-line")])
def test_each_identity_field_matters(change):
    base = Report("b.json", {}, [site()])
    assert check([site()], 0, base).passed
    # (a crossing call is a layout finding: strictly, every new one fails)
    assert not check([site(**change)], 0, base, layout_mode="strict").passed


def test_offsets_sections_and_clone_numbers_do_not_matter():
    base = Report("b.json", {}, [site(func="f.constprop.0", off=0x10)])
    assert check([site(func="f.constprop.1", off=0x99, section=".text.f")], 0, base).passed
    assert not check([site(func="f.isra.0")], 0, base).passed
    assert norm_function("f.constprop.0.isra.0", ".text") == "f.constprop.isra"
    assert norm_function("f.cold", ".text") == "f.cold"
    assert norm_function(None, ".text.x") == "[.text.x]"
    # patchable sites are never findings, whatever the baseline says
    assert check([site(kind="call", reason=None)], 0, None).passed
    assert check([site(obj="./a.o"), site(obj="x/../a.o")], 1,
                 Report("b", {}, [site(obj="a.o")])).failing == 1


def test_match_pairs_in_offset_order_whatever_the_input_order():
    cur = [site(off=i, func="f" if i % 2 else "g") for i in range(10)]
    prev = [site(off=i + 100, func="f" if i % 2 else "g") for i in range(7)]
    want_pairs = {(100, 0), (102, 2), (104, 4), (106, 6), (101, 1), (103, 3), (105, 5)}
    for c, p in ((cur, prev), (cur[::-1], prev[::-1])):
        pairs, extra, missing = match(c, p)
        assert {(a.offset, b.offset) for a, b in pairs} == want_pairs
        assert sorted(s.offset for s in extra) == [7, 8, 9] and missing == []
        # output follows the input order of the current sites
        assert [b.offset for a, b in pairs] == [s.offset for s in c if s.offset < 7]


def test_hostile_source_names_are_escaped(cli, tmp_path):
    """A file name from the DWARF (here from a #line directive) with ESC, a
    newline and invalid UTF-8 is escaped like every name from the file."""
    import subprocess
    src = tmp_path / "evil.c"
    src.write_text('#include "static_call.h"\nint h_impl(int);\n'
                   'DECLARE_STATIC_CALL(h, h_impl);\n'
                   '#line 40 "ev\\x1bil\\nna\\377me.c"\n'
                   'int f(int a)\n{\n\treturn static_call(h)(a);\n}\n')
    obj = tmp_path / "evil.o"
    subprocess.run(["gcc", "-O2", "-g", f"-I{SRC}", "-c", "-o", str(obj), str(src)],
                   check=True, capture_output=True, cwd=tmp_path)
    res = cli("check", obj)
    assert res.rc == 1
    lines = res.stdout.splitlines()
    assert len(lines) == 3 and "\x1b" not in res.stdout
    assert lines[0] == ("ev\\x1bil\\nna\\xffme.c:42: warning: static call to __SCT__h is not "
                        f"patchable: tail-call [{obj}: f+0x0]")
    assert lines[1].startswith("ev\\x1bil\\nna\\xffme.c:42: note: remedy: pass --allow-tail")
    # recorded relative to the source root, escaped
    doc = cli("check", "--format", "json", "--source-root", tmp_path, obj).json()
    assert doc["findings"][0]["source"] == {"file": "ev\\x1bil\\nna\\xffme.c", "line": 42}


# ------------------------------------------------- never a false pass (#21)
def _incomplete(res, errors: int, read: bool):
    """The run ended with exit 2 and a last line that says the check is
    incomplete (never "passed")."""
    assert res.rc == 2, (res.stdout, res.stderr)
    last = summary_line(res.stdout)
    assert "check passed" not in res.stdout and "check failed" not in res.stdout
    want = f"check incomplete: {errors} input error{'' if errors == 1 else 's'}"
    assert want in last, last
    assert ("no object read" in last) != read, last
    return last


def test_not_elf_is_incomplete(cli, tmp_path):
    (tmp_path / "notelf.o").write_text("hi\n")
    res = cli("check", "notelf.o")
    _incomplete(res, 1, read=False)
    assert "notelf.o: not an ELF file" in res.stderr


def test_empty_directory_is_incomplete(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    _incomplete(cli("check", "empty"), 1, read=False)


def test_lto_and_bitcode_are_incomplete(cli, tmp_path):
    import subprocess
    src = SRC / "lint.c"
    subprocess.run(["gcc", "-c", "-O2", "-flto", "-o", str(tmp_path / "lto.o"), str(src)],
                   check=True)
    subprocess.run(["clang", "-c", "-O2", "-flto", "-o", str(tmp_path / "bc.o"), str(src)],
                   check=True)
    for name in ("lto.o", "bc.o"):
        res = cli("check", "--policy", "kernel", name)
        _incomplete(res, 1, read=False)
    res = cli("check", "--policy", "kernel", "lto.o", "bc.o")
    _incomplete(res, 2, read=False)


def test_a_tree_with_one_bad_object_is_incomplete(cli, build, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    build("lint.c", "-O2", out="tree/a.o")
    (tree / "sub" / "bad.o").write_bytes(b"\x7fELF" + b"\0" * 8)
    res = cli("check", "--policy", "kernel", "tree")
    last = _incomplete(res, 1, read=True)
    # what the objects that were read hold is still said
    assert "1 object, 4 sites" in last and "(0 fallback sites in the objects read)" in last
    doc = cli("check", "--policy", "kernel", "--format", "json", "tree")
    assert doc.rc == 2
    c = doc.json()["check"]
    assert c["status"] == "incomplete" and c["passed"] is False and len(c["errors"]) == 1
    jsonschema.validate(doc.json(), schema("check"))
    sarif = cli("check", "--policy", "kernel", "--format", "sarif", "tree")
    run = json.loads(sarif.stdout)["runs"][0]
    assert sarif.rc == 2 and run["invocations"][0]["executionSuccessful"] is False
    assert run["properties"]["check"]["status"] == "incomplete"


def test_only_foreign_objects_read_nothing(cli, tmp_path):
    """A walk that finds only objects of another class reads none: not a pass."""
    import subprocess
    (tmp_path / "t").mkdir()
    (tmp_path / "x.s").write_text(".text\nf: ret\n")
    subprocess.run(["as", "--32", "-o", str(tmp_path / "t" / "x.o"), str(tmp_path / "x.s")],
                   check=True)
    res = cli("check", "t")
    assert res.rc == 2, res.stdout
    assert summary_line(res.stdout).endswith("check incomplete: no object read")


# ------------------------------------------- stable identity, two gates (#21)
def _asm_object(tmp_path, name: str, body: str, align: int = 4, tail: bool = True):
    """An object whose function f in .text.f (2**align-aligned) is ``body``,
    calling the trampoline __SCT__x (defined GLOBAL in another section), and
    (``tail``) a function g whose tail call goes to it."""
    import subprocess
    src = tmp_path / f"{name}.s"
    src.write_text(
        '.section .text.tramp,"ax",@progbits\n.globl __SCT__x\n.type __SCT__x,@function\n'
        "__SCT__x:\n ret\n.size __SCT__x, 1\n"
        f'.section .text.f,"ax",@progbits\n.p2align {align}\n.globl f\n.type f,@function\n'
        f"f:\n{body}\n ret\n.size f, .-f\n"
        + ('.section .text.g,"ax",@progbits\n.p2align 4\n.globl g\n.type g,@function\n'
           "g:\n jmp __SCT__x\n.size g, .-g\n" if tail else ""))
    obj = tmp_path / f"{name}.o"
    subprocess.run(["as", "--64", "-o", str(obj), str(src)], check=True)
    return obj


def test_a_call_moved_into_depends_is_a_layout_finding_within_chance(cli, tmp_path):
    """The issue's case: an edit before a static call moves it from offset 4
    (never crossing) to 0xf (depends on placement).  It is the same site (its
    identity has no offset and no verdict), now a *layout* finding: within the
    chance rate it does not fail the gate; strictly it does."""
    obj = _asm_object(tmp_path, "x", " .skip 4, 0x90\n call __SCT__x")
    base = tmp_path / "base.json"
    assert cli("scan", "--format", "json", "-o", base, obj).rc == 0
    _asm_object(tmp_path, "x", " .skip 15, 0x90\n call __SCT__x")     # the edit, rebuilt
    res = cli("check", "--baseline", base, obj)
    assert res.rc == 0, res.stdout
    assert finding_lines(res.stdout) == []
    last = summary_line(res.stdout)
    assert "1 known, 1 new" in last
    assert last.endswith("check passed: 0 new structural fallback sites; "
                         "layout: 1 crossing of 1 call, chance 0.2, limit 2")
    doc = cli("check", "--format", "json", "--baseline", base, obj).json()
    jsonschema.validate(doc, schema("check"))
    states = {f["function"]: (f["baseline_state"], f["gate"], f["fails"]) for f in doc["findings"]}
    assert states == {"f": ("new", "layout", False), "g": ("unchanged", "structural", False)}
    assert doc["findings"][0]["id"] == {"object": "x.o", "function": "f",
                                        "trampoline": "__SCT__x", "kind": "call", "ordinal": 0}
    res = cli("check", "--layout-gate", "strict", "--baseline", base, obj)
    assert res.rc == 1 and len(finding_lines(res.stdout)) == 1
    assert "may-cross-cache-line" in finding_lines(res.stdout)[0]
    assert "layout (strict): 1 crossing of 1 call, 1 new" in summary_line(res.stdout)
    # diff: the same site, changed (patchable -> fallback); not added
    new = tmp_path / "new.json"
    cli("scan", "--format", "json", "-o", new, obj)
    d = cli("diff", base, new)
    assert "0 added, 0 removed, 1 changed, 1 unchanged" in d.stdout


def test_a_new_structural_finding_fails_whatever_the_layout(cli, tmp_path):
    obj = _asm_object(tmp_path, "x", " call __SCT__x")
    base = tmp_path / "base.json"
    cli("scan", "--format", "json", "-o", base, obj)
    _asm_object(tmp_path, "x", " call __SCT__x\n jmp __SCT__x")
    res = cli("check", "--baseline", base, obj)
    assert res.rc == 1
    assert [x.split("not patchable: ")[1].split()[0] for x in finding_lines(res.stdout)] == [
        "tail-call"]
    assert "1 new structural fallback site" in summary_line(res.stdout)


def test_layout_findings_above_chance_fail(cli, tmp_path):
    """40 calls, each 12 bytes past a 16-byte boundary: every one may cross,
    against 10 expected by chance (sigma 2.7): over the limit of 19."""
    body = "\n".join(" .p2align 4\n .skip 12, 0x90\n call __SCT__x" for _ in range(40))
    obj = _asm_object(tmp_path, "many", body)
    res = cli("check", obj)
    assert res.rc == 1
    assert len(finding_lines(res.stdout)) == 41          # the 40, and g's tail call
    assert summary_line(res.stdout).endswith(
        "check failed: 1 structural fallback site, at most 0 allowed; "
        "layout: 40 crossing of 40 calls, chance 10.0, over the limit of 19")
    doc = cli("check", "--format", "json", obj).json()
    assert doc["check"]["layout"] == {"mode": "chance", "pinned": False, "calls": 40,
                                      "findings": 40, "new": 40, "expected": 10.0,
                                      "sigma": 2.739, "baseline": None, "limit": 19,
                                      "excess": 21}
    # a baseline that holds them raises the limit to its count (+3 sigma)
    base = tmp_path / "b.json"
    cli("scan", "--format", "json", "-o", base, obj)
    assert cli("check", "--allow-tail", "--baseline", base, obj).rc == 0


def test_a_pinned_build_gates_crossing_strictly(cli, tmp_path):
    """Sections aligned to the cache line (what the assembler's padding flags
    leave) pin the layout: a crossing call is then a real defect, and auto is
    strict; --layout-gate chance overrides it."""
    obj = _asm_object(tmp_path, "p", " .skip 62, 0x90\n call __SCT__x", align=6, tail=False)
    res = cli("check", obj)
    assert res.rc == 1 and "crosses-cache-line" in res.stdout
    assert "layout (strict, pinned alignment): 1 crossing of 1 call, 1 new" in res.stdout
    assert cli("check", "--layout-gate", "chance", obj).rc == 0


def test_identity_has_an_ordinal_and_no_verdict():
    """A finding's stable id is (object, function, trampoline, kind, ordinal);
    a site that turned fallback in place of a patchable one is new, one that
    stays fallback for another reason is updated (not failing)."""
    cur = [site(kind="call", reason=None, off=1), site(kind="call", off=5,
                                                       reason="crosses-cache-line")]
    base = Report("b", {}, [site(kind="call", reason=None, off=2),
                            site(kind="call", reason="may-cross-cache-line", off=7)])
    res = check(cur, 0, base)
    [f] = res.findings
    assert f.stable_id == ("a.o", "f", "__SCT__x", "call", 1) and f.state == "updated"
    assert res.passed and not res.gone
    base = Report("b", {}, [site(kind="call", reason=None, off=2),
                            site(kind="call", reason=None, off=7)])
    res = check(cur, 0, base, layout_mode="strict")
    assert res.findings[0].state == "new" and res.failing == 1 and not res.passed


def test_an_old_baseline_still_matches(cli, lint_o, tmp_path):
    """A baseline from before the stable identity (and without the fields
    reports gained since: placement) loads and matches as before."""
    base = tmp_path / "old.json"
    cli("scan", "--format", "json", "-o", base, lint_o)
    doc = json.loads(base.read_text())
    for o in doc["objects"]:
        for s in o["sites"]:
            s.pop("placement", None)
    base.write_text(json.dumps(doc))
    res = cli("check", "--baseline", base, lint_o)
    assert res.rc == 0 and "1 known, 0 new" in res.stdout, res.stdout
