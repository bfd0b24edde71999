"""The JSON report matches its shipped schema; the library works without the CLI;
objects without static calls take the light path."""
from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from scall_testlib import PREBUILT, run_cli

import scall_objtool
from scall_objtool import Options, scan_path
from scall_objtool.report.jsondoc import scan_doc, schema

REQUIRED_SITE = {"section", "offset", "address", "function", "function_offset", "trampoline",
                 "key", "kind", "length", "crossing", "patchable", "reason"}


@pytest.fixture(scope="module")
def validator():
    s = schema()
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


@pytest.mark.parametrize("args", [[], ["--policy", "kernel"], ["--allow-tail"],
                                  ["--assume-align", "64"], ["--module", "--policy", "kernel"]])
def test_reports_validate(validator, args):
    objs = sorted(PREBUILT.glob("*.o"))
    res = run_cli("scan", "--format", "json", *args, *objs)
    assert res.rc == 0, res.stderr
    report = res.json()
    validator.validate(report)
    assert report["schema_version"] == 1
    assert [o["path"] for o in report["objects"]] == [str(p) for p in objs]
    sites = [s for o in report["objects"] for s in o["sites"]]
    assert sites and all(REQUIRED_SITE <= set(s) for s in sites)
    total = report["summary"]
    assert total["sites"] == len(sites) == total["patchable"] + total["fallback"]
    assert total["objects"] == len(objs)


def test_schema_rejects_a_broken_report(validator):
    report = run_cli("scan", "--format", "json", PREBUILT / "kinds.o").json()
    site = report["objects"][0]["sites"][0]
    site["kind"] = "teleport"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(report)
    site["kind"] = "call"
    site["patchable"], site["reason"] = True, "tail-call"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(report)


def test_library_api_without_cli(validator):
    res = scan_path(str(PREBUILT / "kinds.o"), Options(policy="kernel"))
    kinds = {s.kind for s in res.sites}
    assert kinds == {"call", "tail", "jcc-tail", "prefixed-call", "indirect"}
    assert all(s.patchable == (s.kind != "indirect") for s in res.sites)
    validator.validate(scan_doc([res], Options(policy="kernel")))
    with pytest.raises(scall_objtool.InputError):
        scan_path(str(PREBUILT / "README.md"))


def test_text_report_lists_every_site():
    report = run_cli("scan", "--format", "json", PREBUILT / "kinds.o").json()
    text = run_cli("scan", PREBUILT / "kinds.o").stdout
    for s in report["objects"][0]["sites"]:
        assert f"{s['section']}+{s['offset']:#x}" in text
    assert text.strip().splitlines()[-1].startswith("summary: 1 object, ")


def test_object_without_static_calls_skips_heavy_imports():
    code = ("import sys; from scall_objtool.core.pipeline import scan_path; "
            f"r = scan_path({str(PREBUILT / 'nostatic-O2.o')!r}); "
            "print(len(r.sites), 'numpy' in sys.modules, 'capstone' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["0", "False", "False"]
    code = code.replace("nostatic-O2.o", "kinds.o")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    # tables read without numpy, and capstone's library bound without its package
    assert out[1:] == ["False", "False"] and int(out[0]) > 0


def test_report_written_to_file(tmp_path):
    out = tmp_path / "r.json"
    res = run_cli("scan", "--format", "json", "-o", out, PREBUILT / "kinds.o")
    assert res.rc == 0 and res.stdout == ""
    assert json.loads(out.read_text())["objects"][0]["path"] == str(PREBUILT / "kinds.o")


def test_verify_json_validates_and_carries_the_tool_block(tmp_path):
    """verify --format json has a shipped schema and the same tool block as every
    other document; a failed entry shows in objects[].mismatches."""
    s = schema("verify")
    jsonschema.Draft202012Validator.check_schema(s)
    out = tmp_path / "demo.o"
    assert run_cli("write", "-q", "-o", out, PREBUILT / "demo.o").rc == 0
    res = run_cli("verify", "--format", "json", out, PREBUILT / "demo.o")
    assert res.rc == 1, res.stderr
    doc = res.json()
    jsonschema.Draft202012Validator(s).validate(doc)
    assert doc["tool"] == {"name": "scall-objtool", "version": scall_objtool.__version__}
    assert [o["ok"] for o in doc["objects"]] == [True, False]
    assert doc["summary"] == {"objects": 2, "entries": 3, "failed": 1, "policy_findings": 0}
