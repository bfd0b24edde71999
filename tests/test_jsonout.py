"""The report writer (``report.jsonout``) writes exactly what
``json.dumps(doc, indent=2, ensure_ascii=True)`` writes, faster, and leaves
to ``json.dumps`` what it does not write itself (errors included)."""
from __future__ import annotations

import enum
import json

import pytest

from scall_objtool.report import dump
from scall_objtool.report.jsonout import dumps


class _Name(str, enum.Enum):
    A = "a\u00e9"


class _Num(enum.IntEnum):
    X = 3


DOCS = [
    {}, [], (), "", 0, -1, 10 ** 30, 1.5, -0.0, float("nan"), float("inf"), -float("inf"),
    True, False, None, "caf\u00e9 \u2028 \x00 \"q\" \\ \ud800",
    {"a": [], "b": {}, "c": [[]], "d": [{}], "e": ({"f": (1, 2)},)},
    {1: "int", 2.5: "float", None: "none", "s": "str"}, {True: "bool"},
    {False: 0, -3: [None, True, False, 1.0, float("nan")]},
    [_Name.A, _Num.X, {_Name.A: _Num.X, _Num.X: _Name.A}],
    {"deep": [[[[{"x": [1, {"y": None}]}]]]]},
]


@pytest.mark.parametrize("doc", DOCS, ids=range(len(DOCS)))
def test_the_same_text_as_json_dumps(doc):
    assert dumps(doc) == json.dumps(doc, indent=2, ensure_ascii=True)
    assert dump(doc) == json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def test_a_scan_report_byte_for_byte():
    from pathlib import Path

    from scall_objtool.core import Options
    from scall_objtool.core.pipeline import scan_path
    from scall_objtool.report.jsondoc import scan_doc
    prebuilt = Path(__file__).resolve().parent.parent / "testdata" / "prebuilt"
    results = [scan_path(str(p), Options()) for p in sorted(prebuilt.glob("*.o"))]
    assert sum(len(r.sites) for r in results) > 5
    doc = scan_doc(results, Options(), [])
    assert dumps(doc) == json.dumps(doc, indent=2, ensure_ascii=True)


def test_what_json_refuses_it_refuses_the_same_way():
    for bad, err in (({"a": object()}, TypeError), ({(1, 2): 3}, TypeError),
                     ([float("nan"), set()], TypeError)):
        with pytest.raises(err) as mine:
            dumps(bad)
        with pytest.raises(err) as theirs:
            json.dumps(bad, indent=2, ensure_ascii=True)
        assert str(mine.value) == str(theirs.value)
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps(loop)


def test_nesting_past_the_fast_writer_depth_is_still_written():
    doc: list = []
    for _ in range(1200):
        doc = [doc]
    try:
        want = json.dumps(doc, indent=2, ensure_ascii=True)
    except RecursionError:
        with pytest.raises(RecursionError):
            dumps(doc)
    else:
        assert dumps(doc) == want
