"""One site, one reader (issue 22): a report read back is the scan's sites; the
shipped schema, checked by jsonschema-rs, is the one structural check; a
document the tool has just made is not checked again; a long string costs its
size.  Costs are counted (function calls, peak memory), never timed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from scall_testlib import PREBUILT, ROOT, SRC, run_cli

from scall_objtool import scan_path
from scall_objtool.core import Options
from scall_objtool.errors import InputError
from scall_objtool.report import dump
from scall_objtool.report.findings import relative_below, sites_from_results
from scall_objtool.report.jsondoc import load_report, scan_doc
from scall_objtool.report.readback import read


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """Objects with every kind, and one with source lines and inline chains."""
    d = tmp_path_factory.mktemp("reader")
    inl = d / "inline.o"
    subprocess.run(["gcc", "-O2", "-g", "-c", "-o", str(inl), str(SRC / "inline_sites.c")],
                   check=True)
    return [str(PREBUILT / "kinds.o"), str(PREBUILT / "crossing.o"), str(inl)]


def _plain(sites) -> list[dict]:
    return [s.to_json() for s in sites]


@pytest.mark.parametrize("policy", ["seed", "kernel"])
def test_a_scan_report_read_back_is_the_scans_sites(objects, tmp_path, monkeypatch, policy):
    monkeypatch.chdir(tmp_path)             # source files are written relative to here
    options = Options(policy=policy)
    results = [scan_path(p, options) for p in objects]
    want = _plain(sites_from_results(results))
    assert any(s["source"] for s in want) and any(s["inlined"] for s in want)
    out = tmp_path / "r.json"
    out.write_text(dump(scan_doc(results, options, source_root="/")))
    got = load_report(str(out))
    assert _plain(got.sites) == want
    assert got.policy == options.to_json()
    # the dashboard's reader gives the same records
    assert _plain(read(json.loads(out.read_text()), "r.json").lint_sites) == want


def test_a_check_report_read_back_is_the_scans_fallback_sites(objects, tmp_path):
    rel = [os.path.relpath(p, tmp_path) for p in objects]
    r = run_cli("check", "--format", "json", "-o", "c.json", *rel, cwd=tmp_path)
    assert r.rc == 1, r.stderr
    doc = json.loads((tmp_path / "c.json").read_text())
    results = [scan_path(p, Options()) for p in objects]
    want = [{**s, "object": rel[objects.index(s["object"])]}
            for s in _plain(sites_from_results(results)) if not s["patchable"]]
    def shown(frame):           # source files as check writes them: relative when below
        return {**frame, "file": relative_below(frame["file"], str(tmp_path))}
    want = [{**s, "source": s["source"] and shown(s["source"]),
             "inlined": [shown(f) for f in s["inlined"]]} for s in want]
    back = read(doc, "c.json")
    assert back.kind == "check" and len(want) == doc["check"]["findings"] > 0
    assert _plain(back.lint_sites) == want


def test_a_check_reports_summary_is_checked_by_the_report_schema(objects, tmp_path):
    r = run_cli("check", "--format", "json", objects[0], cwd=tmp_path)
    doc = json.loads(r.stdout)
    read(doc, "c.json")
    doc["summary"]["by_kind"]["\x1bjump"] = 1
    with pytest.raises(InputError, match=r"summary\.by_kind: unexpected key '\\x1bjump'"):
        read(doc, "c.json")


def test_a_fraction_is_refused_while_parsing(objects, tmp_path):
    doc = json.loads(run_cli("scan", "--format", "json", objects[0]).stdout)
    doc["objects"][0]["sites"][0]["offset"] = 0.5      # JSON Schema's "integer" takes 1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="0.5 is not an integer"):
        load_report(str(bad))
    r = run_cli("dashboard", bad, "-o", tmp_path / "d.html")
    assert r.rc == 2 and len(r.stderr.splitlines()) == 1 and "0.5 is not an integer" in r.stderr


@pytest.mark.parametrize("command", [["scan", "--format", "openmetrics"],
                                     ["check", "--format", "openmetrics"]])
def test_what_the_tool_just_made_is_not_checked_again(objects, monkeypatch, command):
    """scan/check --format openmetrics render their own document: no schema check."""
    from scall_objtool.cli import commands
    from scall_objtool.report import jsondoc, readback
    calls = []
    for module in (jsondoc, readback):
        monkeypatch.setattr(module, "validate", lambda *a, **k: calls.append(a[1]))
    fn = getattr(commands, command[0])
    rc = fn(objects, Options(), format="openmetrics", output=os.devnull)
    assert rc in (0, 1) and calls == []


def _calls(fn) -> int:
    """Python function calls made by ``fn()`` (a count of work, not a time)."""
    n = 0

    def prof(frame, event, arg):
        nonlocal n
        if event == "call":
            n += 1
    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return n


def test_the_schema_check_is_not_python_work_per_field(objects, tmp_path):
    """Reading a report back costs a few Python calls a site: the schema check is
    the library's (~6 calls a site; the hand-written validator made ~190)."""
    doc = json.loads(run_cli("scan", "--format", "json", *objects).stdout)
    sites = doc["objects"][0]["sites"]
    doc["objects"][0]["sites"] = sites * (2000 // len(sites))
    n = len(doc["objects"][0]["sites"])
    read(doc, "r.json")                 # the schema compiled once, outside the count
    calls = _calls(lambda: read(doc, "r.json"))
    assert calls < 25 * n, f"{calls} Python calls to read {n} sites"


def test_a_long_prefixes_string_costs_its_size_in_process_memory(objects, tmp_path):
    """Item 7 of issue 23 with the library: a 50 MB `prefixes` is refused on its
    length, and the whole process (Rust included: ru_maxrss) stays within a few
    copies of the file, not the ~78 bytes a character a backtracking match costs."""
    doc = json.loads(run_cli("scan", "--format", "json", objects[0]).stdout)
    doc["objects"][0]["sites"][0]["prefixes"] = "zz" * (25 << 20)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    size = bad.stat().st_size
    probe = textwrap.dedent(f"""
        import resource, sys
        from scall_objtool.errors import InputError
        from scall_objtool.report.jsondoc import load_report
        import jsonschema_rs
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_report({str(bad)!r})
        except InputError as e:
            print(str(e)[-120:])
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert r.returncode == 0, r.stderr
    message, grown = r.stdout.splitlines()
    assert "prefixes: longer than 28 characters" in message or "does not match" in message
    # the file, its text and the parsed string are 3 copies; an error message
    # quoting the value would be 2 more
    assert int(grown) < 6 * size, f"{int(grown) >> 20} MiB for a {size >> 20} MiB report"
