"""Bad input: one line on stderr naming the file and the problem, exit 2, no
traceback, the input untouched -- for scan and for write."""
from __future__ import annotations

import hashlib
import struct
import subprocess

import pytest

from scall_testlib import PREBUILT, run_cli

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")


def _sections(data: bytes):
    h = EHDR.unpack_from(data)
    shoff, shnum = h[6], h[12]
    return [list(SHDR.unpack_from(data, shoff + 64 * i)) for i in range(shnum)], shoff


def _put_section(data: bytearray, index: int, fields) -> None:
    shoff = EHDR.unpack_from(data)[6]
    SHDR.pack_into(data, shoff + 64 * index, *fields)


def _find(data: bytes, sh_type: int) -> int:
    secs, _ = _sections(data)
    return next(i for i, s in enumerate(secs) if s[1] == sh_type)


def mutate(name: str, data: bytes) -> bytes:
    d = bytearray(data)
    h = list(EHDR.unpack_from(d))
    if name == "empty":
        return b""
    if name == "text":
        return b"this is not an object file\n"
    if name == "short-magic":
        return b"\x7fEL"
    if name == "truncated-header":
        return bytes(d[:40])
    if name == "class32":
        d[4] = 1
    elif name == "big-endian":
        d[5] = 2
    elif name == "bad-class":
        d[4] = 7
    elif name == "aarch64":
        h[2] = 183
        EHDR.pack_into(d, 0, *h)
    elif name == "core-file":
        h[1] = 4
        EHDR.pack_into(d, 0, *h)
    elif name == "shoff-beyond-eof":
        h[6] = len(d) + 4096
        EHDR.pack_into(d, 0, *h)
    elif name == "truncated-sections":
        return bytes(d[:EHDR.unpack_from(d)[6] + 100])
    elif name == "shstrndx-out-of-range":
        h[13] = 999
        EHDR.pack_into(d, 0, *h)
    elif name == "shentsize":
        h[11] = 32
        EHDR.pack_into(d, 0, *h)
    elif name == "section-past-eof":
        i = _find(d, 1)                     # first PROGBITS
        secs, _ = _sections(d)
        secs[i][4] = len(d) - 2
        _put_section(d, i, secs[i])
    elif name == "symtab-entsize":
        i = _find(d, 2)
        secs, _ = _sections(d)
        secs[i][9] = 16
        _put_section(d, i, secs[i])
    elif name == "symtab-link-loop":
        i = _find(d, 2)
        secs, _ = _sections(d)
        secs[i][6] = i                      # sh_link pointing at itself
        _put_section(d, i, secs[i])
    elif name == "symtab-link-out-of-range":
        i = _find(d, 2)
        secs, _ = _sections(d)
        secs[i][6] = 4000
        _put_section(d, i, secs[i])
    elif name == "shstrtab-no-nul":
        i = EHDR.unpack_from(d)[13]
        secs, _ = _sections(d)
        off, size = secs[i][4], secs[i][5]
        d[off:off + size] = b"A" * size
    elif name == "rela-info-out-of-range":
        i = _find(d, 4)
        secs, _ = _sections(d)
        secs[i][7] = 5000
        _put_section(d, i, secs[i])
    elif name == "rela-size":
        i = _find(d, 4)
        secs, _ = _sections(d)
        secs[i][5] -= 5
        _put_section(d, i, secs[i])
    elif name == "symbol-name-out-of-range":
        i = _find(d, 2)
        secs, _ = _sections(d)
        off = secs[i][4]
        struct.pack_into("<I", d, off + 24 * 3, 0x7FFFFFF0)
    else:
        raise AssertionError(name)
    return bytes(d)


MUTATIONS = ["empty", "text", "short-magic", "truncated-header", "class32", "big-endian",
             "bad-class", "aarch64", "core-file", "shoff-beyond-eof", "truncated-sections",
             "shstrndx-out-of-range", "shentsize", "section-past-eof", "symtab-entsize",
             "symtab-link-loop", "symtab-link-out-of-range", "shstrtab-no-nul",
             "rela-info-out-of-range", "rela-size", "symbol-name-out-of-range"]

EXPECT = {
    "empty": "truncated", "text": "not an ELF file", "short-magic": "truncated",
    "truncated-header": "truncated", "class32": "32-bit", "big-endian": "big-endian",
    "bad-class": "class", "aarch64": "AArch64", "core-file": "CORE",
    "shoff-beyond-eof": "beyond the end", "truncated-sections": "truncated",
    "shstrndx-out-of-range": "out of range", "shentsize": "entry size",
    "section-past-eof": "past the end", "symtab-entsize": "entry size",
    "symtab-link-loop": "string table", "symtab-link-out-of-range": "string table",
    "shstrtab-no-nul": "NUL", "rela-info-out-of-range": "invalid section",
    "rela-size": "multiple", "symbol-name-out-of-range": "outside its string table",
}


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_one_error(res, path, words: str):
    assert res.rc == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert lines[0].startswith(f"scall-objtool: error: {path}: "), lines[0]
    assert words in lines[0], lines[0]


@pytest.mark.parametrize("name", MUTATIONS)
def test_malformed_object_is_one_clear_error(name, tmp_path):
    base = (PREBUILT / "kinds.o").read_bytes()
    bad = tmp_path / f"{name}.o"
    bad.write_bytes(mutate(name, base))
    before = _digest(bad)
    for args in (["scan"], ["scan", "--format", "json"], ["write"],
                 ["write", "--policy", "kernel", "--module"]):
        res = run_cli(*args, bad)
        _check_one_error(res, bad, EXPECT[name])
        assert _digest(bad) == before, f"{args} changed the input"
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name], "left files behind"


def test_real_32bit_object(tmp_path):
    src = tmp_path / "x.s"
    src.write_text(".text\n.globl f\nf:\n call __SCT__foo\n ret\n")
    obj = tmp_path / "x32.o"
    subprocess.run(["as", "--32", "-o", str(obj), str(src)], check=True)
    res = run_cli("write", obj)
    _check_one_error(res, obj, "32-bit")


def test_missing_file_and_directory(tmp_path):
    res = run_cli("scan", tmp_path / "nope.o")
    _check_one_error(res, tmp_path / "nope.o", "cannot open")
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("write", empty)
    _check_one_error(res, empty, "no objects found")


def test_bad_file_does_not_stop_the_others(tmp_path):
    good = tmp_path / "good.o"
    good.write_bytes((PREBUILT / "kinds.o").read_bytes())
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"garbage")
    res = run_cli("scan", "--format", "json", bad, good)
    assert res.rc == 2
    assert len(res.stderr.strip().splitlines()) == 1
    report = res.json()
    assert [o["path"] for o in report["objects"]] == [str(good)]
    assert report["objects"][0]["summary"]["sites"] > 0


@pytest.mark.parametrize("args", [["--cache-line", "48"], ["--assume-align", "3"],
                                  ["--policy", "fast"], ["--tramp-prefix", ""]])
def test_bad_options_exit_2(args):
    res = run_cli("scan", *args, PREBUILT / "kinds.o")
    assert res.rc == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip()


def test_output_with_many_inputs_is_a_usage_error(tmp_path):
    a = tmp_path / "a.o"
    b = tmp_path / "b.o"
    for p in (a, b):
        p.write_bytes((PREBUILT / "kinds.o").read_bytes())
    res = run_cli("write", "-o", tmp_path / "out.o", a, b)
    assert res.rc == 2
    assert "exactly one input" in res.stderr
    assert not (tmp_path / "out.o").exists()
