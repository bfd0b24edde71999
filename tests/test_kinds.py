"""Site kinds, references and non-sites on testdata/src/kinds.S, checked both
on a freshly assembled object and on the committed testdata/prebuilt/kinds.o,
plus the JSON/text report and error handling of `scan`."""
from __future__ import annotations

import re

import pytest

from scall_testlib import (PREBUILT, assert_error_line, by_pos, copy, functions,
                           objdump_branches, scan_lib, section_bytes, sections, sites_of)

# (section, offset, function, function_offset, trampoline, key, kind, length,
#  prefixes, reloc_type, crossing) in the order the report must list them.
EXPECTED_SITES = [
    (".text", 0x00, "f_call", 0, "__SCT__foo", "__SCK__foo", "call", 5, "", "R_X86_64_PLT32", "never"),
    (".text", 0x10, "f_tail", 0, "__SCT__foo", "__SCK__foo", "tail", 5, "", "R_X86_64_PLT32", "never"),
    (".text", 0x22, "f_jcc", 2, "__SCT__bar", "__SCK__bar", "jcc-tail", 6, "", "R_X86_64_PLT32", "never"),
    (".text", 0x30, "f_cs", 0, "__SCT__foo", "__SCK__foo", "prefixed-call", 6, "2e", "R_X86_64_PLT32", "never"),
    (".text", 0x40, "f_addr32", 0, "__SCT__foo", "__SCK__foo", "prefixed-call", 6, "67", "R_X86_64_PLT32", "never"),
    (".text", 0x50, "f_indirect", 0, "__SCT__foo", "__SCK__foo", "indirect", 6, "", "R_X86_64_GOTPCRELX", None),
    (".text", 0x56, "f_indirect", 6, "__SCT__bar", "__SCK__bar", "indirect", 6, "", "R_X86_64_GOTPCRELX", None),
    (".text", 0x6e, "f_refs", 0xe, "__SCT__bar", "__SCK__bar", "call", 5, "", "R_X86_64_PLT32", "depends"),
    (".text", 0xa0, "f_baz", 0, "__SCT__baz", "__SCK__baz", "call", 5, "", "R_X86_64_PLT32", "never"),
    (".text", 0xa5, "f_baz", 5, "__SCT__baz", "__SCK__baz", "tail", 5, "", "R_X86_64_PLT32", "never"),
]

# (section, relocation offset, function, symbol, reloc_type, kind)
EXPECTED_REFS = sorted([
    (".text", 0x63, "f_refs", "__SCT__foo", "R_X86_64_PC32", "address"),      # leaq
    (".text", 0x6a, "f_refs", "__SCT__foo", "R_X86_64_32S", "address"),       # movq $
    (".text", 0x81, "f_plus8", "__SCT__foo", "R_X86_64_PC32", "address"),     # call +8
    (".text", 0xb2, "f_bad", "__SCT__foo", "R_X86_64_PLT32", "unproven"),     # after 0x06
    (".data", 0x08, None, "__SCT__foo", "R_X86_64_64", "data"),               # .quad
])


@pytest.fixture(params=["src", "prebuilt"])
def kinds_obj(request, build, tmp_path):
    if request.param == "src":
        return build("kinds.S")
    return copy(PREBUILT / "kinds.o", tmp_path / "kinds-prebuilt.o")


def test_every_kind_is_found_and_classified(kinds_obj):
    rep = scan_lib(kinds_obj)
    got = [(s["section"], s["offset"], s["function"], s["function_offset"], s["trampoline"],
            s["key"], s["kind"], s["length"], s["prefixes"], s["reloc_type"], s["crossing"])
           for s in sites_of(rep)]
    assert got == EXPECTED_SITES
    for s in sites_of(rep):
        assert s["address"] is None          # relocatable object: no final address
        assert s["alignment"] == 16          # .text is .p2align 4


def test_site_bytes_match_kind(kinds_obj):
    """Each reported instruction really has the encoding its kind names."""
    text = section_bytes(kinds_obj, ".text")
    rep = scan_lib(kinds_obj)
    assert len(sites_of(rep)) == len(EXPECTED_SITES)
    for s in sites_of(rep):
        insn = text[s["offset"]:s["offset"] + s["length"]]
        pfx = bytes.fromhex(s["prefixes"])
        assert insn.startswith(pfx)
        body = insn[len(pfx):]
        if s["kind"] in ("call", "prefixed-call"):
            assert body[0] == 0xE8 and len(body) == 5
            assert (s["kind"] == "prefixed-call") == bool(pfx)
        elif s["kind"] == "tail":
            assert body[0] == 0xE9 and len(body) == 5 and not pfx
        elif s["kind"] == "jcc-tail":
            assert body[0] == 0x0F and 0x80 <= body[1] <= 0x8F and len(body) == 6
        elif s["kind"] == "indirect":
            assert body[:2] in (b"\xff\x15", b"\xff\x25") and len(body) == 6
        else:
            pytest.fail(f"unknown kind {s['kind']}")


def test_objdump_agrees_on_direct_branches(kinds_obj):
    """The direct branches objdump shows to a GLOBAL trampoline's entry are
    exactly the call/tail/jcc-tail/prefixed-call sites (the one to the LOCAL
    __SCT__local and the undecodable one in f_bad excepted)."""
    od = objdump_branches(kinds_obj)["sites"]
    od = {k: v for k, v in od.items() if v[1] != "__SCT__local" and k != (".text", 0xb1)}
    rep = scan_lib(kinds_obj)
    mine = {(s["section"], s["offset"]): ("call" if s["kind"] == "prefixed-call" else s["kind"],
                                          s["trampoline"])
            for s in sites_of(rep) if s["kind"] != "indirect"}
    # objdump starts a prefixed call after its prefix byte only when it does
    # not know it; binutils 2.40 shows "cs call"/"addr32 call" as one insn.
    assert mine == od


def test_references(kinds_obj):
    rep = scan_lib(kinds_obj)
    refs = rep["objects"][0]["references"]
    got = sorted((r["section"], r["offset"], r["function"], r["symbol"], r["reloc_type"], r["kind"])
                 for r in refs)
    assert got == EXPECTED_REFS
    for r in refs:
        assert isinstance(r["detail"], str) and r["detail"]


def test_reference_function_offset_matches_offset(kinds_obj):
    """A reference's function_offset locates the same byte as its section
    offset: offset - (function's start) for a reference inside a function."""
    funcs = functions(kinds_obj)
    rep = scan_lib(kinds_obj)
    refs = rep["objects"][0]["references"]
    assert len(refs) == len(EXPECTED_REFS)
    for r in refs:
        if r["function"] is None:
            assert r["function_offset"] is None
            continue
        sec, start, _size = funcs[r["function"]]
        assert sec == r["section"]
        assert r["function_offset"] == r["offset"] - start, r


def test_site_function_offset_matches_offset(kinds_obj):
    funcs = functions(kinds_obj)
    for s in sites_of(scan_lib(kinds_obj)):
        sec, start, size = funcs[s["function"]]
        assert sec == s["section"]
        assert s["function_offset"] == s["offset"] - start
        assert s["offset"] + s["length"] <= start + size


def test_non_sites_are_not_reported(kinds_obj):
    rep = scan_lib(kinds_obj)
    obj = rep["objects"][0]
    sites = by_pos(rep)
    refs = {(r["section"], r["offset"]) for r in obj["references"]}
    # call memcpy at .text+0x05 (rel32 at 0x06)
    assert (".text", 0x05) not in sites and (".text", 0x06) not in refs
    # the call to the LOCAL __SCT__local at 0x90 is neither a site nor a reference
    assert (".text", 0x90) not in sites and (".text", 0x91) not in refs
    assert "__SCT__local" not in {s["trampoline"] for s in obj["sites"]}
    assert "__SCT__local" not in {r["symbol"] for r in obj["references"]}
    # the undecodable f_bad call is not a site; the +8 call is not a site
    assert (".text", 0xb1) not in sites and (".text", 0x80) not in sites
    # nothing inside the trampoline __SCT__baz or in .text.local
    assert not [s for s in obj["sites"] if s["section"] in (".static_call.text", ".text.local")]


def test_summaries(kinds_obj):
    rep = scan_lib(kinds_obj)
    want = {"sites": 10, "patchable": 2, "fallback": 8, "references": 5,
            "by_kind": {"call": 3, "tail": 2, "jcc-tail": 1, "prefixed-call": 2, "indirect": 2},
            "by_reason": {"tail-call": 2, "conditional-tail-call": 1, "prefixed": 2,
                          "indirect": 2, "may-cross-cache-line": 1}}
    osum = rep["objects"][0]["summary"]
    for k, v in want.items():
        assert osum[k] == v, k
        assert rep["summary"][k] == v, k
    assert rep["summary"]["objects"] == 1


def test_json_top_level(kinds_obj):
    rep = scan_lib(kinds_obj)
    assert rep["schema_version"] == 1
    assert rep["tool"]["name"] == "scall-objtool" and rep["tool"]["version"]
    pol = rep["policy"]
    assert pol["name"] == "seed" and pol["allow_tail"] is False
    assert pol["cache_line"] == 64 and pol["assume_align"] is None
    assert pol["module"] is False
    assert pol["tramp_prefix"] == "__SCT__" and pol["key_prefix"] == "__SCK__"
    (obj,) = rep["objects"]
    assert obj["path"] == str(kinds_obj)
    assert obj["elf_type"] == "REL"
    assert obj["existing_table"] is None


def test_text_output_mentions_every_site(cli, kinds_obj):
    r = cli("scan", kinds_obj)
    assert r.rc == 0, r.stderr
    lines = r.stdout.splitlines()
    used = set()
    for s in sites_of(scan_lib(kinds_obj)):
        offs = {hex(s["offset"]), hex(s["function_offset"])}
        hits = [i for i, l in enumerate(lines)
                if s["function"] in l and s["trampoline"] in l
                and re.search(rf"(?<![\w-]){re.escape(s['kind'])}(?![\w-])", l)
                and any(o in l for o in offs) and i not in used]
        assert hits, f"no line for {s['function']}+{s['function_offset']:#x} {s['kind']}:\n{r.stdout}"
        used.add(hits[0])
    # and the fallback reasons are spelled out
    for reason in ("tail-call", "conditional-tail-call", "prefixed", "indirect", "may-cross-cache-line"):
        assert reason in r.stdout


def test_scan_several_objects_and_output_file(cli, build, tmp_path):
    k = build("kinds.S")
    c = build("crossing.S")
    out = tmp_path / "report.json"
    r = cli("scan", "--format", "json", "-o", out, k, c)
    assert r.rc == 0, r.stderr
    import json
    rep = json.loads(out.read_text())
    assert [o["path"] for o in rep["objects"]] == [str(k), str(c)]
    assert rep["summary"]["objects"] == 2
    assert rep["summary"]["sites"] == 10 + 17
    assert rep["summary"]["sites"] == sum(o["summary"]["sites"] for o in rep["objects"])
    assert rep["summary"]["references"] == 5


def test_custom_prefixes(kinds_obj):
    # only __SCT__b* are trampolines; the key is key-prefix + (name - prefix)
    rep = scan_lib("--tramp-prefix", "__SCT__b", "--key-prefix", "KEY_", kinds_obj)
    got = [(s["offset"], s["trampoline"], s["key"], s["kind"]) for s in sites_of(rep)]
    assert got == [(0x22, "__SCT__bar", "KEY_ar", "jcc-tail"),
                   (0x56, "__SCT__bar", "KEY_ar", "indirect"),
                   (0x6e, "__SCT__bar", "KEY_ar", "call"),
                   (0xa0, "__SCT__baz", "KEY_az", "call"),
                   (0xa5, "__SCT__baz", "KEY_az", "tail")]
    assert rep["policy"]["tramp_prefix"] == "__SCT__b"
    assert rep["policy"]["key_prefix"] == "KEY_"
    assert rep["objects"][0]["references"] == []


def test_site_order_is_section_then_offset(build):
    obj = build("crossing.S")
    secs = sections(obj)
    rep = scan_lib(obj)
    keys = [(secs[s["section"]]["index"], s["offset"]) for s in sites_of(rep)]
    assert keys == sorted(keys)
    assert len({s["section"] for s in sites_of(rep)}) == 3


# ------------------------------------------------------------------ errors
def test_not_elf_is_an_input_error(cli, tmp_path):
    bad = tmp_path / "notelf.o"
    bad.write_bytes(b"this is not an ELF file\n" * 10)
    before = bad.read_bytes()
    assert_error_line(cli("scan", bad), bad)
    assert_error_line(cli("write", bad), bad)
    assert bad.read_bytes() == before


def test_truncated_elf_is_an_input_error(cli, build, tmp_path):
    obj = build("kinds.S")
    cut = tmp_path / "cut.o"
    cut.write_bytes(obj.read_bytes()[:200])
    assert_error_line(cli("scan", cut), cut)


def test_missing_file_is_an_input_error(cli, tmp_path):
    assert_error_line(cli("scan", tmp_path / "nope.o"), tmp_path / "nope.o")


@pytest.mark.parametrize("args", [
    ["scan", "--cache-line", "48"],
    ["scan", "--assume-align", "3"],
    ["scan", "--policy", "bogus"],
    ["scan", "--format", "xml"],
])
def test_usage_errors(cli, build, args):
    obj = build("kinds.S")
    r = cli(*args, obj)
    assert r.rc == 2, (args, r.rc, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stdout == ""
