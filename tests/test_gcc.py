"""gcc-compiled objects: testdata/src/staticcall.c at -O0/-O2/-Os with and
without -ffunction-sections, nostatic.c (no static calls at all), and the
committed prebuilt objects staticcall-O2.o, nostatic-O2.o and demo.o."""
from __future__ import annotations

import pytest

from scall_testlib import (PREBUILT, assert_error_line, copy, crossing, expected_table,
                           functions, objdump_branches, read_table, scan_lib, sections,
                           sites_of, symbol, write_lib)

VARIANTS = [(o, fs) for o in ("-O0", "-O2", "-Os") for fs in ((), ("-ffunction-sections",))]
IDS = [o + ("-fs" if fs else "") for o, fs in VARIANTS]
# static calls written in staticcall.c: 5 plain calls (sc_one 1, sc_two 3,
# sc_loop 1) and 2 in tail position (sc_tail, and sc_cond's void call)
CALLS, TAILS = 5, 2


@pytest.fixture(params=VARIANTS, ids=IDS)
def variant(request, build):
    opt, fs = request.param
    return opt, bool(fs), build("staticcall.c", opt, *fs)


def test_sites_match_objdump(variant):
    opt, fs, obj = variant
    od = objdump_branches(obj)
    rep = scan_lib(obj)
    mine = {(s["section"], s["offset"]): (s["kind"], s["trampoline"]) for s in sites_of(rep)}
    assert mine == od["sites"]
    kinds = [k for k, _ in mine.values()]
    if opt == "-O0":
        # gcc -O0 loads the trampoline's address and calls through a register:
        # no sites, only address references, one for each static call written
        assert mine == {}
        refs = rep["objects"][0]["references"]
        assert len(refs) == CALLS + TAILS == len(od["other"])
        assert {(r["section"], r["offset"]) for r in refs} == {(o[0], o[1]) for o in od["other"]}
        assert all(r["kind"] == "address" for r in refs)
    else:
        assert kinds.count("call") == CALLS and kinds.count("tail") == TAILS
        assert rep["objects"][0]["references"] == []
        assert od["other"] == []
    if fs and mine:
        assert all(sec.startswith(".text.") for sec, _ in mine)
        assert len({sec for sec, _ in mine}) == 5   # one section per function


def test_functions_keys_and_crossing(variant):
    opt, fs, obj = variant
    funcs = functions(obj)
    secs = sections(obj)
    rep = scan_lib(obj)
    for s in sites_of(rep):
        sec, start, size = funcs[s["function"]]
        assert sec == s["section"] and start <= s["offset"] < start + size
        assert s["function_offset"] == s["offset"] - start
        name = s["trampoline"][len("__SCT__"):]
        assert s["key"] == "__SCK__" + name and name in ("sc_alpha", "sc_beta", "sc_notify")
        assert s["length"] == 5 and s["prefixes"] == ""
        assert s["reloc_type"] == "R_X86_64_PLT32"
        assert s["crossing"] == crossing(s["offset"], 5, secs[s["section"]]["align"])
        assert s["patchable"] == (s["kind"] == "call" and s["crossing"] == "never")
    if fs:
        sc_tail = [s for s in sites_of(rep) if s["function"] == "sc_tail"]
        if opt != "-O0":
            assert [s["kind"] for s in sc_tail] == ["tail"]
            assert sc_tail[0]["section"] == ".text.sc_tail"


def test_kernel_write_lists_every_direct_branch(variant):
    opt, fs, obj = variant
    od = objdump_branches(obj)["sites"]
    want = sorted((sec, off, "__SCK__" + sym[len("__SCT__"):], 1 if kind != "call" else 0)
                  for (sec, off), (kind, sym) in od.items())
    before = obj.read_bytes()
    write_lib("--policy", "kernel", obj)
    if opt == "-O0":
        assert want == [] and obj.read_bytes() == before
    else:
        assert len(want) == CALLS + TAILS
        assert read_table(obj) == want


def test_seed_write(variant):
    opt, fs, obj = variant
    rep = scan_lib(obj)
    write_lib(obj)
    want = expected_table(rep)
    assert read_table(obj) == (want or None)
    assert all(flag == 0 for *_, flag in want)


# ------------------------------------------------------------- no statics
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_nostatic_object_is_left_alone(build, tmp_path, opt):
    obj = build("nostatic.c", opt)
    rep = scan_lib(obj)
    assert rep["objects"][0]["sites"] == [] and rep["objects"][0]["references"] == []
    assert rep["summary"]["sites"] == 0 and rep["summary"]["references"] == 0
    before = obj.read_bytes()
    for args in ([], ["--policy", "kernel"], ["--force", "--module"], ["--strict-keys"]):
        write_lib(*args, obj)
        assert obj.read_bytes() == before, args
    out = tmp_path / "copy.o"
    write_lib("-o", out, obj)
    assert obj.read_bytes() == before
    assert out.read_bytes() == before


def test_nostatic_prebuilt(tmp_path):
    obj = copy(PREBUILT / "nostatic-O2.o", tmp_path / "nostatic.o")
    before = obj.read_bytes()
    rep = scan_lib(obj)
    assert rep["summary"]["sites"] == 0 and rep["summary"]["references"] == 0
    write_lib("--policy", "kernel", obj)
    assert obj.read_bytes() == before


# ---------------------------------------------------------- module-style
def test_module_object_without_keys(cli, build):
    """static_call_mod(): no __SCK__ symbol in the object at all."""
    obj = build("staticcall.c", "-O2", "-DSCALL_MOD")
    assert not [s for s in (symbol(obj, "__SCK__" + n) for n in ("sc_alpha", "sc_beta",
                                                                 "sc_notify")) if s]
    before = obj.read_bytes()
    r = cli("write", "--policy", "kernel", "--strict-keys", obj)
    assert_error_line(r, obj)
    assert obj.read_bytes() == before
    od = objdump_branches(obj)["sites"]
    write_lib("--policy", "kernel", "--module", obj)
    assert read_table(obj) == sorted((sec, off, sym, 1 if kind != "call" else 0)
                                     for (sec, off), (kind, sym) in od.items())
    assert symbol(obj, "__SCK__sc_alpha") is None


def test_non_module_object_without_keys_gets_them(build):
    obj = build("staticcall.c", "-Os", "-DSCALL_MOD")
    write_lib("--policy", "kernel", obj)
    for n in ("sc_alpha", "sc_beta", "sc_notify"):
        sym = symbol(obj, "__SCK__" + n)
        assert sym is not None and sym["bind"] == "STB_GLOBAL" and sym["shndx"] == "SHN_UNDEF"
    keys = {k for _, _, k, _ in read_table(obj)}
    assert keys == {"__SCK__sc_alpha", "__SCK__sc_beta", "__SCK__sc_notify"}


# ------------------------------------------------------------- prebuilt
# staticcall-O2.o (gcc 12.2 -O2, .text sh_addralign 16; functions at sc_one
# 0x00, sc_two 0x20, sc_loop 0x60, sc_tail 0xd0, sc_cond 0xe0)
PREBUILT_SC = [
    # offset, function, function_offset, tramp, kind, crossing, seed reason
    (0x01, "sc_one", 0x1, "sc_alpha", "call", "never", None),
    (0x26, "sc_two", 0x6, "sc_alpha", "call", "never", None),
    (0x2f, "sc_two", 0xf, "sc_beta", "call", "depends", "may-cross-cache-line"),
    (0x40, "sc_two", 0x20, "sc_notify", "call", "never", None),
    (0x82, "sc_loop", 0x22, "sc_beta", "call", "never", None),
    (0xda, "sc_tail", 0xa, "sc_beta", "tail", "never", "tail-call"),
    (0xee, "sc_cond", 0xe, "sc_notify", "tail", "depends", "tail-call"),
]


def test_prebuilt_staticcall(tmp_path):
    obj = copy(PREBUILT / "staticcall-O2.o", tmp_path / "sc.o")
    rep = scan_lib(obj)
    got = [(s["offset"], s["function"], s["function_offset"], s["trampoline"], s["kind"],
            s["crossing"], s["reason"]) for s in sites_of(rep)]
    assert got == [(o, f, fo, "__SCT__" + t, k, c, r) for o, f, fo, t, k, c, r in PREBUILT_SC]
    assert all(s["section"] == ".text" and s["alignment"] == 16 for s in sites_of(rep))
    # --allow-tail: the tail that never crosses becomes patchable, the other
    # one now falls back for its crossing
    rep = scan_lib("--allow-tail", obj)
    reasons = {s["offset"]: s["reason"] for s in sites_of(rep)}
    assert reasons[0xda] is None and reasons[0xee] == "may-cross-cache-line"
    # --assume-align 64: 0x2f % 64 = 47 -> never
    rep = scan_lib("--assume-align", "64", obj)
    assert [s["offset"] for s in sites_of(rep) if s["patchable"]] == [0x01, 0x26, 0x2f, 0x40, 0x82]
    write_lib(obj)
    assert read_table(obj) == [(".text", o, "__SCK__" + t, 0)
                               for o, _, _, t, _, _, r in PREBUILT_SC if r is None]


def test_prebuilt_demo(tmp_path):
    """The README quick start's object: 3 calls + 1 tail call of demo_hook."""
    obj = copy(PREBUILT / "demo.o", tmp_path / "demo.o")
    assert symbol(obj, "__SCK__demo_hook")["shndx"] == "SHN_UNDEF"
    rep = scan_lib(obj)
    got = [(s["function"], s["kind"], s["patchable"], s["reason"]) for s in sites_of(rep)]
    assert got == [("demo_sum", "call", True, None), ("demo_sum", "call", True, None),
                   ("demo_twice", "call", True, None),
                   ("demo_forward", "tail", False, "tail-call")]
    # -g: the debug info's relocations are not references
    assert rep["objects"][0]["references"] == []
    out = tmp_path / "demo-kernel.o"
    write_lib("--policy", "kernel", "-o", out, obj)
    assert read_table(out) == [(".text", 0x08, "__SCK__demo_hook", 0),
                               (".text", 0x11, "__SCK__demo_hook", 0),
                               (".text", 0x24, "__SCK__demo_hook", 0),
                               (".text", 0x33, "__SCK__demo_hook", 1)]
    write_lib(obj)
    assert read_table(obj) == [(".text", 0x08, "__SCK__demo_hook", 0),
                               (".text", 0x11, "__SCK__demo_hook", 0),
                               (".text", 0x24, "__SCK__demo_hook", 0)]


def test_demo_source_matches_prebuilt(build):
    """demo.c still builds to the same sites as the committed demo.o."""
    obj = build("demo.c", "-O2", "-g")
    rep = scan_lib(obj)
    assert [(s["function"], s["kind"]) for s in sites_of(rep)] == [
        ("demo_sum", "call"), ("demo_sum", "call"), ("demo_twice", "call"),
        ("demo_forward", "tail")]
