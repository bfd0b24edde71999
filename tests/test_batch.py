"""Batches: directories, --include, ar archives, --jobs, the fast path, progress."""
from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys

import pytest

from scall_testlib import PREBUILT, run_cli

OBJS = sorted(PREBUILT.glob("*.o"))


@pytest.fixture
def tree(tmp_path):
    """A directory tree of objects, with files that --include must filter."""
    root = tmp_path / "tree"
    for i, obj in enumerate(OBJS):
        sub = root / f"d{i % 2}" / f"s{i}"
        sub.mkdir(parents=True)
        shutil.copyfile(obj, sub / obj.name)
        (sub / "notes.txt").write_text("not an object\n")
    return root


def test_directory_is_walked_in_sorted_order(tree):
    report = run_cli("scan", "--format", "json", tree).json()
    paths = [o["path"] for o in report["objects"]]
    assert len(paths) == len(OBJS)
    assert paths == sorted(paths)
    assert not any(p.endswith(".txt") for p in paths)


def test_include_filters_directory_files(tree):
    report = run_cli("scan", "--format", "json", "--include", "kinds*.o", tree).json()
    assert [os.path.basename(o["path"]) for o in report["objects"]] == ["kinds.o"]


def test_archive_members_are_scanned_not_written(tmp_path):
    lib = tmp_path / "libx.a"
    members = [PREBUILT / "kinds.o", PREBUILT / "demo.o"]
    subprocess.run(["ar", "rcs", str(lib), *map(str, members)], check=True)
    report = run_cli("scan", "--format", "json", lib).json()
    assert [o["path"] for o in report["objects"]] == [f"{lib}(kinds.o)", f"{lib}(demo.o)"]
    direct = run_cli("scan", "--format", "json", *members).json()
    for a, b in zip(report["objects"], direct["objects"]):
        assert a["sites"] == b["sites"] and a["references"] == b["references"]
    before = lib.read_bytes()
    res = run_cli("write", lib)
    assert res.rc == 2 and "archive members are scanned, not rewritten" in res.stderr
    assert lib.read_bytes() == before


def test_long_member_names_in_gnu_archives(tmp_path):
    long = tmp_path / "a_member_name_longer_than_sixteen_bytes.o"
    shutil.copyfile(PREBUILT / "kinds.o", long)
    lib = tmp_path / "liblong.a"
    subprocess.run(["ar", "rcs", str(lib), str(long)], check=True)
    report = run_cli("scan", "--format", "json", lib).json()
    assert report["objects"][0]["path"] == f"{lib}({long.name})"
    assert report["objects"][0]["summary"]["sites"] > 0


def test_corrupt_archive_is_one_error(tmp_path):
    lib = tmp_path / "bad.a"
    lib.write_bytes(b"!<arch>\n" + b"x" * 30)
    res = run_cli("scan", lib)
    assert res.rc == 2 and res.stderr.count("\n") == 1 and "archive" in res.stderr


@pytest.mark.parametrize("cmd", ["scan", "write"])
def test_jobs_2_output_is_identical_to_jobs_1(tree, tmp_path, cmd):
    outs = []
    for jobs in ("1", "2"):
        work = tmp_path / f"j{jobs}"
        shutil.copytree(tree, work)
        args = ["--format", "json"] if cmd == "scan" else []
        res = run_cli(cmd, "--jobs", jobs, "--policy", "kernel", *args, work,
                      env={"SCALL_OBJTOOL_NO_PROGRESS": "1"})
        assert res.rc == 0, res.stderr
        files = {p.relative_to(work): p.read_bytes() for p in sorted(work.rglob("*"))
                 if p.is_file()}
        outs.append((res.stdout.replace(str(work), "W"), res.stderr.replace(str(work), "W"),
                     files))
    assert outs[0] == outs[1]


CASES = [
    ["scan", "K"], ["scan", "--format", "json", "K"], ["scan", "-f", "json", "--policy=kernel",
                                                       "K", "D"],
    ["scan", "--allow-tail", "--assume-align", "64", "--cache-line", "32", "K"],
    ["scan", "--module", "--tramp-prefix", "__SCT__", "--key-prefix=__SCK__", "K"],
    ["scan", "--stats", "K", "D"], ["scan", "--stats", "--format", "json", "K"],
    ["scan", "--policy", "fast", "K"], ["scan", "--cache-line", "x", "K"], ["scan"],
    ["scan", "--bogus", "K"], ["scan", "--cache-line", "48", "K"], ["scan", "missing.o"],
    ["write", "K"], ["write", "--policy", "kernel", "--module", "K", "D"],
    ["write", "-q", "--force", "K"], ["write", "--dry-run", "K"],
    ["write", "-o", "out.o", "K"], ["write", "--strict-keys", "--policy", "kernel", "K"],
    ["write", "-o", "out.o", "K", "D"], ["write", "--", "K"],
]


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c) for c in CASES])
def test_fast_path_agrees_with_typer(case, tmp_path):
    results = []
    for mode in ("fast", "typer"):
        work = tmp_path / mode
        work.mkdir()
        shutil.copyfile(PREBUILT / "kinds.o", work / "K")
        shutil.copyfile(PREBUILT / "demo.o", work / "D")
        env = {"SCALL_OBJTOOL_NO_FASTPATH": "1"} if mode == "typer" else {}
        res = run_cli(*case, cwd=work, env=env)
        files = {p.name: p.read_bytes() for p in sorted(work.iterdir())}
        results.append((res.rc, res.stdout, res.stderr, files))
    fast, typer = results
    assert fast[0] == typer[0]
    assert fast[1] == typer[1]
    assert fast[2] == typer[2]
    assert fast[3] == typer[3]


def test_fast_path_skips_typer_and_decoder_for_objects_without_static_calls():
    code = ("import sys, runpy; sys.argv = ['scall-objtool', 'write', '-q', '--dry-run', "
            f"{str(PREBUILT / 'nostatic-O2.o')!r}]\n"
            "from scall_objtool.cli import main\n"
            "rc = main()\n"
            "print(rc, 'typer' in sys.modules, 'capstone' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["0", "False", "False"]


def test_progress_bar_only_on_a_terminal(tree):
    env = dict(os.environ)
    env.pop("SCALL_OBJTOOL_NO_PROGRESS", None)
    env["COLUMNS"] = "80"
    pid, fd = pty.fork()
    if pid == 0:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)     # stdout away; stderr is the tty
        os.execve(sys.executable, [sys.executable, "-m", "scall_objtool", "scan", "--jobs",
                                   "1", str(tree)], env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    tty_err = b"".join(chunks).decode(errors="replace")
    assert "objects" in tty_err and f"/{len(OBJS)}" in tty_err
    res = run_cli("scan", "--jobs", "1", tree)
    assert res.rc == 0 and res.stderr == ""


def test_a_quiet_write_sends_no_sites_back(tmp_path):
    """A quiet write shows only warnings and errors: a worker's outcome keeps
    its messages but not the object's sites (what a pool pickles back for
    each object: a few hundred bytes, not the sites)."""
    import pickle

    from scall_objtool.core import Options
    from scall_objtool.inputs import Input
    from scall_objtool.inputs.batch import write_one
    outs = {}
    for keep in (True, False):
        obj = tmp_path / f"{keep}.o"
        shutil.copy(PREBUILT / "kinds.o", obj)
        outs[keep] = write_one(Input(str(obj), str(obj)), Options(policy="kernel"), None,
                               False, True, False, keep)
    assert outs[True].ok and outs[False].ok
    assert outs[True].result.result.sites and outs[False].result is None
    assert outs[False].messages == outs[True].messages
    sent = {k: len(pickle.dumps(o)) for k, o in outs.items()}
    assert sent[False] * 5 < sent[True], sent
