"""Hostile trees: a directory walk stays in its tree, reads each file once,
goes any depth, and never hangs (issue 23 items 1, 14, 16).

``robust_harness.hostile_tree`` builds a tree with symlinks out of it
(relative, absolute, chained through a link inside, with a hostile name, to
a directory, up to the parent, to /dev/zero), a symlink and a hard link to
one of its objects, a link loop, a dangling link, a FIFO named like an
object, and an object 1,200 directories down.  Every command runs over it,
``--jobs 1`` and ``2``: the files outside stay byte-identical (mtime and
mode too), each link out is one warning naming it (escaped) and a count in
the summary, each object is read and written once, nothing is left behind,
no traceback, no hang.
"""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

import robust_harness as H
from scall_testlib import PREBUILT, read_table, run_cli

OBJ = (PREBUILT / "kinds.o").read_bytes()
OTHER = (PREBUILT / "staticcall-O2.o").read_bytes()


@pytest.fixture
def hostile(tmp_path) -> dict:
    yield H.hostile_tree(str(tmp_path), OBJ, OTHER)
    H.remove_tree(str(tmp_path / "tree"))       # pytest's own cleanup recurses


def _stamps(paths) -> dict:
    out = {}
    for p in paths:
        st = os.stat(p)
        out[p] = (Path(p).read_bytes(), st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


def _leftovers(top: str) -> list[str]:
    """Temporaries or backups anywhere below ``top`` (find copes with any depth)."""
    r = subprocess.run(["find", top, "(", "-name", ".scall-*", "-o", "-name", "*.orig", ")"],
                       capture_output=True, text=True, check=True)
    return r.stdout.split()


def _clean_stderr(err: str, allowed=("warning",)) -> list[str]:
    lines = err.splitlines()
    assert "Traceback" not in err, err
    for ln in lines:
        assert ln.isprintable() and any(ln.startswith(f"scall-objtool: {k}: ")
                                        for k in allowed), repr(ln)
    return lines


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_commands_over_a_hostile_tree(hostile, jobs):
    top, victims = hostile["tree"], hostile["outside"]
    before = _stamps(victims)
    n_out, n_dup = hostile["links_out"], hostile["duplicates"]
    skipped = {"outside": n_out, "duplicate": n_dup}
    objects = len(hostile["inside"])

    r = run_cli("scan", "--jobs", jobs, "-f", "json", top, timeout=300)
    assert r.rc == 0, r.stderr
    lines = _clean_stderr(r.stderr)
    assert len(lines) == n_out and all("a symlink out of the directory walked" in ln
                                       for ln in lines), lines
    assert any("bad\\n\\x1b[2Jname.o" in ln for ln in lines), lines
    doc = r.json()
    assert doc["summary"]["skipped"] == skipped and doc["summary"]["objects"] == objects
    assert sorted(os.path.relpath(o["path"], top) for o in doc["objects"]) \
        == sorted(hostile["inside"])

    r = run_cli("check", "--jobs", jobs, "--max-fallback", "999", top, timeout=300)
    assert r.rc == 0, r.stderr
    assert len(_clean_stderr(r.stderr)) == n_out
    assert f"{n_out} symlinks out of the tree, {n_dup} duplicates" in r.stdout, r.stdout

    for args in (["write", "--backup"], ["write", "--force", "--backup"]):
        r = run_cli(*args, "--jobs", jobs, top, timeout=300)
        assert r.rc == 0, r.stderr
        lines = _clean_stderr(r.stderr)
        assert sum("out of the directory walked" in ln for ln in lines) == n_out, lines
        assert sum("the same file as" in ln for ln in lines) == n_dup, lines
        assert r.stdout.count(": wrote ") + r.stdout.count(": unchanged") == objects
        assert _stamps(victims) == before, args
    for name in hostile["inside"]:
        assert read_table(Path(top) / name), name
    backups = _leftovers(top)
    assert sorted(os.path.relpath(b, top) for b in backups) \
        == sorted(f"{n}.orig" for n in hostile["inside"]), backups

    r = run_cli("verify", "--jobs", jobs, "-f", "json", top, timeout=300)
    assert r.rc == 0 and len(_clean_stderr(r.stderr)) == n_out, r.stderr
    assert r.json()["summary"]["skipped"] == skipped
    assert _stamps(victims) == before
    assert all(not os.path.exists(v + ".orig") for v in victims)
