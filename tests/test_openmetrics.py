"""OpenMetrics output of a report: it parses (OpenMetrics and the Prometheus
text format node_exporter reads) and its counts are the JSON summary's."""
from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_prom

from dashlib import LAYOUT, prebuilt_tree, rename_trampoline, scan_json
from scall_objtool.errors import InputError
from scall_objtool.report.openmetrics import escape_label, render_openmetrics


def samples(text: str) -> dict[str, list]:
    """family name -> [(labels dict, value)], parsed as OpenMetrics."""
    out = defaultdict(list)
    for fam in parse_om(text):
        assert fam.type == "gauge", fam.name
        for s in fam.samples:
            assert s.name == fam.name
            out[fam.name].append((s.labels, s.value))
    return out


def summed(rows, *keys) -> dict:
    c = Counter()
    for labels, v in rows:
        c[tuple(labels[k] for k in keys) if len(keys) > 1 else labels[keys[0]]] += v
    return dict(c)


def directory(path: str, root: str) -> str:
    rel = path[len(root) + 1:]
    return rel.rsplit("/", 1)[0] if "/" in rel else "."


def assert_counts(text: str, doc: dict, root: str, complete_sites: bool = True) -> None:
    s = doc["summary"]
    m = samples(text)
    assert m["scall_objtool_objects"] == [({}, s["objects"])]
    assert m["scall_objtool_references"] == [({}, s["references"])]
    assert summed(m["scall_objtool_verdict_sites"], "verdict") == {
        "patchable": s["patchable"], "fallback": s["fallback"]}
    assert m["scall_objtool_patchable_ratio"][0][1] == pytest.approx(
        s["patchable"] / s["sites"])
    assert {k: v for k, v in summed(m["scall_objtool_kind_sites"], "kind").items()} \
        == s["by_kind"]
    assert summed(m["scall_objtool_reason_sites"], "reason") == s["by_reason"]
    tramp = summed(m["scall_objtool_trampoline_sites"], "trampoline", "verdict")
    assert tramp == {(t, v): c[v] for t, c in s["by_trampoline"].items()
                     for v in ("patchable", "fallback")}
    want_dir = Counter()
    for o in s["by_object"]:
        want_dir[(directory(o["path"], root), "patchable")] += o["patchable"]
        want_dir[(directory(o["path"], root), "fallback")] += o["fallback"]
    assert summed(m["scall_objtool_dir_sites"], "dir", "verdict") == dict(want_dir)

    joint = m["scall_objtool_sites"]
    fallback = [(lab, v) for lab, v in joint if lab["verdict"] == "fallback"]
    assert summed(fallback, "reason") == s["by_reason"]
    assert sum(v for _, v in fallback) == s["fallback"]
    assert summed(fallback, "dir") == {d: n for (d, verdict), n in want_dir.items()
                                       if verdict == "fallback" and n}
    if complete_sites:
        assert summed(joint, "verdict") == {k: s[k] for k in ("patchable", "fallback") if s[k]}
        assert summed(joint, "kind") == s["by_kind"]
        assert summed(joint, "trampoline") == {t: c["sites"] for t, c in
                                               s["by_trampoline"].items()}
        assert summed(joint, "dir") == {d: n for d, n in Counter(
            {d: want_dir[(d, "patchable")] + want_dir[(d, "fallback")]
             for d, _ in want_dir}).items() if n}
        assert all(lab["reason"] == "none" for lab, _ in joint if lab["verdict"] == "patchable")
    # node_exporter's textfile collector reads the Prometheus text format
    prom = {f.name: f for f in parse_prom(text)}
    assert {n: len(f.samples) for n, f in prom.items()} == {n: len(v) for n, v in m.items()} \
        | {n: 0 for n in prom if n not in m}


def test_scan_report_counts(cli, tmp_path):
    tree = prebuilt_tree(tmp_path / "build")
    doc = scan_json(cli, tmp_path / "r.json", tree)
    text = render_openmetrics(doc)
    assert text.endswith("\n# EOF\n") and text.count("# EOF") == 1
    assert text == render_openmetrics(json.loads(json.dumps(doc)))     # deterministic
    assert_counts(text, doc, str(tree))
    m = samples(text)
    dirs = {lab["dir"] for lab, _ in m["scall_objtool_dir_sites"]}
    assert dirs == {r.rsplit("/", 1)[0] if "/" in r else "." for r in LAYOUT}
    (report,) = m["scall_objtool_report"]
    assert report[0]["policy"] == "seed" and report[0]["version"] == doc["tool"]["version"]


def test_check_report_counts(cli, tmp_path):
    tree = prebuilt_tree(tmp_path / "build")
    out = tmp_path / "c.json"
    r = cli("check", "--format", "json", "-o", out, tree)
    assert r.rc == 1, r.stderr
    doc = json.loads(out.read_text())
    text = render_openmetrics(doc)
    assert_counts(text, doc, str(tree), complete_sites=False)
    m = samples(text)
    assert m["scall_objtool_check_passed"] == [({}, 0)]
    assert m["scall_objtool_check_failing"] == [({}, doc["check"]["failing"])]
    assert {lab["verdict"] for lab, _ in m["scall_objtool_sites"]} == {"fallback"}


def test_label_values_are_escaped(cli, tmp_path):
    tree = prebuilt_tree(tmp_path / "build")
    doc = scan_json(cli, tmp_path / "r.json", tree)
    evil = '__SCT__a"b\\c\nd}e,f="g" \u00e9\u2028'
    rename_trampoline(doc, "__SCT__bar", evil)
    bt = doc["summary"]["by_trampoline"]
    text = render_openmetrics(doc)
    assert escape_label(evil) in text and evil not in text
    m = samples(text)
    assert {lab["trampoline"] for lab, _ in m["scall_objtool_trampoline_sites"]} >= {evil}
    assert sum(v for lab, v in m["scall_objtool_sites"] if lab["trampoline"] == evil) \
        == bt[evil]["sites"]


def test_malformed_report_is_an_input_error():
    from scall_objtool import Options
    from scall_objtool.report import tool
    head = {"schema_version": 1, "tool": tool(), "policy": Options().to_json()}
    with pytest.raises(InputError, match="'objects' is required"):
        render_openmetrics({**head, "summary": {
            "objects": 0, "sites": 0, "patchable": 0, "fallback": 0, "references": 0,
            "by_kind": {}, "by_reason": {}, "by_trampoline": {}, "by_object": []}}, "r.json")
    with pytest.raises(InputError, match="by_kind"):
        render_openmetrics({**head, "objects": [], "summary": {
            "objects": 0, "sites": 0, "patchable": 0, "fallback": 0, "references": 0,
            "by_kind": {"bogus": 1}, "by_reason": {}, "by_trampoline": {}, "by_object": []}})


def test_corpus_counts(cli, corpus, tmp_path):
    doc = scan_json(cli, tmp_path / "corpus.json", corpus)
    text = render_openmetrics(doc)
    assert_counts(text, doc, corpus.as_posix())
    assert samples(text)["scall_objtool_verdict_sites"] == [
        ({"verdict": "fallback"}, 492), ({"verdict": "patchable"}, 6621)]     # loader model
