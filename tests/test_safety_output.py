"""Output that cannot be written, encodings, odd directories, hostile names in
messages (issue 23, items 11, 12, 13, 15).

* Every command and format, with stdout on a full device (``/dev/full``), a
  closed pipe or a closed descriptor, and with stderr broken: no traceback;
  one line and exit 2, or exit 141 and nothing for a closed pipe.
* A symbol name that is not ASCII under an ASCII stdout encoding
  (``PYTHONIOENCODING=ascii``, ``LC_ALL=C`` without UTF-8 mode): text with
  backslash escapes, machine formats the same UTF-8 bytes as ``-o FILE``.
* A deleted current directory; a current directory, ``--source-root`` or
  object name that is not UTF-8 (SARIF URIs carry the percent-encoded bytes
  and resolve to the file).
* Names from reports in warnings and errors (the unmatched-baseline warning,
  dashboard errors naming keys and files): escaped, one line each.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

import cliserver
from scall_testlib import PREBUILT, ROOT, assemble

OBJ = PREBUILT / "crossing.o"          # 17 sites, 13 fallback: check exits 1
FULL = "/dev/full"


def _env(**extra) -> dict:
    env = dict(os.environ)
    # no empty entry: it names the current directory, which some tests delete
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["SCALL_OBJTOOL_NO_PROGRESS"] = "1"
    for k in ("SCALL_OBJTOOL_DEBUG", "SRCARCH", "PYTHONIOENCODING", "PYTHONUTF8"):
        env.pop(k, None)
    env.update(extra)
    return env


def _run(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=None, env=None,
         preexec=None):
    """(exit status, stdout bytes, stderr bytes) of ``python -m scall_objtool ARGS``."""
    p = cliserver.run(args, stdout=stdout, stderr=stderr, cwd=cwd, env=env or _env(),
                      preexec_fn=preexec, timeout=120)
    return p.returncode, p.stdout or b"", p.stderr or b""


def _one_clean_line(err: bytes, what) -> str:
    text = err.decode("utf-8")
    assert b"Traceback" not in err, (what, text)
    assert text.count("\n") == 1 and text.endswith("\n"), (what, text)
    line = text[:-1]
    assert line.isprintable(), (what, line)
    return line


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("out-reports")
    rep = d / "r.json"
    rc, _, err = _run("scan", "--format", "json", "-o", rep, OBJ)
    assert rc == 0, err
    obj = d / "w.o"
    obj.write_bytes(OBJ.read_bytes())
    return {"report": rep, "object": obj}


def _commands(reports) -> dict[str, list]:
    """Every command and format that writes to stdout."""
    rep, obj = reports["report"], reports["object"]
    out = {f"scan-{f}": ["scan", "--format", f, OBJ] for f in ("text", "json", "openmetrics")}
    out.update({f"verify-{f}": ["verify", "--format", f, OBJ] for f in ("text", "json")})
    out.update({f"check-{f}": ["check", "--format", f, OBJ]
                for f in ("text", "json", "sarif", "openmetrics")})
    out.update({f"diff-{f}": ["diff", "--format", f, rep, rep] for f in ("text", "json")})
    out["dashboard"] = ["dashboard", rep]
    out["write-summary"] = ["write", "--dry-run", obj]
    out["runtime-path"] = ["runtime-path"]
    out["version"] = ["--version"]
    out["scan-typer-path"] = ["scan", "--format", "json", OBJ]          # see _env_for
    out["check-sarif-typer-path"] = ["check", "--format", "sarif", OBJ]
    return out


def _env_for(name: str) -> dict:
    """The typer command line for the *-typer-path cases, else the fast path."""
    return _env(SCALL_OBJTOOL_NO_FASTPATH="1") if name.endswith("typer-path") else _env()


NAMES = ["scan-text", "scan-json", "scan-openmetrics", "verify-text", "verify-json",
         "check-text", "check-json", "check-sarif", "check-openmetrics", "diff-text",
         "diff-json", "dashboard", "write-summary", "runtime-path", "version",
         "scan-typer-path", "check-sarif-typer-path"]


# ------------------------------------------------------------ item 11
@pytest.mark.skipif(not os.path.exists(FULL), reason="no /dev/full")
@pytest.mark.parametrize("name", NAMES)
def test_stdout_on_a_full_device_is_one_line_exit_2(reports, name):
    args = _commands(reports)[name]
    with open(FULL, "wb") as full:
        rc, _, err = _run(*args, stdout=full, env=_env_for(name))
    line = _one_clean_line(err, name)
    assert rc == 2, (name, rc, line)
    assert line == "scall-objtool: error: standard output: cannot write: No space left on device"


@pytest.mark.skipif(not os.path.exists(FULL), reason="no /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["scan", "--help"]], ids=["help", "scan-help"])
def test_help_on_a_full_device_is_one_line_exit_2(args):
    """typer's own output (help) goes through the same rule."""
    with open(FULL, "wb") as full:
        rc, _, err = _run(*args, stdout=full)
    line = _one_clean_line(err, args)
    assert rc == 2 and line == ("scall-objtool: error: cannot write the help or usage "
                                "message: No space left on device"), (rc, line)


@pytest.mark.parametrize("name", NAMES + ["help"])
def test_stdout_to_a_closed_pipe_is_a_quiet_exit_141(reports, name):
    args = ["--help"] if name == "help" else _commands(reports)[name]
    r, w = os.pipe()
    os.close(r)                         # the reader is gone (``| head``, ``| true``)
    try:
        rc, _, err = _run(*args, stdout=w, env=_env_for(name))
    finally:
        os.close(w)
    assert b"Traceback" not in err, (name, err)
    assert (rc, err) == (141, b""), (name, rc, err)


@pytest.mark.parametrize("name", ["scan-json", "check-sarif", "write-summary", "version",
                                  "scan-typer-path"])
def test_stdout_closed_descriptor_is_one_line(reports, name):
    rc, _, err = _run(*_commands(reports)[name], stdout=subprocess.DEVNULL,
                      preexec=lambda: os.close(1), env=_env_for(name))
    line = _one_clean_line(err, name)
    assert rc == 2 and "standard output: cannot write" in line, (rc, line)


@pytest.mark.skipif(not os.path.exists(FULL), reason="no /dev/full")
def test_broken_stderr_still_delivers_the_report_and_exits_2(tmp_path):
    """A bad input with stderr on /dev/full: its error cannot be shown, the
    report of the others still arrives, the exit status is still 2 (not the
    interpreter's 120 for a failed final flush, not a traceback's 1)."""
    with open(FULL, "wb") as full:
        rc, out, _ = _run("scan", "--format", "json", tmp_path / "missing.o", OBJ,
                          stderr=full)
    assert rc == 2
    assert len(json.loads(out)["objects"]) == 1
    r, w = os.pipe()
    os.close(r)
    try:
        rc, out, _ = _run("scan", tmp_path / "missing.o", stderr=w)
    finally:
        os.close(w)
    assert rc == 141


def test_library_use_of_streams_reports_a_broken_stdout(monkeypatch):
    """The same path in-process: a stream whose writes fail with ENOSPC."""
    import io

    from scall_objtool.cli import streams

    class Full(io.RawIOBase):
        def writable(self):
            return True

        def write(self, b):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(Full())))
    with pytest.raises(streams.OutputError) as e:
        streams.out("x" * 100000, machine=True)
    assert not e.value.closed_pipe
    assert str(e.value) == "standard output: cannot write: No space left on device"
    assert streams.failed(e.value) == 2


# ------------------------------------------------------------ item 12
NONASCII_ASM = """
	.text
	.p2align 6
	.globl	"f\u00e9"
	.type	"f\u00e9", @function
"f\u00e9":
	call	"__SCT__caf\u00e9"
	jmp	"__SCT__caf\u00e9"
	call	"__SCT__\u043c\u0438\u0440"
	.size	"f\u00e9", .-"f\u00e9"
	.data
	.globl	"__SCK__caf\u00e9"
"__SCK__caf\u00e9":
	.quad 0
	.globl "__SCT__caf\u00e9"
	.globl "__SCT__\u043c\u0438\u0440"
"""
# __SCK__мир is missing: write adds it, with a warning naming it


@pytest.fixture(scope="module")
def nonascii(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("nonascii")
    (d / "u.s").write_text(NONASCII_ASM, encoding="utf-8")
    return assemble(d / "u.s", d / "u.o")


ASCII_ENVS = {"PYTHONIOENCODING=ascii": {"PYTHONIOENCODING": "ascii"},
              "LC_ALL=C,no-utf8-mode": {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"},
              "LC_ALL=POSIX,no-utf8-mode": {"LC_ALL": "POSIX", "PYTHONUTF8": "0"}}


@pytest.mark.parametrize("envname", list(ASCII_ENVS))
def test_text_output_under_an_ascii_locale_is_escaped(nonascii, tmp_path, envname):
    env = _env(**ASCII_ENVS[envname])
    obj = tmp_path / "u.o"
    obj.write_bytes(nonascii.read_bytes())
    for args, want_rc in ((["scan", obj], 0), (["check", obj], 1),
                          (["scan", "--group-by", "trampoline", obj], 0),
                          (["write", obj], 0)):
        rc, out, err = _run(*args, env=env)
        assert b"Traceback" not in err, (args, err)
        assert rc == want_rc, (args, rc, err)
        out.decode("ascii")             # what the locale can show
        err.decode("ascii")
        assert b"__SCT__caf\\xe9" in out, (args, out)
    assert b"__SCK__\\u043c\\u0438\\u0440" in err       # the added-key warning


@pytest.mark.parametrize("envname", list(ASCII_ENVS))
@pytest.mark.parametrize("args", [["scan", "--format", "json"], ["scan", "--format", "openmetrics"],
                                  ["check", "--format", "sarif"], ["check", "--format", "json"],
                                  ["check", "--format", "openmetrics"]],
                         ids=lambda a: "-".join(a))
def test_machine_formats_are_utf8_whatever_the_locale(nonascii, tmp_path, envname, args):
    """The same bytes on stdout as in an ``-o`` file (UTF-8, JSON ASCII-escaped)."""
    env = _env(**ASCII_ENVS[envname])
    rc, out, err = _run(*args, nonascii, env=env)
    assert b"Traceback" not in err and rc in (0, 1), (rc, err)
    rc2, _, err2 = _run(*args, "-o", tmp_path / "file", nonascii, env=env)
    assert rc2 == rc, err2
    written = (tmp_path / "file").read_bytes()
    if args[-1] == "openmetrics":
        assert out == written
    else:                               # JSON: ASCII; a file also records where it is
        out.decode("ascii")
        doc = json.loads(written)
        doc.pop("paths_relative_to", None)
        assert json.loads(out) == doc
    text = out.decode("utf-8")
    assert "caf\u00e9" in (json.dumps(json.loads(text), ensure_ascii=False)
                           if args[-1] != "openmetrics" else text)


# ------------------------------------------------------------ item 13
def _in_deleted_dir(d: Path):
    def go():
        os.chdir(d)
        os.rmdir(d)
    return go


@pytest.fixture(scope="module")
def debug_object(tmp_path_factory) -> Path:
    """An object with source lines (the text and JSON renderers show them
    relative to the current directory)."""
    d = tmp_path_factory.mktemp("dbg")
    out = d / "lint.o"
    subprocess.run(["gcc", "-c", "-O2", "-g", "-I", str(ROOT / "testdata" / "src"), "-o",
                    str(out), str(ROOT / "testdata" / "src" / "lint.c")], check=True,
                   capture_output=True)
    return out


@pytest.mark.parametrize("args", [["scan", "--format", "json"], ["scan", "--format", "text"],
                                  ["scan", "--format", "openmetrics"],
                                  ["check", "--format", "sarif"], ["check", "--format", "json"],
                                  ["check", "--format", "text"],
                                  ["check", "--format", "openmetrics"]],
                         ids=lambda a: "-".join(a))
def test_deleted_current_directory(debug_object, tmp_path, args):
    gone = tmp_path / "gone"
    gone.mkdir()
    rc, out, err = _run(*args, debug_object, preexec=_in_deleted_dir(gone))
    assert b"Traceback" not in err, err
    assert rc in (0, 1) and err == b"", (rc, err)
    if args[-1] in ("json", "sarif"):
        doc = json.loads(out)
        if args[-1] == "sarif":
            run = doc["runs"][0]
            assert "originalUriBaseIds" not in run      # no current directory to name
            uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]
                    for r in run["results"]]
            assert uris and all(u["uri"].startswith("file:///") and "uriBaseId" not in u
                                for u in uris), uris
    if args[-1] == "openmetrics":
        assert out.endswith(b"# EOF\n")
    else:
        assert str(debug_object).encode() in out


def test_deleted_current_directory_report_file(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    rep = tmp_path / "r.json"
    rc, _, err = _run("scan", "--format", "json", "-o", rep, OBJ.resolve(),
                      preexec=_in_deleted_dir(gone))
    assert rc == 0 and err == b"", err
    doc = json.loads(rep.read_bytes())
    assert "paths_relative_to" not in doc
    assert doc["objects"][0]["path"] == str(OBJ.resolve())


def test_deleted_current_directory_relative_outputs(tmp_path):
    """``-o`` relative to a directory that is gone: one line, exit 2; an
    absolute object is still written in place."""
    obj = tmp_path / "w.o"
    obj.write_bytes(OBJ.read_bytes())
    for args in (["write", "-o", "rel.o", obj], ["scan", "-o", "rel.json", obj],
                 ["check", "--format", "sarif", "-o", "rel.sarif", obj]):
        gone = tmp_path / "gone"
        gone.mkdir()
        rc, _, err = _run(*args, preexec=_in_deleted_dir(gone))
        line = _one_clean_line(err, args)
        assert rc == 2 and "rel." in line and "No such file or directory" in line, line
        assert obj.read_bytes() == OBJ.read_bytes()
    gone.mkdir()
    rc, _, err = _run("write", "-q", obj, preexec=_in_deleted_dir(gone))
    assert (rc, err) == (0, b"") and obj.read_bytes() != OBJ.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["w.o"]


def _sarif_file_uris(doc: dict) -> list[bytes]:
    """Every object URI of a SARIF document, resolved to the bytes of a path."""
    run = doc["runs"][0]
    bases = {k: v["uri"] for k, v in run.get("originalUriBaseIds", {}).items()}
    out = []
    for r in run["results"]:
        loc = r["locations"][0]["physicalLocation"]["artifactLocation"]
        uri = bases[loc["uriBaseId"]] + loc["uri"] if "uriBaseId" in loc else loc["uri"]
        assert uri.startswith("file:///"), uri
        assert uri.isascii() and uri.isprintable(), uri
        out.append(unquote_to_bytes(uri[len("file://"):]))
    return out


def test_sarif_in_a_directory_whose_name_is_not_utf8(tmp_path):
    d = os.path.join(os.fsencode(tmp_path), b"dir\xff\xfe")
    os.mkdir(d)
    name = b"caf\xe9.o"
    with open(os.path.join(d, name), "wb") as f:
        f.write(OBJ.read_bytes())
    rc, out, err = _run("check", "--format", "sarif", name, cwd=d)
    assert b"Traceback" not in err and rc == 1, err
    doc = json.loads(out)
    assert doc["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/dir%FF%FE/")
    paths = _sarif_file_uris(doc)
    assert paths and set(paths) == {os.path.join(d, name)}
    assert all(os.path.isfile(p) for p in paths)
    # --source-root naming that directory, from elsewhere
    rc, out, err = _run("check", "--format", "sarif", "--source-root", d,
                        os.path.join(d, name), cwd=tmp_path)
    assert b"Traceback" not in err and rc == 1, err
    doc = json.loads(out)
    art = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert art == {"uri": "caf%E9.o", "uriBaseId": "%SRCROOT%"}
    assert set(_sarif_file_uris(doc)) == {os.path.join(d, name)}


# ------------------------------------------------------------ item 15
HOSTILE = "\x1b[31mred\u202e\u2028\nscall-objtool: error: forged\r\x07"


def _hostile_reports(good: dict, d: Path) -> dict[str, Path]:
    """Reports whose keys, values and file names carry terminal escapes, bidi
    controls and newlines; each makes some command warn or fail."""
    out = {}

    def put(name, doc, fname=None):
        p = d / (fname or f"{name}.json")
        p.write_text(json.dumps(doc))
        out[name] = p

    doc = json.loads(json.dumps(good))
    doc.pop("paths_relative_to", None)
    doc["objects"][0]["path"] = HOSTILE + ".o"
    for s in doc["objects"][0]["sites"]:
        s["function"] = HOSTILE
    doc["summary"]["by_object"][0]["path"] = HOSTILE + ".o"
    put("object-names", doc)                         # check --baseline: unmatched warning
    doc = json.loads(json.dumps(good))
    doc["summary"]["by_kind"][HOSTILE] = 1
    put("summary-key", doc)
    doc = json.loads(json.dumps(good))
    doc[HOSTILE] = 1
    put("top-key", doc)
    doc = json.loads(json.dumps(good))
    doc["summary"]["by_trampoline"][HOSTILE] = {"sites": -1}
    put("trampoline-key", doc)
    doc = json.loads(json.dumps(good))
    doc["objects"][0]["sites"][0]["crossing"] = HOSTILE
    put("site-value", doc)
    doc = json.loads(json.dumps(good))
    doc["policy"]["name"] = HOSTILE
    put("policy-value", doc)                         # diff/check: policy warning
    put("file-name", {"schema_version": 1}, "\x1b[2J\u202eevil\nname.json")
    (d / "not-json.json").write_text("{" + HOSTILE)
    out["not-json"] = d / "not-json.json"
    return out


def test_every_message_naming_a_report_is_one_clean_line(reports, tmp_path):
    """Warnings and errors of check --baseline, diff and dashboard over hostile
    reports: each message escaped, one line; exit 2 on the errors."""
    good = json.loads(reports["report"].read_text())
    hostile = _hostile_reports(good, tmp_path)
    rep = reports["report"]
    seen = set()
    for name, p in hostile.items():
        for args in (["check", "--baseline", p, OBJ], ["diff", rep, p], ["diff", p, rep],
                     ["dashboard", p], ["dashboard", rep, p]):
            rc, out, err = _run(*args)
            text = err.decode("utf-8")
            assert "Traceback" not in text, (name, args, text)
            lines = text.splitlines(keepends=True)
            assert bool(lines) == (rc == 2 or name == "policy-value"
                                   or (name == "object-names" and args[0] in ("check", "diff"))), \
                (name, args, rc, text)
            for line in lines:
                assert line.endswith("\n") and line[:-1].isprintable(), (name, args, line)
                assert line.startswith("scall-objtool: "), (name, args, line)
                seen.add(line.split(":")[1].strip())
            if lines and name != "not-json" and not (name == "object-names"
                                                     and args[0] == "diff"):
                # the payload is named, escaped (diff's "nothing matches" names the file)
                assert "\\x1b" in text or "\\u202e" in text, (name, args, text)
            if args[0] == "diff":       # the text report names them as well
                assert all(x.isprintable() for x in out.decode("utf-8").splitlines())
    assert seen == {"warning", "error"}


def test_unmatched_baseline_warning_is_escaped(reports, tmp_path):
    good = json.loads(reports["report"].read_text())
    p = _hostile_reports(good, tmp_path)["object-names"]
    rc, _, err = _run("check", "--baseline", p, OBJ)
    line = _one_clean_line(err, "unmatched baseline")
    assert rc == 1 and "no object of the baseline is among the inputs" in line
    assert "\\x1b[31mred\\u202e\\u2028\\nscall-objtool: error: forged\\r\\x07.o" in line


def test_dashboard_errors_name_keys_and_files_escaped(reports, tmp_path):
    good = json.loads(reports["report"].read_text())
    h = _hostile_reports(good, tmp_path)
    rc, _, err = _run("dashboard", h["summary-key"])
    line = _one_clean_line(err, "dashboard key")
    assert rc == 2 and "\\x1b[31mred\\u202e" in line, line
    rc, _, err = _run("dashboard", h["file-name"])
    line = _one_clean_line(err, "dashboard file")
    assert rc == 2 and "\\x1b[2J\\u202eevil\\nname.json" in line, line


def test_report_reader_errors_are_escaped_in_process(reports, tmp_path):
    """The library's InputError for a hostile report is printable as well."""
    from scall_objtool.errors import InputError
    from scall_objtool.report.dashboard import dashboard_from_files
    good = json.loads(reports["report"].read_text())
    for name, p in _hostile_reports(good, tmp_path).items():
        if name in ("object-names", "policy-value"):
            continue                    # valid reports
        with pytest.raises(InputError) as e:
            dashboard_from_files([str(p)])
        assert str(e.value).isprintable(), (name, str(e.value))

