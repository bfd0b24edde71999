"""`scall-objtool diff OLD.json NEW.json`: added, removed and changed sites,
matched as the baseline matches (not by offset); exit 1 exactly when NEW has
a fallback site OLD lacks, which is when `check NEW --baseline OLD` fails."""
from __future__ import annotations

import json

import pytest

from scall_testlib import run_cli


@pytest.fixture
def report(build, tmp_path):
    """report(name, *flags, policy=...) -> JSON report of a fresh lint.o build
    (always the same object path, as a rebuild in CI)."""
    n = [0]

    def make(src, *flags, policy="seed"):
        build(src, "-O2", "-g", *flags, out="lint.o")
        n[0] += 1
        out = tmp_path / f"r{n[0]}.json"
        res = run_cli("scan", "--format", "json", "--policy", policy, "-o", out,
                      tmp_path / "lint.o")
        assert res.rc == 0, res.stderr
        return out
    return make


def diff(old, new, *args):
    return run_cli("diff", *args, old, new)


def last(res) -> str:
    return res.stdout.splitlines()[-1]


def test_moved_code_is_no_change(report):
    old, new = report("lint.c"), report("lint_moved.c")
    res = diff(old, new)
    assert res.rc == 0, res.stdout
    assert res.stdout.splitlines() == [
        "summary: 0 added, 0 removed, 0 changed, 4 unchanged (4 moved); "
        "0 new fallback sites"]
    doc = json.loads(diff(old, new, "--format", "json").stdout)
    assert doc["summary"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 4,
                              "moved": 4, "new_fallback": 0}
    same = diff(old, old)
    assert same.rc == 0 and "4 unchanged (0 moved)" in last(same)


def test_added_and_removed(report):
    old, new = report("lint.c"), report("lint.c", "-DLINT_EXTRA")
    res = diff(old, new)
    assert res.rc == 1
    (added,) = [x for x in res.stdout.splitlines() if x.startswith("added")]
    assert "lint_extra+0x3: tail __SCT__lint_hook: fallback: tail-call" in added
    assert added.endswith("lint.c:37)  [new fallback]")
    assert last(res) == ("summary: 1 added, 0 removed, 0 changed, 4 unchanged (0 moved); "
                         "1 new fallback site")
    back = diff(new, old)
    assert back.rc == 0
    assert [x.split()[0] for x in back.stdout.splitlines()] == ["removed", "summary:"]
    doc = json.loads(diff(old, new, "--format", "json").stdout)
    assert [(s["function"], s["reason"], s["source"]["line"]) for s in doc["added"]] == [
        ("lint_extra", "tail-call", 37)]
    assert doc["removed"] == [] and doc["changed"] == []
    assert doc["summary"]["new_fallback"] == 1


def test_changed_verdict(report):
    """The same site, patchable under one policy and fallback under the other."""
    kernel, seed = report("lint.c", policy="kernel"), report("lint.c")
    res = diff(kernel, seed)
    assert res.rc == 1
    assert "different options" in res.stderr      # the policies differ: a warning
    (changed,) = [x for x in res.stdout.splitlines() if x.startswith("changed")]
    assert "lint_forward+0x3: tail __SCT__lint_hook: patchable -> fallback: tail-call" \
        in changed and changed.endswith("[new fallback]")
    assert "0 added, 0 removed, 1 changed, 3 unchanged" in last(res)
    res = diff(seed, kernel)
    assert res.rc == 0 and "1 changed" in last(res) and "[new fallback]" not in res.stdout
    doc = json.loads(diff(kernel, seed, "--format", "json").stdout)
    (ch,) = doc["changed"]
    assert (ch["old"]["patchable"], ch["new"]["patchable"], ch["new"]["reason"]) == (
        True, False, "tail-call")


def test_diff_agrees_with_check_baseline(report, tmp_path):
    scenarios = [(("lint.c",), ("lint_moved.c",)),
                 (("lint.c",), ("lint.c", "-DLINT_EXTRA")),
                 (("lint.c", "-DLINT_EXTRA"), ("lint_moved.c",)),
                 (("lint_moved.c",), ("lint.c", "-DLINT_EXTRA"))]
    for a, b in scenarios:
        old = report(*a)
        new = report(*b)            # lint.o is now what NEW describes
        d = diff(old, new).rc
        c = run_cli("check", "--baseline", old, tmp_path / "lint.o").rc
        assert d == c, (a, b, d, c)
    assert d == 1


def test_errors(report, tmp_path):
    good = report("lint.c")
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    res = diff(good, bad)
    assert res.rc == 2 and "bad.json: not a JSON report" in res.stderr
    res = diff(tmp_path / "none.json", good)
    assert res.rc == 2 and "none.json: cannot open" in res.stderr
    broken = json.loads(good.read_text())
    broken["objects"][0]["sites"][0]["kind"] = "teleport"
    bad.write_text(json.dumps(broken))
    res = diff(good, bad)
    assert res.rc == 2 and "objects[0].sites[0]" in res.stderr
    out = tmp_path / "d.json"
    res = run_cli("diff", "--format", "json", "-o", out, good, good)
    assert res.rc == 0 and res.stdout == "" and json.loads(out.read_text())["summary"][
        "unchanged"] == 4


# ------------------------------------------ across trees and releases (#21)
def _tree(root, objects: dict):
    import shutil
    from scall_testlib import PREBUILT
    for rel, name in objects.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PREBUILT / name, root / rel)
    return root


def test_two_trees_match_below_their_common_roots(tmp_path):
    """6.1 against 6.12, or two build trees: the same objects under different
    directories.  Nothing matches by path; diff matches on the paths below each
    report's common directory and says so, or as --old-root/--new-root say."""
    _tree(tmp_path / "v1" / "kernel", {"a/x.o": "demo.o", "b/y.o": "kinds.o"})
    _tree(tmp_path / "build" / "v2" / "kernel", {"a/x.o": "demo.o", "b/y.o": "kinds.o"})
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert run_cli("scan", "--format", "json", "-o", old, "./v1/./kernel",
                   cwd=tmp_path).rc == 0
    assert run_cli("scan", "--format", "json", "-o", new, "build/v2/kernel",
                   cwd=tmp_path).rc == 0
    res = run_cli("diff", old, new, cwd=tmp_path)
    assert res.rc == 0, res.stdout + res.stderr
    assert "0 added, 0 removed, 0 changed" in last(res)
    assert "matched on the paths below" in res.stderr and "v1/kernel (OLD)" in res.stderr
    res = run_cli("diff", "--old-root", "v1", "--new-root", "build/v2", old, new, cwd=tmp_path)
    assert res.rc == 0 and res.stderr == "" and "0 added, 0 removed" in last(res)
    # roots that leave nothing in common: a warning, every site added or removed
    res = run_cli("diff", "--old-root", "v1/kernel/a", "--new-root", "build", old, new,
                  cwd=tmp_path)
    assert "no site of OLD matches one of NEW" in res.stderr
    assert " 0 unchanged" in last(res)
    assert run_cli("diff", "--old-root", "nowhere", old, new, cwd=tmp_path).rc == 2


def test_paths_are_shown_normalised(tmp_path):
    _tree(tmp_path / "t", {"k/x.o": "demo.o"})
    _tree(tmp_path / "u", {"k/x.o": "kinds.o"})
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    run_cli("scan", "--format", "json", "-o", old, "./t/./k", cwd=tmp_path)
    run_cli("scan", "--format", "json", "-o", new, "u/./k/", cwd=tmp_path)
    res = run_cli("diff", "--old-root", "t", "--new-root", "u", old, new, cwd=tmp_path)
    assert "/./" not in res.stdout and "removed  t/k/x.o: demo_" in res.stdout, res.stdout
    doc = json.loads(run_cli("diff", "--format", "json", old, new, cwd=tmp_path).stdout)
    assert all("/./" not in s["object"] for s in doc["added"] + doc["removed"])


def test_a_compressed_module_is_the_module():
    from scall_objtool.report.findings import object_key
    assert object_key("/r/drivers/x.ko.xz", "/r") == object_key("/r/drivers/x.ko", "/r") == \
        "drivers/x.ko"
