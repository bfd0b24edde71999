"""Output hygiene: hostile names never reach a terminal or a report raw.

An object is assembled with placeholder names (trampolines, a key, functions,
a section), then the placeholders in .strtab/.shstrtab are overwritten with
8-byte payloads: ANSI escapes, newline/CR/tab, invalid UTF-8, bidi override
and line separator, C1 controls and DEL, printable letters outside ASCII.
Every output of scan (text, JSON), write (stdout, warnings), check (text,
JSON, SARIF) and error messages must be valid UTF-8 without control or format
characters other than the newline that ends a line; JSON must parse and every
string in it must be printable.  The same holds under a stdout that takes only
ASCII (text then escaped), and a stdout that cannot be written is one error
line; a SARIF URI of a hostile file name resolves to that file (issue 23).

`-o` never writes through a symlink to another file without saying so.
"""
from __future__ import annotations

import importlib.util
import json
import os
import struct
from pathlib import Path

import pytest

import cliserver
import robust_harness as H
from scall_testlib import PREBUILT, ROOT, assemble

ASM = r"""
	.text
	.p2align 4
	.globl	f_CCCCCCCC
	.type	f_CCCCCCCC, @function
f_CCCCCCCC:
	call	__SCT__AAAAAAAA
	jmp	__SCT__AAAAAAAA
	.size	f_CCCCCCCC, .-f_CCCCCCCC

	.section .text.BBBBBBBB,"ax",@progbits
	.p2align 4
	.globl	g_DDDDDDDD
	.type	g_DDDDDDDD, @function
g_DDDDDDDD:
	call	__SCT__EEEEEEEE
	jmp	__SCT__EEEEEEEE
	.size	g_DDDDDDDD, .-g_DDDDDDDD

	.data
	.globl	__SCK__AAAAAAAA
__SCK__AAAAAAAA:
	.quad	0
	.globl	__SCT__AAAAAAAA
	.globl	__SCT__EEEEEEEE
"""
# __SCK__EEEEEEEE is missing: write (seed policy) adds it, with a warning naming it

PAYLOADS = {
    "ansi-escape": b"\x1b[31mRED",
    "newline-cr-tab": b"a\nb\rc\tdx",
    "invalid-utf8": b"\xff\xfe\x80\xc0\xed\xa0\x80z",
    "bidi-linesep": b"\xe2\x80\xae\xe2\x80\xa8zz",
    "c1-del-bell": b"\xc2\x85\xc2\x9b\x7f\x07\x08z",
    "printable-non-ascii": b"caf\xc3\xa9\xd0\xbcz",     # shown as is, but not in ASCII
}
PLACEHOLDERS = [b"AAAAAAAA", b"BBBBBBBB", b"CCCCCCCC", b"DDDDDDDD", b"EEEEEEEE"]


def _hostile(base: bytes, payload: bytes) -> bytes:
    """Replace each placeholder by the payload (its last byte varied, so that
    the five names stay distinct)."""
    data = base
    for k, ph in enumerate(PLACEHOLDERS):
        assert ph in data, ph
        data = data.replace(ph, payload[:-1] + bytes([ord("A") + k]))
    return data


@pytest.fixture(scope="module")
def base_object(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("hyg")
    (d / "h.s").write_text(ASM)
    obj = assemble(d / "h.s", d / "h.o")
    data = obj.read_bytes()
    # the placeholders must only occur in the string tables
    lay = H.Layout(data)
    tabs = [(s.offset, s.offset + s.size) for s in lay.sections if s.type == H.SHT_STRTAB]
    for ph in PLACEHOLDERS:
        pos = data.find(ph)
        while pos >= 0:
            assert any(a <= pos < b for a, b in tabs), (ph, pos)
            pos = data.find(ph, pos + 1)
    return data


@pytest.fixture(params=list(PAYLOADS))
def hostile(request, base_object, tmp_path) -> Path:
    p = tmp_path / "hostile.o"
    p.write_bytes(_hostile(base_object, PAYLOADS[request.param]))
    return p


def _run(*args, cwd=None):
    env = dict(os.environ, SCALL_OBJTOOL_NO_PROGRESS="1")
    env.pop("SCALL_OBJTOOL_DEBUG", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    p = cliserver.run(args, env=env, cwd=cwd, timeout=120)
    return p.returncode, p.stdout, p.stderr


def _unclean(raw: bytes, what: str) -> list[str]:
    """Problems of an output stream: invalid UTF-8, control/format characters."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return [f"{what}: invalid UTF-8 ({e})"]
    bad = sorted({c for c in text if c != "\n" and not c.isprintable()})
    return [f"{what}: raw {c!r}" for c in bad]


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _json_problems(raw: bytes, what: str) -> list[str]:
    probs = _unclean(raw, what)
    try:
        doc = json.loads(raw)
    except ValueError as e:
        return probs + [f"{what}: not JSON: {e}"]
    for s in _strings(doc):
        if not s.isprintable():
            probs.append(f"{what}: string {s!r} is not printable")
    return probs


def test_names_really_are_hostile(hostile):
    """The tool sees the payloads (the test is not vacuous)."""
    from scall_objtool.core import Options
    from scall_objtool.core.pipeline import scan_path
    r = scan_path(str(hostile), Options())
    assert len(r.sites) == 4
    for s in r.sites:
        assert s.trampoline.startswith("__SCT__") and s.trampoline not in (
            "__SCT__AAAAAAAA", "__SCT__EEEEEEEE")
        assert s.trampoline.isprintable() and s.section.isprintable()
        assert s.function.isprintable()


def test_scan_text_and_json_are_clean(hostile):
    rc, out, err = _run("scan", hostile)
    assert rc == 0
    problems = _unclean(out, "scan text") + _unclean(err, "scan stderr")
    assert b"__SCT__" in out
    rc, out, err = _run("scan", "--format", "json", hostile)
    assert rc == 0
    problems += _json_problems(out, "scan json") + _unclean(err, "scan json stderr")
    assert not problems, problems


def test_scan_report_file_is_clean(hostile, tmp_path):
    rep = tmp_path / "r.json"
    rc, _out, _err = _run("scan", "--format", "json", "-o", rep, hostile)
    assert rc == 0
    assert not _json_problems(rep.read_bytes(), "scan -o")


def test_write_output_is_clean_module(hostile, tmp_path):
    """write --module (no key to add): site lines on stdout, nothing raw."""
    rc, out, err = _run("write", "--policy", "kernel", "--module", "-o", tmp_path / "o.o",
                        hostile)
    assert rc == 0, err
    assert b"wrote" in out
    assert not _unclean(out, "write stdout") + _unclean(err, "write stderr")


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_write_added_key_warning_is_clean(base_object, tmp_path, payload):
    p = tmp_path / "h.o"
    p.write_bytes(_hostile(base_object, PAYLOADS[payload]))
    rc, out, err = _run("write", "-o", tmp_path / "o.o", p)
    assert rc == 0, err
    assert b"__SCK__" in err                        # the warning about the added key
    assert not _unclean(out, "write stdout") + _unclean(err, "write stderr")


def test_strict_keys_error_is_one_clean_line(base_object, tmp_path):
    """The --strict-keys error names the missing key: escaped, one line."""
    for name, payload in PAYLOADS.items():
        p = tmp_path / f"{name}.o"
        p.write_bytes(_hostile(base_object, payload))
        rc, _out, err = _run("write", "--strict-keys", p)
        assert rc == 2
        assert len(err.splitlines()) == 1 and not _unclean(err, name), err


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_check_output_is_clean(hostile, fmt):
    if importlib.util.find_spec("scall_objtool.report.findings") is None:
        pytest.skip("check is not implemented")
    if fmt == "sarif" and importlib.util.find_spec("scall_objtool.report.sarif") is None:
        pytest.skip("SARIF output is not implemented")
    rc, out, err = _run("check", "--format", fmt, hostile)
    assert rc in (0, 1), err
    assert b"__SCT__" in out
    probs = _unclean(err, "check stderr")
    probs += _unclean(out, f"check {fmt}") if fmt == "text" else _json_problems(out,
                                                                             f"check {fmt}")
    assert not probs, probs


def test_error_message_naming_a_section_is_one_clean_line(base_object, tmp_path):
    """A corrupt relocation section with a hostile name: the error names it."""
    for name, payload in PAYLOADS.items():
        data = bytearray(_hostile(base_object, payload))
        lay = H.Layout(bytes(data))
        rela = next(r for r in lay.relas if b".text." in r.name)
        struct.pack_into("<I", data, rela.hdr_off + 44, 0xFFFF)     # sh_info out of range
        p = tmp_path / f"{name}.o"
        p.write_bytes(bytes(data))
        for args in (["scan"], ["write"], ["scan", "--format", "json"]):
            rc, _out, err = _run(*args, p)
            assert rc == 2
            lines = err.decode("utf-8").splitlines()
            assert len(lines) == 1 and lines[0].startswith("scall-objtool: error: "), err
            assert not _unclean(err, f"{name} {args}"), err
        assert p.read_bytes() == bytes(data)


@pytest.mark.parametrize("fname", [b"bad\nname.o", b"esc\x1b[2Jname.o", b"inv\xffname.o"])
def test_hostile_file_names_are_escaped(tmp_path, fname):
    """A file name with a newline, an ESC or invalid UTF-8: one error line,
    nothing raw on stdout or stderr."""
    d = os.fsencode(tmp_path)
    bad = os.path.join(d, fname)
    with open(bad, "wb") as f:
        f.write(b"not an object")
    good = os.path.join(d, b"ok-" + fname)
    with open(good, "wb") as f:
        f.write((PREBUILT / "kinds.o").read_bytes())
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    p = cliserver.run(["scan", bad, good], env=env, timeout=60)
    assert p.returncode == 2
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert not _unclean(p.stderr, "stderr") + _unclean(p.stdout, "stdout"), (p.stdout, p.stderr)


@pytest.mark.parametrize("fname", [b"bad\nname.o", b"esc\x1b[2Jname.o", b"inv\xffname.o",
                                   b"pct%41 sp#?.o"])
def test_sarif_uri_of_a_hostile_file_name_points_at_it(tmp_path, fname):
    """The SARIF URI carries the name's bytes percent-encoded (RFC 3986): it
    resolves to the file, whatever the name holds (issue 23, item 13)."""
    from urllib.parse import unquote_to_bytes
    d = os.fsencode(tmp_path)
    with open(os.path.join(d, fname), "wb") as f:
        f.write((PREBUILT / "crossing.o").read_bytes())
    rc, out, err = _run("check", "--format", "sarif", os.fsdecode(fname), cwd=d)
    assert rc == 1 and b"Traceback" not in err, err
    run = json.loads(out)["runs"][0]
    base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    for r in run["results"]:
        loc = r["locations"][0]["physicalLocation"]["artifactLocation"]
        uri = base + loc["uri"]
        assert uri.isascii() and uri.isprintable(), uri
        assert unquote_to_bytes(uri[len("file://"):]) == os.path.join(d, fname)


ASCII_LOCALES = [{"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "PYTHONUTF8": "0"}]


@pytest.mark.parametrize("locale", ASCII_LOCALES, ids=["ioencoding-ascii", "lc-all-c"])
def test_outputs_under_an_ascii_locale(hostile, locale):
    """Hostile names under a stdout that only takes ASCII (issue 23, item 12):
    no traceback; text is escaped ASCII, JSON parses."""
    env = dict(os.environ, **locale)
    for args in (["scan"], ["check"], ["scan", "--format", "json"],
                 ["check", "--format", "sarif"], ["scan", "--format", "openmetrics"]):
        p = cliserver.run([*args, hostile], timeout=120,
                          env={**env, "PYTHONPATH": str(ROOT) + os.pathsep
                               + env.get("PYTHONPATH", "")})
        assert p.returncode in (0, 1) and b"Traceback" not in p.stderr, (args, p.stderr)
        if args[-1] in ("scan", "check"):
            p.stdout.decode("ascii")
        elif args[-1] != "openmetrics":
            assert not _json_problems(p.stdout, " ".join(args))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [["scan"], ["check", "--format", "sarif"], ["write", "--dry-run"]],
                         ids=["scan", "check-sarif", "write-dry-run"])
def test_broken_stdout_with_hostile_names(hostile, args):
    """Output that cannot be written (issue 23, item 11): one clean line, exit 2."""
    env = dict(os.environ, SCALL_OBJTOOL_NO_PROGRESS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with open("/dev/full", "wb") as full:
        p = cliserver.run([*args, hostile], stdout=full, env=env, timeout=120)
    lines = [ln for ln in p.stderr.decode("utf-8").splitlines()
             if not ln.startswith("scall-objtool: warning: ")]
    assert p.returncode == 2 and not _unclean(p.stderr, "stderr"), p.stderr
    assert lines == ["scall-objtool: error: standard output: cannot write: "
                     "No space left on device"], p.stderr


# ------------------------------------------------------------------ symlinks
def test_write_output_symlink_is_not_followed(tmp_path):
    victim = tmp_path / "victim.o"
    victim.write_bytes(b"precious")
    link = tmp_path / "out.o"
    link.symlink_to(victim)
    rc, out, err = _run("write", "-o", link, PREBUILT / "kinds.o")
    assert rc == 0, err
    assert victim.read_bytes() == b"precious"
    assert not link.is_symlink() and link.read_bytes()[:4] == b"\x7fELF"
    assert b"symlink" in err


def test_write_output_symlink_copy_is_not_followed(tmp_path):
    """-o on an object without sites only copies it: same rule."""
    victim = tmp_path / "victim.o"
    victim.write_bytes(b"precious")
    link = tmp_path / "out.o"
    link.symlink_to(victim)
    rc, _out, err = _run("write", "-o", link, PREBUILT / "nostatic-O2.o")
    assert rc == 0, err
    assert victim.read_bytes() == b"precious"
    assert link.read_bytes() == (PREBUILT / "nostatic-O2.o").read_bytes()
    assert not link.is_symlink()
    assert b"symlink" in err


def test_write_output_dangling_symlink(tmp_path):
    link = tmp_path / "out.o"
    link.symlink_to(tmp_path / "elsewhere" / "target.o")
    rc, _out, err = _run("write", "-o", link, PREBUILT / "kinds.o")
    assert rc == 0, err
    assert not (tmp_path / "elsewhere").exists()
    assert not link.is_symlink() and link.read_bytes()[:4] == b"\x7fELF"
    assert b"symlink" in err


@pytest.mark.parametrize("cmd", [["scan"], ["scan", "--format", "json"],
                                 ["check", "--format", "sarif"]])
def test_report_output_symlink_does_not_overwrite_its_target(tmp_path, cmd):
    if cmd[0] == "check" and importlib.util.find_spec("scall_objtool.report.sarif") is None:
        pytest.skip("check/SARIF not implemented")
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    link = tmp_path / "report"
    link.symlink_to(victim)
    rc, _out, err = _run(*cmd, "-o", link, PREBUILT / "kinds.o")
    assert rc in (0, 1), err
    assert victim.read_bytes() == b"precious", "-o wrote through the symlink"
    # the report went somewhere visible: into the link's place
    assert not link.is_symlink() and link.read_bytes()
