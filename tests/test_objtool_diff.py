"""Differential tests against objtool 6.1 (`objtool --static-call [--module]`,
Debian's linux-kbuild-6.1): on the same object, objtool's table and the one
`scall-objtool write --policy kernel [--module]` writes must list the same
(site section, site offset, key symbol, flags), compared as sorted lists
(objtool lists tail calls first), and `scan --policy kernel` must call
exactly objtool's sites patchable."""
from __future__ import annotations

import pytest

from scall_testlib import (PREBUILT, assert_error_line, copy, read_table, run_objtool, scan_lib,
                           sites_of, write_lib, write_ok)

# id -> (source, build flags, module?)  Non-module objects have every key.
CASES = {
    "kinds-allkeys": ("kinds.S", ("--defsym", "OBJTOOL=1", "--defsym", "ALL_KEYS=1"), False),
    "kinds-allkeys-module": ("kinds.S", ("--defsym", "OBJTOOL=1", "--defsym", "ALL_KEYS=1"), True),
    "kinds-nobarkey-module": ("kinds.S", ("--defsym", "OBJTOOL=1"), True),
    "crossing": ("crossing.S", (), False),
    "crossing-module": ("crossing.S", (), True),
    "sc-O0": ("staticcall.c", ("-O0",), False),
    "sc-O2": ("staticcall.c", ("-O2",), False),
    "sc-Os": ("staticcall.c", ("-Os",), False),
    "sc-O2-fs": ("staticcall.c", ("-O2", "-ffunction-sections"), False),
    "sc-Os-fs": ("staticcall.c", ("-Os", "-ffunction-sections"), False),
    "sc-O2-module": ("staticcall.c", ("-O2",), True),
    "sc-O2-nokeys-module": ("staticcall.c", ("-O2", "-DSCALL_MOD"), True),
    "sc-Os-fs-nokeys-module": ("staticcall.c", ("-Os", "-ffunction-sections", "-DSCALL_MOD"), True),
    "sc-O2-fnopie": ("staticcall.c", ("-O2", "-fno-pie", "-mcmodel=kernel"), False),
    "demo-O2-g": ("demo.c", ("-O2", "-g"), False),
    "nostatic-O2": ("nostatic.c", ("-O2",), False),
}
PREBUILT_CASES = {
    "prebuilt-crossing": ("crossing.o", False),
    "prebuilt-staticcall-O2": ("staticcall-O2.o", False),
    "prebuilt-demo": ("demo.o", False),
    "prebuilt-nostatic": ("nostatic-O2.o", False),
}
# objects with no direct branch to a trampoline at all
NO_SITES = {"sc-O0", "nostatic-O2", "prebuilt-nostatic"}


def _objtool_table(objtool, obj, module):
    p = run_objtool(objtool, obj, *(["--module"] if module else []))
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr and "error" not in p.stderr, p.stderr
    return read_table(obj)


def _diff(objtool, tmp_path, src_obj, module, case):
    flags = ["--module"] if module else []
    a = copy(src_obj, tmp_path / "objtool.o")
    b = copy(src_obj, tmp_path / "scall.o")
    theirs = _objtool_table(objtool, a, module)
    write_lib("--policy", "kernel", *flags, b)
    ours = read_table(b)
    assert ours == theirs
    if case in NO_SITES:
        assert theirs is None and b.read_bytes() == src_obj.read_bytes()
    else:
        assert theirs, "objtool found nothing: the case tests nothing"
    # the report's patchable sites are objtool's entries
    rep = scan_lib("--policy", "kernel", *flags, src_obj)
    patchable = sorted((s["section"], s["offset"], 1 if s["kind"] in ("tail", "jcc-tail") else 0)
                       for s in sites_of(rep) if s["patchable"])
    assert patchable == sorted((sec, off, fl) for sec, off, _k, fl in theirs or [])
    return theirs


@pytest.mark.parametrize("case", list(CASES))
def test_same_table_as_objtool(objtool, build, tmp_path, case):
    src, flags, module = CASES[case]
    obj = build(src, *flags)
    _diff(objtool, tmp_path, obj, module, case)


@pytest.mark.parametrize("case", list(PREBUILT_CASES))
def test_same_table_as_objtool_prebuilt(objtool, tmp_path, case):
    name, module = PREBUILT_CASES[case]
    obj = copy(PREBUILT / name, tmp_path / name)
    _diff(objtool, tmp_path, obj, module, case)


def test_module_key_fallback_matches_objtool(objtool, build, tmp_path):
    obj = build("kinds.S", "--defsym", "OBJTOOL=1")
    theirs = _diff(objtool, tmp_path, obj, True, "kinds-nobarkey-module")
    assert {k for _, _, k, _ in theirs} == {"__SCK__foo", "__SCK__baz", "__SCT__bar"}
    assert sum(fl for *_, fl in theirs) == 3            # jmp foo, jne bar, jmp baz


def test_missing_key_strict_like_objtool(cli, objtool, build, tmp_path):
    """Outside module mode objtool refuses a missing key; so does
    --strict-keys (and without it scall-objtool adds the key instead)."""
    obj = build("kinds.S", "--defsym", "OBJTOOL=1")
    a = copy(obj, tmp_path / "a.o")
    p = run_objtool(objtool, a)
    assert "can't find static_call_key symbol: __SCK__bar" in p.stderr
    b = copy(obj, tmp_path / "b.o")
    assert_error_line(cli("write", "--policy", "kernel", "--strict-keys", b), b)
    assert b.read_bytes() == obj.read_bytes()


@pytest.mark.parametrize("which", ["src", "prebuilt"])
def test_known_divergence_on_full_kinds(objtool, build, tmp_path, which):
    """kinds.S without OBJTOOL=1 has two constructs objtool counts as sites
    and scall-objtool deliberately does not: `call __SCT__foo+8` (objtool
    ignores the addend of a call's relocation) and the call after the
    undecodable byte in f_bad (objtool's decoder steps over 0x06)."""
    obj = build("kinds.S") if which == "src" else copy(PREBUILT / "kinds.o", tmp_path / "k.o")
    a = copy(obj, tmp_path / "objtool.o")
    theirs = _objtool_table(objtool, a, True)
    b = copy(obj, tmp_path / "scall.o")
    write_lib("--policy", "kernel", "--module", b)
    ours = read_table(b)
    extra = [(".text", 0x80, "__SCK__foo", 0), (".text", 0xb1, "__SCK__foo", 0)]
    assert theirs == sorted(ours + extra)
    rep = scan_lib("--policy", "kernel", "--module", obj)
    refs = {(r["section"], r["offset"]): r["kind"] for r in rep["objects"][0]["references"]}
    assert refs[(".text", 0x81)] == "address" and refs[(".text", 0xb2)] == "unproven"


def test_objtool_output_has_an_existing_table(cli, objtool, build, tmp_path):
    obj = build("staticcall.c", "-O2")
    _objtool_table(objtool, obj, False)
    theirs = read_table(obj)
    rep = scan_lib(obj)
    assert rep["objects"][0]["existing_table"] == {"entries": len(theirs)}
    before = obj.read_bytes()
    r = write_ok(cli, "--policy", "kernel", obj)
    assert f"scall-objtool: warning: {obj}: " in r.stderr
    assert obj.read_bytes() == before
    write_lib("--policy", "kernel", "--force", obj)
    assert read_table(obj) == theirs
    # and objtool, in turn, finds ours and leaves it alone
    mine = obj.read_bytes()
    p = run_objtool(objtool, obj)
    assert p.returncode == 0
    assert obj.read_bytes() == mine or read_table(obj) == theirs
