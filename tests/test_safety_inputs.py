"""Inputs that are not what they seem, and hostile reports (issue 10, items 16, 19-24;
issue 23 item 14: deep trees)."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from robust_harness import deep_tree, remove_tree
from scall_testlib import assert_error_line, require_tools

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "testdata" / "src"
SH = struct.Struct("<IIQQQQIIQQ")
SHT_NOBITS, SHF_COMPRESSED = 8, 0x800


def _sections(data: bytes):
    """(name, header offset, fields) of every section."""
    shoff, shnum, shstrndx = struct.unpack_from("<QHHHHHH", data, 0x28)[0], \
        *struct.unpack_from("<HH", data, 0x3C)
    hdrs = [list(SH.unpack_from(data, shoff + 64 * i)) for i in range(shnum)]
    strtab = hdrs[shstrndx]
    names = data[strtab[4]:strtab[4] + strtab[5]]
    for i, h in enumerate(hdrs):
        name = names[h[0]:names.index(b"\0", h[0])].decode()
        yield name, shoff + 64 * i, h


def patch_section(path: Path, name: str, **fields) -> None:
    """Set header fields (type, flags, size, ...) of the section called ``name``."""
    order = ["name", "type", "flags", "addr", "offset", "size", "link", "info",
             "addralign", "entsize"]
    data = bytearray(path.read_bytes())
    for sname, at, h in list(_sections(bytes(data))):
        if sname == name:
            for k, v in fields.items():
                h[order.index(k)] = v
            SH.pack_into(data, at, *h)
            path.write_bytes(bytes(data))
            return
    raise AssertionError(f"no section {name}")


@pytest.fixture
def kinds(tmp_path):
    out = tmp_path / "kinds.o"
    subprocess.run(["gcc", "-c", "-o", str(out), str(SRC / "kinds.S")], check=True,
                   capture_output=True)
    return out


@pytest.fixture
def report(cli, kinds, tmp_path):
    r = cli("scan", "--format", "json", kinds)
    assert r.rc == 0, r.stderr
    path = tmp_path / "report.json"
    path.write_text(r.stdout)
    return path


# ----------------------------------------------------------- 16: NOBITS sizes
def test_nobits_table_with_huge_size_is_never_counted(cli, kinds):
    r = cli("write", "-q", kinds)
    assert r.rc == 0, r.stderr
    patch_section(kinds, ".static_call_sites", type=SHT_NOBITS, size=1 << 40)
    before = kinds.read_bytes()
    v = cli("verify", kinds, timeout=120)
    assert_error_line(v, str(kinds))
    assert "SHT_NOBITS" in v.stderr
    s = cli("scan", "--format", "json", kinds, timeout=120)
    assert s.rc == 0 and "Traceback" not in s.stderr
    assert str(1 << 37) not in s.stdout
    assert s.json()["objects"][0]["existing_table"] is None      # not a table: ignored
    assert "SHT_NOBITS" in s.stderr
    assert kinds.read_bytes() == before


# ------------------------------------------------------- 19: unreadable baselines
@pytest.mark.parametrize("content", [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
    "",
    "{not json",
    "\udcff",
    '{"schema_version": 1}',
    "[]",
], ids=["deep-array", "deep-object", "empty", "broken", "not-utf8", "no-objects", "array"])
def test_bad_baseline_is_exit_2_never_1(cli, kinds, tmp_path, content):
    base = tmp_path / "base.json"
    base.write_text(content, errors="surrogateescape")
    r = cli("check", "--baseline", base, kinds)
    assert_error_line(r, str(base))


def test_missing_and_directory_baseline(cli, kinds, tmp_path):
    assert_error_line(cli("check", "--baseline", tmp_path / "nope.json", kinds))
    assert_error_line(cli("check", "--baseline", tmp_path, kinds))


# ------------------------------------------------------- 20: schema validation
def _mutated(report: Path, tmp_path: Path, fn) -> Path:
    doc = json.loads(report.read_text())
    fn(doc)
    out = tmp_path / "mutated.json"
    out.write_text(json.dumps(doc))
    return out


MUTATIONS = {
    "source-without-file": lambda d: d["objects"][0]["sites"][0].update(source={"line": 3}),
    "schema-version-true": lambda d: d.update(schema_version=True),
    "schema-version-float": lambda d: d.update(schema_version=1.0),
    "offset-negative": lambda d: d["objects"][0]["sites"][0].update(offset=-1),
    "offset-string": lambda d: d["objects"][0]["sites"][0].update(offset="0x10"),
    "kind-unknown": lambda d: d["objects"][0]["sites"][0].update(kind="jump"),
    "patchable-with-reason": lambda d: d["objects"][0]["sites"][0].update(
        patchable=True, reason="tail-call"),
    "no-summary": lambda d: d.pop("summary"),
    "objects-not-list": lambda d: d.update(objects={}),
    "site-extra-field": lambda d: d["objects"][0]["sites"][0].update(extra=1),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
@pytest.mark.parametrize("command", ["diff", "check"])
def test_invalid_report_is_one_error_line(cli, report, kinds, tmp_path, name, command):
    bad = _mutated(report, tmp_path, MUTATIONS[name])
    r = (cli("diff", report, bad) if command == "diff"
         else cli("check", "--baseline", bad, kinds))
    line = assert_error_line(r, str(bad))
    assert "not a scall-objtool JSON report" in line


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_validator_agrees_with_jsonschema(report, name, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from scall_objtool.report.jsonvalid import Invalid, validate
    from scall_objtool.report.jsondoc import schema
    doc = json.loads(report.read_text())
    validate(doc, "report-v1.json")
    jsonschema.Draft202012Validator(schema()).validate(doc)
    MUTATIONS[name](doc)
    if name == "schema-version-float":      # JSON Schema: 1.0 is the integer 1; the
        return                              # parser refuses it (test above)
    with pytest.raises(Invalid):
        validate(doc, "report-v1.json")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema()).validate(doc)


# --------------------------------------------------- 21: names escaped in diff
def test_diff_escapes_hostile_names(cli, report, tmp_path):
    evil = "__SCT__\x1b[31mred\u202eevil\nscall-objtool: error: forged"

    def poison(d):
        site = d["objects"][0]["sites"][0]
        site.update(trampoline=evil, function="f\x1b]0;title\x07",
                    source={"file": "a\u2066b\rc.c", "line": 1})
    bad = _mutated(report, tmp_path, poison)
    for args in ((report, bad), (bad, report)):
        r = cli("diff", *args)
        assert r.rc in (0, 1), r.stderr
        for ch in ("\x1b", "\u202e", "\u2066", "\r", "\x07"):
            assert ch not in r.stdout and ch not in r.stderr
        assert not any(line.startswith("scall-objtool: error: forged")
                       for line in r.stdout.splitlines())
        assert "\\x1b[31mred\\u202eevil\\nscall-objtool" in r.stdout
    j = cli("diff", "--format", "json", report, bad)
    assert "\x1b" not in j.stdout and json.loads(j.stdout)["added"]


def test_check_escapes_hostile_baseline_path(cli, report, kinds, tmp_path):
    bad = tmp_path / "x\x1b[2Jy.json"
    shutil.copyfile(report, bad)
    bad.write_text("[" * 5000)
    r = cli("check", "--baseline", bad, kinds)
    assert_error_line(r)
    assert "\x1b" not in r.stderr


# ------------------------------------------- 22: trampolines that are not code
def set_symbol_shndx(path: Path, name: bytes, shndx: int) -> None:
    data = bytearray(path.read_bytes())
    secs = list(_sections(bytes(data)))
    symtab = next(h for n, _, h in secs if h[1] == 2)
    strtab = secs[symtab[6]][2]
    names = data[strtab[4]:strtab[4] + strtab[5]]
    for at in range(symtab[4], symtab[4] + symtab[5], 24):
        off = struct.unpack_from("<I", data, at)[0]
        if names[off:names.index(b"\0", off)] == name:
            struct.pack_into("<H", data, at + 6, shndx)
            path.write_bytes(bytes(data))
            return
    raise AssertionError(name)


@pytest.mark.parametrize("directive", ["SHN_ABS", ".comm __SCT__foo, 8, 8"])
def test_abs_or_common_trampoline_is_not_a_trampoline(cli, tmp_path, directive):
    src = tmp_path / "t.s"
    src.write_text(f"""
        .globl __SCT__foo
        {directive if directive.startswith(".") else ""}
        .text
        .globl f
        .type f, @function
f:      call __SCT__foo
        ret
        .size f, .-f
""")
    obj = tmp_path / "t.o"
    subprocess.run(["as", "--64", "-o", str(obj), str(src)], check=True, capture_output=True)
    if directive == "SHN_ABS":          # gas folds a call to an absolute symbol
        set_symbol_shndx(obj, b"__SCT__foo", 0xFFF1)
    r = cli("scan", "--format", "json", obj)
    assert r.rc == 0, r.stderr
    assert r.json()["objects"][0]["sites"] == []
    before = obj.read_bytes()
    w = cli("write", obj)
    assert w.rc == 0, w.stderr
    assert b".static_call_sites" not in obj.read_bytes() or obj.read_bytes() == before


def test_undefined_trampoline_is_still_a_site(cli, tmp_path):
    src = tmp_path / "t.s"
    src.write_text(".text\n.globl f\n.type f, @function\nf: call __SCT__foo\nret\n"
                   ".size f, .-f\n")
    obj = tmp_path / "t.o"
    subprocess.run(["as", "--64", "-o", str(obj), str(src)], check=True, capture_output=True)
    r = cli("scan", "--format", "json", obj)
    assert [s["trampoline"] for s in r.json()["objects"][0]["sites"]] == ["__SCT__foo"]


# -------------------------------------------------- 23: compressed code sections
@pytest.mark.parametrize("command", ["scan", "check", "verify", "write"])
def test_compressed_code_section_is_refused(cli, kinds, command):
    patch_section(kinds, ".text", flags=0x6 | SHF_COMPRESSED)
    before = kinds.read_bytes()
    r = cli(command, kinds)
    line = assert_error_line(r, str(kinds))
    assert "SHF_COMPRESSED" in line
    assert kinds.read_bytes() == before


# --------------------------------------------------------- 24: LTO and bitcode
@pytest.fixture
def lto_object(tmp_path):
    out = tmp_path / "lto.o"
    subprocess.run(["gcc", "-O2", "-flto", "-c", "-o", str(out), str(SRC / "staticcall.c")],
                   check=True, capture_output=True)
    return out


def test_gcc_lto_object_fails_check_and_warns_in_scan(cli, lto_object, tmp_path):
    r = cli("check", lto_object)
    line = assert_error_line(r, str(lto_object))
    assert "no machine code" in line and "-ffat-lto-objects" in line
    s = cli("scan", lto_object)
    assert s.rc == 0
    assert "warning" in s.stderr and "no machine code" in s.stderr
    fat = tmp_path / "fat.o"
    subprocess.run(["gcc", "-O2", "-flto", "-ffat-lto-objects", "-c", "-o", str(fat),
                    str(SRC / "staticcall.c")], check=True, capture_output=True)
    f = cli("check", fat)
    assert f.rc in (0, 1) and "no machine code" not in f.stderr


@pytest.mark.parametrize("magic", [b"BC\xc0\xde\x35\x14\x00\x00",
                                   struct.pack("<5I", 0x0B17C0DE, 0, 20, 8, 7) + b"BC\xc0\xde"])
@pytest.mark.parametrize("command", ["scan", "check"])
def test_llvm_bitcode_is_named(cli, tmp_path, magic, command):
    obj = tmp_path / "bc.o"
    obj.write_bytes(magic + bytes(64))
    line = assert_error_line(cli(command, obj), str(obj))
    assert "LLVM bitcode" in line and "not an ELF file" not in line


def test_clang_lto_object_is_named(cli, tmp_path):
    require_tools("clang")
    obj = tmp_path / "cl.o"
    subprocess.run(["clang", "-O2", "-flto", "-c", "-o", str(obj), str(SRC / "staticcall.c")],
                   check=True, capture_output=True)
    assert "LLVM bitcode" in assert_error_line(cli("scan", obj), str(obj))


# ------------------------------------------- issue 23 item 14: deep trees
@pytest.fixture
def deep(tmp_path):
    """A directory for a deep tree, removed with rm -rf afterwards (pytest's
    cleanup of old temporary directories recurses, and fails past ~1,000)."""
    yield tmp_path / "deep"
    remove_tree(str(tmp_path / "deep"))


def test_a_tree_deeper_than_the_recursion_limit_is_walked(cli, deep):
    """A tree 1,500 levels deep gave a RecursionError in the walk: it is walked
    (iteratively), read and written."""
    kinds = (REPO / "testdata" / "prebuilt" / "kinds.o").read_bytes()
    path = deep_tree(str(deep), 1500, kinds)
    for cmd in (["scan", "-f", "json"], ["check", "-f", "json", "--max-fallback", "99"]):
        r = cli(*cmd, deep)
        assert r.rc == 0 and "Traceback" not in r.stderr, r.stderr
        assert r.json()["summary"]["sites"] == 10
    r = cli("write", "-q", deep)
    assert r.rc == 0, r.stderr
    with open(path, "rb") as f:
        assert f.read() != kinds


def test_a_directory_the_walk_cannot_list_is_an_error(cli, deep):
    """Past PATH_MAX a directory cannot be listed by name: one error line naming
    it and exit 2 (a walk used to pass over what it could not list, silently);
    the rest of the tree is still read."""
    kinds = (REPO / "testdata" / "prebuilt" / "kinds.o").read_bytes()
    deep_tree(str(deep), 2100, kinds)                  # 4,200 bytes of path
    shutil.copy(REPO / "testdata" / "prebuilt" / "kinds.o", deep / "top.o")
    r = cli("scan", "-f", "json", deep)
    assert r.rc == 2 and "Traceback" not in r.stderr, r.stderr
    [line] = r.stderr.splitlines()
    assert line.startswith(f"scall-objtool: error: {deep}/d/d/") \
        and line.endswith(": cannot list this directory: File name too long"), line
    assert [o["path"] for o in r.json()["objects"]] == [str(deep / "top.o")]
