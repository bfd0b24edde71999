"""The library and the CLI agree: scan_path/write_path (what most tests call,
through scall_testlib.scan_lib/write_lib) give the report and the bytes that
`scan --format json` and `write` give."""
from __future__ import annotations

import pytest

from scall_testlib import PREBUILT, SRC, copy, run_cli, scan, scan_lib, write_lib, write_ok

CASES = [
    ("kinds.o", []),
    ("kinds.o", ["--policy", "kernel", "--allow-tail", "--cache-line", "128"]),
    ("crossing.o", ["--cache-line", "8", "--assume-align", "4"]),
    ("kinds.o", ["--tramp-prefix", "__SCT__b", "--key-prefix", "KEY_"]),
    ("staticcall-O2.o", ["--policy", "kernel", "--module", "--strict-keys"]),
    ("demo.o", ["--allow-tail"]),
    ("nostatic-O2.o", []),
]


@pytest.mark.parametrize("name,opts", CASES)
def test_scan_report_is_the_cli_report(cli, name, opts):
    obj = PREBUILT / name
    assert scan_lib(*opts, obj) == scan(cli, *opts, obj)


def test_scan_report_of_several_objects(cli):
    objs = [PREBUILT / n for n in ("kinds.o", "demo.o", "crossing.o")]
    rep = scan_lib("--policy", "kernel", *objs)
    assert rep == scan(cli, "--policy", "kernel", *objs)
    assert [o["path"] for o in rep["objects"]] == list(map(str, objs))


@pytest.mark.parametrize("name,opts", CASES)
def test_written_bytes_are_the_cli_bytes(tmp_path, cli, name, opts):
    a = copy(PREBUILT / name, tmp_path / f"a-{name}")
    b = copy(PREBUILT / name, tmp_path / f"b-{name}")
    out = write_lib(*opts, a)
    write_ok(cli, *opts, b)
    assert a.read_bytes() == b.read_bytes()
    assert out.action in ("written", "unchanged", "copied")
    assert (out.action == "written") == (a.read_bytes() != (PREBUILT / name).read_bytes())


def test_write_options(tmp_path):
    src = PREBUILT / "kinds.o"
    out = tmp_path / "out.o"
    res = write_lib("--policy", "kernel", "-o", out, src)
    assert res.action == "written" and out.exists()
    again = write_lib("--policy", "kernel", "--force", "-o", tmp_path / "again.o", out)
    assert (tmp_path / "again.o").read_bytes() == out.read_bytes(), again.action
    with pytest.raises(AssertionError, match="through the CLI"):
        write_lib("--jobs", "2", src)
    r = run_cli("write", "--policy", "kernel", "-o", tmp_path / "cli.o", src)
    assert r.rc == 0 and (tmp_path / "cli.o").read_bytes() == out.read_bytes()


def test_one_write_outcome_from_the_decision_to_the_disk(tmp_path):
    """decide() gives the record with the new bytes; write_path (and a dry run)
    gives the same record with where it went and what was done, the bytes
    dropped (they need not travel back from a worker process)."""
    from scall_objtool.core.elf import ElfFile
    from scall_objtool.core import Options
    from scall_objtool.table.write import WriteOutcome, decide, write_path
    src, out, opts = PREBUILT / "kinds.o", tmp_path / "out.o", Options(policy="kernel")
    decided = decide(ElfFile(src.read_bytes(), str(src)), opts)
    assert type(decided) is WriteOutcome and decided.action == "written" and decided.data
    done = write_path(str(src), opts, output=str(out))
    assert type(done) is WriteOutcome and done.data is None
    assert (done.action, done.path, done.output, done.entries) == (
        "written", str(src), str(out), decided.entries)
    assert out.read_bytes() == decided.data
    dry = write_path(str(src), opts, dry_run=True)
    assert (dry.action, dry.output, dry.data, dry.entries) == (
        "dry-run", str(src), None, decided.entries)
    assert write_path(str(out), opts).action == "skipped-existing"


def test_candidates_option_reaches_the_library(build, tmp_path):
    """--candidates is a field of Options (scan_lib builds it from the option
    table), and scan_path's candidates_from, when given, overrides it."""
    from scall_objtool import Options, scan_path
    import subprocess
    obj = build("linkprog.c", "-O2", "-fno-pie")
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-no-pie", f"-Wl,-T,{SRC / 'static_call_sites.ld'}", "-o", str(exe),
                    str(obj), str(build("linktramp.S"))], check=True, capture_output=True)
    for how in ("code", "auto"):
        assert scan_lib("--policy", "kernel", "--candidates", how, exe) == \
            run_cli("scan", "--policy", "kernel", "--format", "json", "--candidates", how,
                    exe).json()
        by_field = scan_path(str(exe), Options(policy="kernel", candidates=how))
        by_argument = scan_path(str(exe), Options(policy="kernel"), how)
        assert by_field.to_json() == by_argument.to_json()
    assert Options().candidates == "auto"
