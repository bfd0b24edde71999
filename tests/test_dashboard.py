"""The HTML dashboard: self-contained, deterministic, and right in a real
headless Chromium (numbers, filtering, sorting, cache-line pictures, trend)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import cliserver
from dashlib import (LAYOUT, chromium, console_errors, number, prebuilt_tree,
                     rename_trampoline, scan_json)
from scall_objtool.errors import InputError
from scall_objtool.report import findings as lint
from scall_objtool.report.dashboard import dashboard_from_files, render_dashboard
from scall_objtool.report.jsondoc import load_report
from scall_objtool.vocabulary import KIND_TABLE, REASON_TABLE


def dev(*args) -> subprocess.CompletedProcess:
    """The command: python -m scall_objtool dashboard ARGS."""
    return cliserver.run(["dashboard", *args], text=True, timeout=120)


@pytest.fixture
def tree(tmp_path) -> Path:
    return prebuilt_tree(tmp_path / "build")


@pytest.fixture
def small(cli, tree, tmp_path):
    """(old report path, new report path, new report): the new one is the
    whole tree with a made-up inline chain and placement on one site; the old
    one lacks kinds.o."""
    old = tmp_path / "old.json"
    scan_json(cli, old, *[tree / r for r in LAYOUT if r != "arch/x/kinds.o"])
    new = tmp_path / "new.json"
    doc = scan_json(cli, new, tree)
    site = next(s for o in doc["objects"] for s in o["sites"] if s["function"] == "d_03c")
    site["inlined"] = [{"function": "inner_helper", "file": "include/x.h", "line": 12},
                       {"function": "d_03c", "file": "arch/x/crossing.c", "line": 40}]
    site["placement"] = {"basis": "alignment", "alignment": 16}
    site = next(s for o in doc["objects"] for s in o["sites"] if s["function"] == "d_04f")
    # a module's section laid out by the loader model: the site starts at 62
    site["placement"] = {"basis": "model", "model": "6.1", "region": "text",
                         "offset": (62 - site["offset"]) % 64 + 4096}
    # as in a linked kernel: an address above 2**53, which JavaScript's
    # numbers cannot hold exactly; it starts at 0x3f of its line
    site = next(s for o in doc["objects"] for s in o["sites"] if s["function"] == "c_0bf")
    site["address"] = 0xffffffff8101cdbf
    new.write_text(json.dumps(doc))
    return old, new, doc


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module's tests (starting one costs seconds)."""
    with chromium() as d:
        yield d


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def open_page(driver, page: Path) -> float:
    driver.get_log("browser")           # what earlier pages logged is theirs
    driver.get(page.as_uri())
    deadline = time.monotonic() + 120    # a hang guard (pages render in under 2 s)
    while js(driver, "return document.documentElement.dataset.ready") != "1":
        assert time.monotonic() < deadline, "the page never finished rendering"
        time.sleep(0.05)
    return float(js(driver, "return document.documentElement.dataset.renderMs"))


def text_of(driver, css) -> str:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css).text


def select(driver, css, value) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element(By.CSS_SELECTOR, css)).select_by_value(value)


def type_filter(driver, table_id, text) -> None:
    from selenium.webdriver.common.by import By
    box = driver.find_element(By.ID, f"{table_id}-q")
    box.clear()
    if text:
        box.send_keys(text)
    else:   # clear() fires no input event
        js(driver, "arguments[0].dispatchEvent(new Event('input'))", box)


def total(driver, table_id) -> int:
    return int(js(driver, f"return document.getElementById('{table_id}-count')"
                          ".getAttribute('data-total')"))


def column(driver, table_id, key) -> list[str]:
    """The cells of one column on the current page."""
    return js(driver, """
        var t = document.getElementById(arguments[0] + '-table');
        var ths = Array.from(t.tHead.rows[0].cells);
        var key = arguments[1];
        var k = ths.findIndex(function (th) { return th.dataset.key === key; });
        return Array.from(t.tBodies[0].rows).filter(function (r) { return r.cells.length > 1; })
            .map(function (r) { return r.cells[k].textContent; });""", table_id, key)


def sort_by(driver, table_id, key) -> str:
    from selenium.webdriver.common.by import By
    th = driver.find_element(By.CSS_SELECTOR, f"#{table_id}-table th[data-key='{key}']")
    th.click()
    return th.get_attribute("aria-sort")


def assert_pictures_agree(driver, doc: dict) -> None:
    """Every site's picture crosses where the report says it does (but where
    a made-up placement says otherwise)."""
    drawn = js(driver, "return window.scallDashboard.pictureCrossing()")
    sites = [s for o in doc["objects"] for s in o["sites"]]
    assert len(drawn) == len(sites)
    keep = [s["kind"] != "indirect" and s["function"] != "d_04f" for s in sites]
    assert [d for d, k in zip(drawn, keep) if k] \
        == [s["crossing"] for s, k in zip(sites, keep) if k]


def assert_summary(driver, doc: dict) -> None:
    s = doc["summary"]
    for k in ("objects", "sites", "patchable", "fallback", "references"):
        assert number(text_of(driver, f"#sum-{k}")) == s[k], k
    for reason, n in s["by_reason"].items():
        assert number(text_of(driver, f"#sum-reason-{reason}")) == n, reason
    for kind, n in s["by_kind"].items():
        assert number(text_of(driver, f"#sum-kind-{kind}")) == n, kind
    share = f"{100 * s['patchable'] / s['sites']:.1f}%"
    assert text_of(driver, "#sum-share").startswith(share)
    assert doc["tool"]["version"] in text_of(driver, "#meta-version")
    assert f"policy {doc['policy']['name']}" in text_of(driver, "#meta-policy")


def show_site(driver, query: str) -> int:
    """Filter the sites table down to one site (any verdict); its index."""
    select(driver, "#sites-verdict", "all")
    type_filter(driver, "sites", query)
    assert total(driver, "sites") == 1, query
    return int(js(driver, "return document.querySelector('#sites-table tr.site')"
                          ".dataset.site"))


def picture_rows(driver, big: bool) -> list[dict]:
    """Each row of the shown site's picture: start, whether it crosses, the
    boundary marker (x and data-byte) and every instruction byte's x range."""
    where = "#sites-table tr.detail svg.pic" if big else "#sites-table tr.site svg.pic"
    return js(driver, """
        var svg = document.querySelector(arguments[0]);
        return Array.from(svg.querySelectorAll('g.prow')).map(function (g) {
          var b = g.querySelector('line.boundary');
          return {start: +g.dataset.start, crosses: g.dataset.crosses === '1',
                  hit: b.classList.contains('hit'), x: +b.getAttribute('x1'),
                  byte: b.hasAttribute('data-byte') ? +b.getAttribute('data-byte') : null,
                  bytes: Array.from(g.querySelectorAll('rect.byte')).map(function (r) {
                    return [+r.dataset.i, +r.getAttribute('x'), +r.getAttribute('width')]; })};
        });""", where)


def assert_boundary(row: dict, length: int, line: int = 64) -> None:
    """The marker sits between the last byte before the line boundary and
    the first one after it, and names that byte."""
    k = line - row["start"]
    assert row["crosses"] and row["hit"]
    assert row["byte"] == k
    xs = {i: (x, w) for i, x, w in row["bytes"]}
    assert sorted(xs) == list(range(length))
    before, after = xs[k - 1], xs[k]
    assert before[0] + before[1] <= row["x"] <= after[0]


def assert_fits(row: dict, length: int) -> None:
    assert not row["crosses"] and not row["hit"] and row["byte"] is None
    assert row["start"] + length <= 64
    assert max(x + w for _, x, w in row["bytes"]) <= row["x"]


# ------------------------------------------------------------------ offline
def test_page_is_self_contained_and_deterministic(small, tmp_path):
    old, new, _ = small
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    for out in (a, b):
        r = dev(old, new, "-o", out, "--label", "before")
        assert r.returncode == 0 and r.stderr == "", r.stderr
    page = a.read_bytes()
    assert page == b.read_bytes()
    text = page.decode()
    # nothing to fetch: no URL but the SVG namespace, and a CSP that forbids any
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in text
    assert not re.search(r"<(img|iframe|object|embed)\b", text)
    assert re.findall(r"<script\b[^>]*\bsrc=", text) == []
    # labels: the given one, then the file name
    assert [t["label"] for t in embedded(text)["trend"]] == ["before", "new.json"]


def test_hostile_names_stay_data(small, tmp_path, browser):
    _, new, doc = small
    evil = '__SCT__</script><script>alert(1)</script>&"\n\u2028'
    rename_trampoline(doc, "__SCT__bar", evil)
    doc["policy"]["cache_line"] = 1 << 40       # no picture, and no endless loop
    page = render_dashboard([doc], ["<b>label</b>"])
    assert page.count("</script>") == 2          # the data's and the code's
    assert "<b>label" not in page
    assert evil not in page
    out = tmp_path / "evil.html"
    out.write_text(page)
    d = browser
    open_page(d, out)
    assert console_errors(d) == []
    type_filter(d, "tramp", "alert")
    assert total(d, "tramp") == 1
    assert column(d, "tramp", "name") == [evil]
    assert js(d, "return document.querySelectorAll('script').length") == 2
    assert "too long to draw" in text_of(d, "#sites-table tr.site")
    assert console_errors(d) == []


@pytest.mark.parametrize("content, problem", [
    (None, "cannot open: No such file or directory"),
    ("{not json", "not a JSON report"),
    ('{"schema_version": 2}', "schema_version is 2, expected 1"),
    ('[]', "the top level is not an object"),
])
def test_bad_report_is_one_line_exit_2(tmp_path, small, content, problem):
    _, new, _ = small
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    out = tmp_path / "out.html"
    r = dev(new, bad, "-o", out)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith(f"scall-objtool: error: {bad}: ") and problem in r.stderr
    assert not out.exists()


def test_output_over_a_report_is_refused(small):
    _, new, _ = small
    before = new.read_bytes()
    r = dev(new, "-o", new)
    assert r.returncode == 2 and "is also an input" in r.stderr
    assert new.read_bytes() == before


def test_malformed_site_is_an_input_error(small):
    _, _, doc = small
    doc["objects"][0]["sites"][0]["length"] = "five"
    with pytest.raises(InputError, match=r"sites\[0\]\.length"):
        render_dashboard([doc], ["x"])
    doc["objects"][0]["sites"][0]["length"] = 5
    doc["objects"][0]["sites"][0]["placement"] = {"line_offset": float("nan")}
    with pytest.raises(InputError, match=r"sites\[0\]\.placement"):
        render_dashboard([doc], ["x"])
    del doc["objects"][0]["sites"][0]["placement"]
    doc["summary"]["by_object"] = None
    with pytest.raises(InputError, match="by_object"):
        render_dashboard([doc], ["x"])


def test_check_report_renders_its_findings(cli, tree, tmp_path, browser):
    out = tmp_path / "check.json"
    r = cli("check", "--format", "json", "-o", out, tree)
    assert r.rc == 1, r.stderr
    doc = json.loads(out.read_text())
    page = tmp_path / "check.html"
    page.write_text(dashboard_from_files([str(out)]))
    d = browser
    open_page(d, page)
    assert console_errors(d) == []
    assert_summary(d, doc)
    assert total(d, "sites") == len(doc["findings"]) == doc["summary"]["fallback"]
    assert "failed" in text_of(d, "#sum-check")


def embedded(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="scall-data">(.*?)'
                                r"</script>", page, re.S).group(1))


def test_trend_from_a_scan_to_a_check_report(cli, small, tmp_path):
    """Between a scan and a check report only fallback sites are compared,
    as diff would compare them."""
    old, _, _ = small
    tree = tmp_path / "build"
    check = tmp_path / "check.json"
    assert cli("check", "--format", "json", "-o", check, tree).rc == 1
    data = embedded(dashboard_from_files([str(old), str(check)]))
    assert data["diff"]["scope"] == "fallback"
    fb_old = [s for s in load_report(str(old)).sites if not s.patchable]
    doc = json.loads(check.read_text())
    fb_new = [lint.LintSite(**{k: f[k] for k in (
        "object", "section", "offset", "function", "function_offset", "trampoline", "key",
        "kind", "patchable", "reason", "crossing", "source")}) for f in doc["findings"]]
    want = lint.diff(fb_old, fb_new)
    assert data["diff"]["counts"] == {
        "added": len(want.added), "removed": len(want.removed), "changed": len(want.changed),
        "unchanged": len(want.unchanged), "moved": want.moved,
        "new_fallback": len(want.new_fallback)}
    assert data["diff"]["counts"]["added"] == 8      # kinds.o's fallback sites
    assert [t["kind"] for t in data["trend"]] == ["scan", "check"]


# ------------------------------------------------------------- small, live
def test_small_dashboard_in_chromium(small, tmp_path, browser):
    old, new, doc = small
    page = tmp_path / "small.html"
    page.write_text(dashboard_from_files([str(old), str(new)]))
    d = browser
    open_page(d, page)
    assert console_errors(d) == []
    assert_summary(d, doc)
    assert_pictures_agree(d, doc)

    # directories: counts per directory equal the JSON's
    select(d, "#dir-depth", "0")
    want = Counter()
    for o in doc["summary"]["by_object"]:
        rel = o["path"].split("/build/", 1)[1]
        want[rel.rsplit("/", 1)[0] if "/" in rel else "."] += o["fallback"]
    assert total(d, "dir") == len(want)
    assert dict(zip(column(d, "dir", "name"), map(number, column(d, "dir", "fallback")))) \
        == dict(want)

    # trampolines: filter and sort
    tramps = doc["summary"]["by_trampoline"]
    type_filter(d, "tramp", "sc_")
    assert total(d, "tramp") == sum("sc_" in t for t in tramps) == 3
    assert sort_by(d, "tramp", "sites") == "descending"
    want_sites = sorted((v["sites"] for t, v in tramps.items() if "sc_" in t), reverse=True)
    assert [number(x) for x in column(d, "tramp", "sites")] == want_sites
    assert sort_by(d, "tramp", "sites") == "ascending"
    assert [number(x) for x in column(d, "tramp", "sites")] == sorted(want_sites)
    assert sort_by(d, "tramp", "name") == "ascending"
    type_filter(d, "tramp", "")
    assert column(d, "tramp", "name") == sorted(tramps)
    # and from the keyboard
    from selenium.webdriver.common.keys import Keys
    th = d.find_element("css selector", "#tramp-table th[data-key='fallback']")
    th.send_keys(Keys.ENTER)
    assert th.get_attribute("aria-sort") == "descending"
    assert [number(x) for x in column(d, "tramp", "fallback")] == sorted(
        (v["fallback"] for v in tramps.values()), reverse=True)

    # sites: the fallback ones by default, filtered by reason
    assert total(d, "sites") == doc["summary"]["fallback"]
    select(d, "#sites-reason", "may-cross-cache-line")
    assert total(d, "sites") == doc["summary"]["by_reason"]["may-cross-cache-line"]
    select(d, "#sites-reason", "")

    # an exact crossing: c_07c at .text+0x7c, section 64-aligned: starts
    # at 0x3c of its line, so the boundary falls after byte 4 of 5
    show_site(d, "c_07c+0x0")
    (row,) = picture_rows(d, big=False)
    assert row["start"] == 0x7c % 64
    assert_boundary(row, 5)
    # a prefixed call crossing after byte 5 of 6 (2e e8 rel32 at 0x3b)
    show_site(d, "c_2fb+0x0")
    (row,) = picture_rows(d, big=False)
    assert row["start"] == 0x2fb % 64 and row["byte"] == 5
    assert_boundary(row, 6)
    # depends, section 16-aligned at 0x3c: four placements, only 0x3c crosses
    i = show_site(d, "d_03c+0x0")
    rows = picture_rows(d, big=False)
    assert [r["start"] for r in rows] == [0x0c, 0x1c, 0x2c, 0x3c]
    for r in rows[:3]:
        assert_fits(r, 5)
    assert_boundary(rows[3], 5)
    d.find_element("css selector", f"#sites-table tr.site[data-site='{i}']").click()
    big = picture_rows(d, big=True)
    assert [r["start"] for r in big] == [0x0c, 0x1c, 0x2c, 0x3c]
    assert_boundary(big[3], 5)
    # the call's opcode byte, as the tool's table of kinds gives it to the page
    labels = js(d, """return Array.from(document.querySelectorAll(
        '#sites-table tr.detail svg.pic g.prow')[0].querySelectorAll('text.hexl'))
        .map(function (t) { return t.textContent; });""")
    assert labels == [*KIND_TABLE["call"].opcode, "\u00b7\u00b7", "\u00b7\u00b7",
                      "\u00b7\u00b7", "\u00b7\u00b7"]
    detail = text_of(d, "#sites-table tr.detail")
    assert "inner_helper (include/x.h:12)" in detail and "arch/x/crossing.c:40" in detail
    assert 'basis "alignment"' in detail
    # its remedy (remedy.py), here for an object whose compiler is unknown
    from scall_objtool.core.remedy import remedy
    assert remedy("may-cross-cache-line").text in detail
    reasons = doc["summary"]["by_reason"]
    assert dict(zip(column(d, "reason", "name"), column(d, "reason", "remedy"))) == {
        r: remedy(r).text for r in reasons}
    # and its meaning, from the tool's table of reasons
    assert dict(zip(column(d, "reason", "name"), column(d, "reason", "why"))) == {
        r: REASON_TABLE[r].meaning for r in reasons}
    # an image's address: exact, from all its bits
    show_site(d, "c_0bf+0x0")
    (row,) = picture_rows(d, big=False)
    assert row["start"] == 0x3f
    assert_boundary(row, 5)
    assert "@0xffffffff8101cdbf" in text_of(d, "#sites-table tr.site")
    # a placement that knows the start in the line: one row, exact
    show_site(d, "d_04f+0x0")
    (row,) = picture_rows(d, big=False)
    assert row["start"] == 62
    assert_boundary(row, 5)
    # the inline chain also in the row, and searchable
    type_filter(d, "sites", "inner_helper")
    assert total(d, "sites") == 1
    # depends, section 1-aligned: 64 possible starts, the last 4 cross
    show_site(d, "e_03e+0x0")
    starts = js(d, """return Array.from(document.querySelectorAll(
        '#sites-table tr.site svg.pic g.startmap rect.start')).map(function (r) {
        return r.getAttribute('class'); });""")
    assert starts == ["start fit"] * 60 + ["start cross"] * 4
    (row,) = picture_rows(d, big=False)
    assert row["start"] == 60
    assert_boundary(row, 5)
    assert console_errors(d) == []

    # trend and the diff of the last two, as lint.diff matches them
    oldsites = load_report(str(old)).sites
    newsites = load_report(str(new)).sites
    want = lint.diff(oldsites, newsites)
    assert js(d, "return document.querySelectorAll('#trend-chart circle').length") == 4
    assert total(d, "diff") == len(want.added) + len(want.removed) + len(want.changed)
    select(d, "#diff-type", "added")
    assert total(d, "diff") == len(want.added) == 10
    assert set(column(d, "diff", "where")) == {s.where for s in want.added}
    sub = text_of(d, "#diff-panel h2")
    assert f"{len(want.unchanged)} unchanged" in sub
    assert f"{len(want.new_fallback)} new fallback" in sub
    assert console_errors(d) == []


# ------------------------------------------------------------------- corpus
@pytest.mark.slow             # the whole corpus, twice, in a browser (the small one stays)
def test_corpus_dashboard_in_chromium(cli, corpus, tmp_path, browser):
    """The whole 6.1 module corpus, twice (section alignment only, then the
    module loader's layout) as a trend of two reports."""
    before, after = tmp_path / "align.json", tmp_path / "model.json"
    scan_json(cli, before, "--placement", "off", corpus)
    doc = scan_json(cli, after, corpus)
    assert doc["summary"]["sites"] == 7113 and doc["summary"]["objects"] == 1121

    # times are scripts/bench --dashboard's to measure, not a test's
    page_text = dashboard_from_files([str(before), str(after)],
                                     ["sh_addralign", "loader model"])
    page = tmp_path / "corpus.html"
    page.write_text(page_text)
    assert page.stat().st_size <= 5_000_000

    d = browser
    open_page(d, page)
    assert console_errors(d) == []
    assert_summary(d, doc)
    assert_pictures_agree(d, doc)

    # directories at depth 1, as the JSON's by_object adds them up
    select(d, "#dir-depth", "1")
    root = corpus.as_posix() + "/"
    want = Counter()
    for o in doc["summary"]["by_object"]:
        rel = o["path"][len(root):]
        want[rel.split("/")[0] if "/" in rel else "."] += o["sites"]
    assert total(d, "dir") == len(want)
    select(d, "#dir-size", "100")
    assert dict(zip(column(d, "dir", "name"), map(number, column(d, "dir", "sites")))) \
        == dict(want)
    # filter and sort the trampolines
    tramps = doc["summary"]["by_trampoline"]
    type_filter(d, "tramp", "kvm_x86")
    assert total(d, "tramp") == sum("kvm_x86" in t for t in tramps)
    assert sort_by(d, "tramp", "fallback") == "ascending"      # was the default, descending
    assert sort_by(d, "tramp", "fallback") == "descending"
    want_fb = sorted((v["fallback"] for t, v in tramps.items() if "kvm_x86" in t),
                     reverse=True)[:20]
    assert [number(x) for x in column(d, "tramp", "fallback")] == want_fb

    # the sites: every fallback one is listed; pages
    assert total(d, "sites") == doc["summary"]["fallback"] == 492
    assert len(column(d, "sites", "obj")) == 20
    # a known crossing site: kvm-amd.ko svm_update_soft_interrupt_rip+0xdc,
    # .text+0x217c in a page-aligned .text: at 0x3c of its line, the
    # boundary after byte 4 of the call's 5
    site = next(s for o in doc["objects"] if o["path"].endswith("/kvm-amd.ko")
                for s in o["sites"] if s["function"] == "svm_update_soft_interrupt_rip"
                and s["function_offset"] == 0xdc)
    assert site["crossing"] == "always" and site["offset"] % 64 == 0x3c
    i = show_site(d, "kvm-amd.ko svm_update_soft_interrupt_rip+0xdc")
    (row,) = picture_rows(d, big=False)
    assert row["start"] == 0x3c
    assert_boundary(row, 5)
    d.find_element("css selector", f"#sites-table tr.site[data-site='{i}']").click()
    (row,) = picture_rows(d, big=True)
    assert_boundary(row, 5)
    assert "crosses the line after byte 4 of 5" in text_of(d, "#sites-table tr.detail")

    # trend: both reports; the diff as lint.diff
    points = js(d, """return Array.from(document.querySelectorAll('#trend-chart circle'))
        .map(function (c) { return [c.dataset.series, +c.dataset.value]; });""")
    assert sorted(points) == sorted([["patchable", 5201], ["fallback", 1912],
                                     ["patchable", 6621], ["fallback", 492]])
    want = lint.diff(load_report(str(before)).sites, load_report(str(after)).sites)
    assert total(d, "diff") == len(want.changed) + len(want.added) + len(want.removed)
    assert len(want.changed) > 1000         # depends -> exact, by the model
    assert console_errors(d) == []

    # the first report alone: 1878 sites that depend on placement
    first = tmp_path / "first.html"
    first.write_text(dashboard_from_files([str(before)]))
    open_page(d, first)
    doc1 = json.loads(before.read_text())
    assert_summary(d, doc1)
    assert_pictures_agree(d, doc1)
    assert console_errors(d) == []


def test_a_baselined_check_opens_on_new_findings(cli, tree, tmp_path, browser):
    """Issue 21: the dashboard of a check against a baseline carries new /
    known / fixed per finding, lists the new ones first, and shows them alone
    with one click; the baseline's gone findings are there under 'fixed'."""
    base = tmp_path / "base.json"
    # the baseline lacks kinds.o (its findings are new) and has one object the
    # tree has no more (its findings are fixed)
    extra = tmp_path / "gone" / "old.o"
    extra.parent.mkdir()
    shutil.copyfile(tree / "lib" / "demo.o", extra)
    scan_json(cli, base, extra, *[tree / r for r in LAYOUT if r != "arch/x/kinds.o"])
    out = tmp_path / "check.json"
    r = cli("check", "--format", "json", "--layout-gate", "strict", "--baseline", base,
            "-o", out, tree)
    assert r.rc == 1, r.stderr
    doc = json.loads(out.read_text())
    states = [f["baseline_state"] for f in doc["findings"]]
    n_new, n_known = states.count("new"), states.count("unchanged") + states.count("updated")
    assert n_new and n_known and doc["fixed"]
    assert {f["object"] for f in doc["findings"] if f["baseline_state"] == "new"} == {
        str(tree / "arch/x/kinds.o")}
    page = tmp_path / "check.html"
    page.write_text(dashboard_from_files([str(out)]))
    d = browser
    open_page(d, page)
    assert console_errors(d) == []
    # opens on the current findings, the new ones first
    assert total(d, "sites") == len(doc["findings"])
    shown = js(d, "return Array.from(document.querySelectorAll('#sites-table tr.site'))"
                  ".map(function (tr) { var x = tr.querySelector('[data-state]');"
                  " return x ? x.getAttribute('data-state') : null; })")
    k = min(len(shown), n_new)
    assert shown[:k] == ["new"] * k and set(shown[k:]) <= {"known"}
    assert f"{n_new} new" in text_of(d, "#sum-check")
    # one click: the new findings alone
    from selenium.webdriver.common.by import By
    d.find_element(By.ID, "sites-new").click()
    assert total(d, "sites") == n_new
    select(d, "#sites-state", "fixed")
    js(d, "arguments[0].dispatchEvent(new Event('change'))",
       d.find_element(By.ID, "sites-state"))
    assert total(d, "sites") == len(doc["fixed"])


def test_trend_shows_fallback_on_its_own_scale(cli, tree, tmp_path, browser):
    """Fallback counts that differ by a few percent must be visibly apart: the
    fallback chart's axis spans their own range, not 0..patchable."""
    doc = scan_json(cli, tmp_path / "a.json", tree)
    reports = []
    for i, fb in enumerate((1000, 1030, 1010)):
        d = json.loads(json.dumps(doc))
        d["summary"].update(sites=fb + 20000, patchable=20000, fallback=fb)
        p = tmp_path / f"r{i}.json"
        p.write_text(json.dumps(d))
        reports.append(str(p))
    page = tmp_path / "trend.html"
    page.write_text(dashboard_from_files(reports))
    open_page(browser, page)
    assert console_errors(browser) == []
    lo, hi = js(browser, "var s = document.getElementById('trend-fallback');"
                         "return [+s.getAttribute('data-axis-min'), +s.getAttribute('data-axis-max')]")
    assert 900 <= lo <= 1000 < 1030 <= hi <= 1100, (lo, hi)
    ys = js(browser, "return Array.from(document.querySelectorAll("
                     "'#trend-fallback circle')).map(function (c) { return +c.getAttribute('cy'); })")
    # 3% apart is tens of pixels apart
    assert abs(ys[0] - ys[1]) > 40, ys


@pytest.mark.slow             # the whole corpus checked against a baseline, in a browser
def test_corpus_baselined_check_shows_new_findings_in_one_click(cli, corpus, tmp_path, browser):
    """Issue 21's must-show: the corpus dashboard of a baselined check lists the
    new findings alone after one click.  The baseline is the corpus without
    net/, so net/'s findings are new (crossing ones within chance: the check
    itself may pass)."""
    base = tmp_path / "base.json"
    scan_json(cli, base, *sorted(p for p in corpus.iterdir() if p.name != "net"))
    out = tmp_path / "check.json"
    r = cli("check", "--format", "json", "--baseline", base, "-o", out, corpus)
    assert r.rc in (0, 1), r.stderr
    doc = json.loads(out.read_text())
    new = [f for f in doc["findings"] if f["baseline_state"] == "new"]
    assert new and all("/net/" in f["object"] for f in new)
    assert len(new) < len(doc["findings"])
    page = tmp_path / "check.html"
    page.write_text(dashboard_from_files([str(out)]))
    open_page(browser, page)
    assert console_errors(browser) == []
    assert total(browser, "sites") == len(doc["findings"])
    from selenium.webdriver.common.by import By
    browser.find_element(By.ID, "sites-new").click()
    assert total(browser, "sites") == len(new)
