"""The command line's own words (issue 22, issue 23 item 19): a malformed
command line is one line ``scall-objtool: error: ...`` and exit 2, the same
through the fast path and through typer (which only renders help); values are
checked by the option table (ranges included), conflicting options are
refused, help shows no type internals, counts are in the singular when they
are 1, --stats lists what has something to say, and dashboard does not pour
HTML into a terminal."""
from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest

from scall_testlib import PREBUILT, ROOT, run_cli

from scall_objtool import Options
from scall_objtool.errors import UsageError
from scall_objtool.options import COMMANDS
from scall_objtool.report import plural

K = str(PREBUILT / "kinds.o")
BIG = str(2 ** 70)
#: words of typer's and pydantic's messages that must never reach a user
LEAKS = ("Usage:", "Try '", "Error:", "Value error", "Input should be", "Invalid value",
         "Traceback", "internal error")

BAD = {
    "jobs 0": (["scan", "--jobs", "0", K], "--jobs: must be at least 1, not 0"),
    "jobs x": (["scan", "-j", "x", K], "--jobs: 'x' is not a whole number"),
    "cache-line 3": (["scan", "--cache-line", "3", K],
                     "--cache-line: must be a power of two from 8 to 4096, not 3"),
    "cache-line 2^70": (["scan", "--cache-line", BIG, K],
                        f"--cache-line: must be a power of two from 8 to 4096, not {BIG}"),
    "assume-align 2^70": (["write", "--dry-run", "--assume-align", BIG, K],
                          "--assume-align: must be a power of two from 1 to 1073741824, "
                          f"not {BIG}"),
    "cache-line 2^70 check": (["check", "--cache-line", BIG, K], "--cache-line: must be"),
    "group-by directory": (["scan", "--group-by", "directory", K],
                           "--group-by: unknown value 'directory' "
                           "(choose from dir, trampoline, kind, reason)"),
    "policy fast": (["verify", "--policy", "fast", K], "--policy: unknown value 'fast'"),
    "max-fallback -1": (["check", "--max-fallback", "-1", K],
                        "--max-fallback: must be at least 0, not -1"),
    "empty prefix": (["scan", "--tramp-prefix=", K], "--tramp-prefix: must not be empty"),
    "unknown option": (["scan", "--bogus", K], "scan: no such option --bogus"),
    "missing value": (["scan", K, "--format"], "--format needs a value"),
    "flag with value": (["scan", "--stats=yes", K], "--stats takes no value"),
    "no paths": (["scan"], "scan: missing PATH..."),
    "diff one report": (["diff", "a.json"], "diff: missing NEW.json"),
    "unknown command": (["scna", K], "unknown command 'scna'"),
    "json grouped": (["scan", "--format", "json", "--group-by", "dir", K],
                     "--group-by applies to the text format only, not to --format json"),
    "sarif stats": (["check", "-f", "sarif", "--stats", K],
                    "--stats applies to the text format only, not to --format sarif"),
    "json quiet": (["verify", "-f", "json", "-q", K],
                   "--quiet applies to the text format only, not to --format json"),
}


#: through typer too in the everyday run (the rest of the typer runs are slow)
TYPER_SAMPLE = {"cache-line 2^70", "unknown option", "json grouped", "group-by directory"}
CASES = [pytest.param(case, mode, marks=() if mode == "fast" or case in TYPER_SAMPLE
                      else pytest.mark.slow, id=f"{case}-{mode}")
         for case in sorted(BAD) for mode in ("fast", "typer")]


@pytest.mark.parametrize("case,mode", CASES)
def test_a_bad_command_line_is_one_line_and_exit_2(case, mode, tmp_path):
    argv, message = BAD[case]
    env = {"SCALL_OBJTOOL_NO_FASTPATH": "1"} if mode == "typer" else None
    r = run_cli(*argv, cwd=tmp_path, env=env)
    assert r.rc == 2 and r.stdout == "", (r.rc, r.stdout, r.stderr)
    assert r.stderr.startswith(f"scall-objtool: error: {message}"), r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert not any(w in r.stderr for w in LEAKS), r.stderr
    assert os.listdir(tmp_path) == []


def test_the_library_checks_options_as_the_command_line_does():
    for kw, msg in [({"cache_line": 2 ** 70}, "--cache-line: must be a power of two"),
                    ({"assume_align": 3}, "--assume-align: must be a power of two"),
                    ({"placement": "6.2"}, "--placement: unknown value '6.2'"),
                    ({"candidates": "guess"}, "--candidates: unknown value 'guess'")]:
        with pytest.raises(UsageError, match=re.escape(msg)):
            Options(**kw)
    assert Options(cache_line=8, assume_align=1 << 30).cache_line == 8


def test_short_options_bundle_as_getopt_does():
    a = run_cli("scan", "-qj2", K)
    b = run_cli("scan", "--quiet", "--jobs", "2", K)
    assert a.rc == b.rc == 0 and a.stdout == b.stdout and a.stdout.count("\n") == 1


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_no_type_internals(command):
    r = run_cli(command, "--help")
    assert r.rc == 0 and r.stdout.startswith(f"Usage: scall-objtool {command}")
    for internal in ("<list[str]>", "<str>", "<int>", "list[", "{PATH", "[x>=", "Optional"):
        assert internal not in r.stdout, (internal, r.stdout)


def test_counts_of_one_are_singular(tmp_path):
    assert [plural(n, "entry") for n in (0, 1, 2)] == ["0 entries", "1 entry", "2 entries"]
    assert plural(1, "object") == "1 object" and plural(2, "key") == "2 keys"
    r = run_cli("scan", "-q", K)
    assert r.stdout.startswith("summary: 1 object, 10 sites, "), r.stdout
    out = tmp_path / "one.o"
    assert run_cli("write", "-q", "-o", out, PREBUILT / "demo.o").rc == 0
    v = run_cli("verify", out)
    assert v.stdout.splitlines()[-1].startswith("verify: 1 object, 3 entries, "), v.stdout


def test_stats_list_what_has_fallback_and_totals(tmp_path):
    r = run_cli("scan", "--stats", "-q", PREBUILT)
    assert r.rc == 0, r.stderr
    j = run_cli("scan", "--format", "json", PREBUILT).json()["summary"]
    text = r.stdout
    tramps = text.split("by trampoline:")[1].split("by kind:")[0]
    rows = re.findall(r"^  (\S+)\s+(\d+)\s+(\d+)\s+(\d+)$", tramps, re.M)
    listed = {name: tuple(map(int, n)) for name, *n in rows}
    quiet = [k for k, v in j["by_trampoline"].items() if not v["fallback"]]
    assert quiet, "the sample must have a trampoline without fallback"
    assert listed.pop("total") == (j["sites"], j["patchable"], j["fallback"])
    assert listed == {k: (v["sites"], v["patchable"], v["fallback"])
                      for k, v in j["by_trampoline"].items() if v["fallback"]}
    assert f"({plural(len(quiet), 'trampoline')} without fallback not listed)" in tramps
    fallback = [int(n) for n in re.findall(r"^  \S+\s+\d+\s+\d+\s+(\d+)$", tramps, re.M)]
    assert fallback[:-1] == sorted(fallback[:-1], reverse=True)     # largest first
    for title in ("by kind:", "by reason:", "by object:"):
        section = text.split(title)[1]
        assert re.search(r"^  total\s", section, re.M), title


def _on_a_terminal(*args) -> subprocess.CompletedProcess:
    master, slave = pty.openpty()
    try:
        return subprocess.run([sys.executable, "-m", "scall_objtool", *args], stdout=slave,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    finally:
        os.close(slave)
        os.close(master)


def test_dashboard_does_not_write_html_to_a_terminal(tmp_path):
    report = tmp_path / "r.json"
    assert run_cli("scan", "--format", "json", "-o", report, K).rc == 0
    r = _on_a_terminal("dashboard", str(report))
    assert r.returncode == 2, r.stderr
    assert r.stderr == ("scall-objtool: error: dashboard: standard output is a terminal; "
                        "name the page with -o FILE (or -o - to print the HTML anyway)\n")
    piped = run_cli("dashboard", report)
    assert piped.rc == 0 and piped.stdout.startswith("<!DOCTYPE html>")
