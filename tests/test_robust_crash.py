"""Crash safety: nothing lost, ever.

* SIGKILL: `write` runs over 26 stripped 6.1 corpus modules (19 MB, kvm.ko,
  btrfs.ko, xfs.ko among them) and is killed at many points spread over the
  duration of an uninterrupted run.  After each kill every module is either
  byte-identical to the original or to the output of the uninterrupted run
  (never a mix), written ones keep their mode; temporaries may exist right
  after the kill, but a following complete run writes the rest and leaves
  none.  Once with --jobs 1 and once with --jobs 2 (both marked slow); the
  everyday run kills a --jobs 2 run at 4 points.
* Injected failures (ENOSPC/EIO from write, fsync, chmod, rename) make
  write_path raise an InputError, leave the input byte-identical and leave
  no temporary file -- in place, with -o, when -o only copies, with --backup.
* Two `write` processes on the same object: both exit 0, one valid result.

SCALL_KILL_POINTS sets the number of kill points (default 24 with --jobs 1,
half that with --jobs 2).
"""
from __future__ import annotations

import errno
import glob
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import robust_harness as H
from scall_testlib import PREBUILT, ROOT, run_cli, write_lib

KILL_POINTS = int(os.environ.get("SCALL_KILL_POINTS", "24"))
PR_SET_CHILD_SUBREAPER = 36


def _subreaper(on: bool) -> bool:
    """Make this process the reaper of orphaned descendants (Linux), so that
    pool workers of a killed run are reaped here and do not linger as zombies
    (which look alive to the stale-temporary check) until init gets to them."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


MODE = 0o640
WRITE_ARGS = ["write", "-q", "--policy", "kernel", "--module"]


def _env() -> dict:
    env = dict(os.environ, SCALL_OBJTOOL_NO_PROGRESS="1")
    env.pop("SCALL_OBJTOOL_DEBUG", None)
    env.pop("SRCARCH", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _corpus_modules_with_tables(corpus: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(corpus):
        dirs.sort()
        for f in sorted(files):
            p = Path(root) / f
            if f.endswith(".ko") and b".static_call_sites" in p.read_bytes():
                found.append((p.stat().st_size, str(p)))
    found.sort()
    # every 10th by size (about 22) and the 4 largest (mlx5_core, cifs, btrfs, xfs)
    picked = found[::10] + found[-4:]
    return [Path(p) for _s, p in dict.fromkeys(picked)]


@pytest.fixture(scope="module")
def kill_set(corpus, tmp_path_factory):
    """(originals {name: bytes}, references {name: bytes}, duration of a run)."""
    base = tmp_path_factory.mktemp("killset")
    orig_dir = base / "orig"
    orig_dir.mkdir()
    for p in _corpus_modules_with_tables(corpus):
        H.strip_table(str(p), str(orig_dir / str(p.relative_to(corpus)).replace("/", "_")))
    assert (orig_dir / "arch_x86_kvm_kvm.ko").exists() or len(list(orig_dir.iterdir())) >= 20
    origs = {p.name: p.read_bytes() for p in sorted(orig_dir.iterdir())}
    ref = base / "ref"
    _restore(ref, origs)
    durations = []
    for _ in range(2):
        _restore(ref, origs)
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "scall_objtool", *WRITE_ARGS, "--jobs", "1",
                            *sorted(map(str, ref.iterdir()))], env=_env(), capture_output=True,
                           text=True, timeout=300)
        durations.append(time.monotonic() - t0)
        assert p.returncode == 0, p.stderr
    refs = {name: (ref / name).read_bytes() for name in origs}
    for name in origs:
        assert refs[name] != origs[name], f"{name}: the reference run wrote nothing"
        assert stat.S_IMODE((ref / name).stat().st_mode) == MODE
    return origs, refs, min(durations)


def _restore(d: Path, origs: dict) -> None:
    d.mkdir(exist_ok=True)
    for p in d.iterdir():
        p.unlink()
    for name, data in origs.items():
        (d / name).write_bytes(data)
        os.chmod(d / name, MODE)


def _temporaries(d: Path) -> list[str]:
    return sorted(glob.glob(str(d / H.TEMP_GLOB)))


def _group(pgid: int, zombies: bool = False) -> list[int]:
    """Processes in process group ``pgid`` (those our run started); zombies
    only when asked for."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and (zombies or fields[0] != "Z"):
            out.append(int(entry))
    return out


def _kill_run(work: Path, origs: dict, refs: dict, duration: float, jobs: int, label: str,
              capsys, points: int | None = None):
    counts = {"kill points": 0, "killed mid-run": 0, "finished before the kill": 0,
              "runs with partial progress": 0, "files original": 0, "files new": 0,
              "files mixed": 0, "mode lost": 0, "temporaries after kill": 0,
              "temporaries after rerun": 0, "orphans killed": 0}
    problems = []
    n = points or (KILL_POINTS if jobs == 1 else max(1, KILL_POINTS // 2))
    for k in range(n):
        _restore(work, origs)
        delay = duration * (k + 0.5) / n
        p = subprocess.Popen([sys.executable, "-m", "scall_objtool", *WRITE_ARGS, "--jobs",
                              str(jobs), *[str(work / name) for name in sorted(origs)]], env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
        time.sleep(delay)
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        p.stderr.close()
        counts["kill points"] += 1
        if p.returncode == -signal.SIGKILL:
            counts["killed mid-run"] += 1
        else:
            counts["finished before the kill"] += 1
        # a crash takes the whole run down: end what the run started, should
        # a pool worker still be alive (test_pool_workers_do_not_outlive_...)
        for pid in _group(p.pid):
            counts["orphans killed"] += 1
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # reap them (ours, as the subreaper), and the workers that exited on
        # their own: an unreaped zombie looks alive to the stale-temporary check
        for pid in _group(p.pid, zombies=True):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        deadline = time.monotonic() + 10
        while _group(p.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        state = {"original": 0, "new": 0}
        for name in origs:
            data = (work / name).read_bytes()
            if data == origs[name]:
                state["original"] += 1
            elif data == refs[name]:
                state["new"] += 1
                if stat.S_IMODE((work / name).stat().st_mode) != MODE:
                    counts["mode lost"] += 1
                    problems.append(f"kill {k}: {name} lost its mode")
            else:
                counts["files mixed"] += 1
                problems.append(f"kill {k} (after {delay:.3f} s): {name} is neither the "
                                f"original nor the complete new object ({len(data)} bytes)")
        counts["files original"] += state["original"]
        counts["files new"] += state["new"]
        if state["original"] and state["new"]:
            counts["runs with partial progress"] += 1
        counts["temporaries after kill"] += len(_temporaries(work))
        # a complete run afterwards: everything written, nothing left behind
        r = subprocess.run([sys.executable, "-m", "scall_objtool", *WRITE_ARGS, "--jobs",
                            str(jobs), *[str(work / name) for name in sorted(origs)]], env=_env(),
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            problems.append(f"kill {k}: the rerun failed: {r.stderr}")
        for name in origs:
            if (work / name).read_bytes() != refs[name]:
                problems.append(f"kill {k}: after the rerun {name} differs from the reference")
        left = _temporaries(work)
        counts["temporaries after rerun"] += len(left)
        if left:
            problems.append(f"kill {k}: temporaries left after the rerun: {left}")
    summary = f"{label}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    with capsys.disabled():
        print(f"\n{summary}")
    return counts, problems, summary


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_sigkill_during_write(kill_set, tmp_path, capsys, jobs):
    _sigkill_sweep(kill_set, tmp_path, capsys, jobs)


def test_sigkill_during_write_sample(kill_set, tmp_path, capsys):
    """The everyday run's sample of the sweep above: 4 kill points, --jobs 2,
    the same checks except that a kill must land while files are being
    written (with 4 points, on a loaded machine, it may not)."""
    _sigkill_sweep(kill_set, tmp_path, capsys, 2, points=4)


def _sigkill_sweep(kill_set, tmp_path, capsys, jobs: int, points: int | None = None):
    origs, refs, duration = kill_set
    reaper = _subreaper(True)
    try:
        counts, problems, summary = _kill_run(
            tmp_path / "work", origs, refs, duration, jobs,
            f"SIGKILL write --jobs {jobs} ({len(origs)} modules, run {duration:.2f} s)", capsys,
            points)
    finally:
        if reaper:
            _subreaper(False)
    assert not problems, summary + "\n" + "\n".join(problems[:20])
    assert counts["files mixed"] == 0 and counts["temporaries after rerun"] == 0, summary
    # the kill points really landed inside runs, some in the middle of the writes
    # (the points are fractions of a run timed once: a load that changes
    # between that run and these may move all but the first past the end)
    assert counts["killed mid-run"] >= (1 if points else counts["kill points"] // 2), summary
    if points is None:
        assert counts["runs with partial progress"] >= 1, summary


def test_pool_workers_do_not_outlive_a_killed_parent(kill_set, tmp_path):
    """SIGKILL of `write --jobs 2`: its pool workers exit on their own (they
    used to be orphaned, blocked on the call queue, and to keep renaming
    files after the parent died)."""
    origs, _refs, duration = kill_set
    work = tmp_path / "work"
    _restore(work, origs)
    p = subprocess.Popen([sys.executable, "-m", "scall_objtool", *WRITE_ARGS, "--jobs", "2",
                          *[str(work / name) for name in sorted(origs)]], env=_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    time.sleep(duration * 0.6)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 120       # a hang guard: they exit within a second idle
    while _group(p.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = _group(p.pid)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"pool workers still alive 120 s after the parent was killed: {survivors}"


# --------------------------------------------------------------- concurrency
@pytest.mark.parametrize("module", ["arch/x86/kvm/kvm.ko", H.CORPUS_MODULE])
def test_two_writers_on_one_object(corpus, tmp_path, module, capsys):
    """Two `write` processes started together on one object, six times: one
    exits 0; the other too (it may only warn that the table exists), or 2 when
    the first replaced the file after it was read (lost update); the result is
    the reference output, its mode is kept, nothing is left beside it."""
    src = tmp_path / "stripped.ko"
    H.strip_table(str(corpus / module), str(src))
    ref = tmp_path / "ref.ko"
    shutil.copy(src, ref)
    assert run_cli(*WRITE_ARGS, ref).rc == 0
    reference = ref.read_bytes()
    work = tmp_path / "w"
    work.mkdir()
    target = work / "obj.ko"
    outcomes = []
    for rep in range(6):
        shutil.copy(src, target)
        os.chmod(target, MODE)
        procs = [subprocess.Popen([sys.executable, "-m", "scall_objtool", *WRITE_ARGS,
                                   str(target)], env=_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        res = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            res.append((p.returncode, out, err))
        for rc, _out, err in res:
            lines = err.splitlines()
            if rc == 2:         # the other one replaced it after this one read it
                assert len(lines) == 1 and "changed on disk" in err, err
                continue
            assert rc == 0, f"repetition {rep}: exit {rc}: {err}"
            assert all(ln.startswith("scall-objtool: warning: ") and "already has" in ln
                       for ln in lines), err
        assert any(rc == 0 for rc, _o, _e in res), res
        outcomes.append(sum(bool(err) for _rc, _o, err in res))
        assert target.read_bytes() == reference, f"repetition {rep}: not the reference output"
        assert stat.S_IMODE(target.stat().st_mode) == MODE
        assert sorted(x.name for x in work.iterdir()) == ["obj.ko"], list(work.iterdir())
    # outcomes: how many of the two found the table already written or the
    # file changed (0: both wrote it, the second after the first's rename)
    with capsys.disabled():
        print(f"\ntwo writers on {module}: 6 runs, both wrote the table in "
              f"{outcomes.count(0)}, one skipped it in {outcomes.count(1)}; all results "
              "identical to the reference")
    assert len(outcomes) == 6


# ------------------------------------------------------ injected I/O failures
def _inject(monkeypatch, target: str, err: int):
    """Make the `target` step of atomic_write fail with errno `err`."""
    def boom(*_a, **_k):
        raise OSError(err, os.strerror(err))
    from scall_objtool.inputs import fileio
    if target == "write":
        real_fdopen = os.fdopen

        class Failing:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()
                return False

            def write(self, data):
                self.f.write(data[:len(data) // 2])       # a partial write, then ENOSPC
                raise OSError(err, os.strerror(err))

            def __getattr__(self, name):
                return getattr(self.f, name)

        monkeypatch.setattr(fileio.os, "fdopen", lambda *a, **k: Failing(real_fdopen(*a, **k)))
        real_pwrite = os.pwrite

        def pwrite(fd, data, offset):           # through the inode: half, then ENOSPC
            real_pwrite(fd, bytes(data[:len(data) // 2]), offset)
            raise OSError(err, os.strerror(err))
        monkeypatch.setattr(fileio.os, "pwrite", pwrite)
    elif target == "mkstemp":                   # creating the temporary
        monkeypatch.setattr(fileio, "create_temporary", boom)
    else:
        monkeypatch.setattr(fileio.os, target, boom)


SCENARIOS = ["in-place", "output", "output-copy", "backup", "hard-link"]
FAILURES = [("write", errno.ENOSPC), ("fsync", errno.EIO), ("chmod", errno.EPERM),
            ("replace", errno.EXDEV), ("mkstemp", errno.EACCES)]


@pytest.mark.parametrize("scenario,target,err", [
    (s, t, e) for s in SCENARIOS for t, e in FAILURES
    # a hard-linked file is written through its inode: pwrite and fsync, no temporary
    if s != "hard-link" or t in ("write", "fsync")])
def test_failed_write_leaves_the_input_intact(tmp_path, monkeypatch, scenario, target, err):
    from scall_objtool.errors import ScallError
    from scall_objtool.core import Options
    from scall_objtool.table.write import write_path
    src = "nostatic-O2.o" if scenario == "output-copy" else "kinds.o"
    obj = tmp_path / "obj.o"
    shutil.copy(PREBUILT / src, obj)
    os.chmod(obj, MODE)
    if scenario == "hard-link":     # a failed append must be truncated back (issue 23 item 3)
        os.link(obj, tmp_path / "obj.o.link")
    before = obj.read_bytes()
    kw = {}
    if scenario.startswith("output"):
        kw["output"] = str(tmp_path / "out.o")
    if scenario == "backup":
        kw["backup"] = True
    _inject(monkeypatch, target, err)
    with pytest.raises(ScallError) as info:
        write_path(str(obj), Options(), **kw)
    monkeypatch.undo()
    assert "\n" not in str(info.value)
    assert obj.read_bytes() == before, "a failed write changed the input"
    assert obj.stat().st_size == len(before)
    assert stat.S_IMODE(obj.stat().st_mode) == MODE
    left = sorted(x.name for x in tmp_path.iterdir() if x.name not in ("obj.o", "obj.o.link"))
    assert left == [], f"left behind: {left}"


def test_failed_write_cli_one_line(tmp_path):
    """Through the CLI: an unwritable -o target is one error line, exit 2."""
    obj = tmp_path / "k.o"
    shutil.copy(PREBUILT / "kinds.o", obj)
    res = run_cli("write", "-o", tmp_path / "missing" / "out.o", obj)
    assert res.rc == 2
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"scall-objtool: error: {obj}: "), lines
    assert "internal error" not in res.stderr
    assert obj.read_bytes() == (PREBUILT / "kinds.o").read_bytes()


def test_copy_to_missing_directory_is_one_error_line(tmp_path):
    """-o on an object without sites only copies it; failing that is an
    InputError too (it used to be 'internal error: FileNotFoundError')."""
    res = run_cli("write", "-o", tmp_path / "missing" / "out.o", PREBUILT / "nostatic-O2.o")
    assert res.rc == 2 and "internal error" not in res.stderr, res.stderr


def test_backup_onto_directory_is_one_error_line(tmp_path):
    """FILE.orig cannot be written (it is a directory): one error line, the
    input untouched (it used to be 'internal error: IsADirectoryError')."""
    obj = tmp_path / "k.o"
    shutil.copy(PREBUILT / "kinds.o", obj)
    (tmp_path / "k.o.orig").mkdir()
    res = run_cli("write", "--backup", obj)
    assert res.rc == 2 and "internal error" not in res.stderr, res.stderr
    assert obj.read_bytes() == (PREBUILT / "kinds.o").read_bytes()


# ------------------------------------------------------------ mode, leftovers
@pytest.mark.parametrize("mode", [0o600, 0o644, 0o751, 0o444])
def test_write_keeps_the_mode(tmp_path, mode):
    obj = tmp_path / "k.o"
    shutil.copy(PREBUILT / "kinds.o", obj)
    os.chmod(obj, mode)
    write_lib("--backup", obj)
    assert obj.read_bytes() != (PREBUILT / "kinds.o").read_bytes()
    assert stat.S_IMODE(obj.stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "k.o.orig").stat().st_mode) == mode
    assert (tmp_path / "k.o.orig").read_bytes() == (PREBUILT / "kinds.o").read_bytes()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("args", [["write"], ["write", "--backup"]])
def test_stale_temporaries_are_removed_by_the_next_write(tmp_path, args):
    """Left by a run killed while writing k.o, or k.o.orig (--backup)."""
    obj = tmp_path / "k.o"
    shutil.copy(PREBUILT / "kinds.o", obj)
    stale = [tmp_path / f".k.o.{_dead_pid()}-abcdefgh.scall-tmp",
             tmp_path / f".k.o.orig.{_dead_pid()}-ijklmnop.scall-tmp"]
    for s in stale:
        s.write_bytes(b"half an object")
    write_lib(*args[1:], obj)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["k.o", "k.o.orig"][:len(args)]


def test_live_writers_temporary_is_kept(tmp_path):
    """A temporary whose writer is alive belongs to a concurrent run."""
    obj = tmp_path / "k.o"
    shutil.copy(PREBUILT / "kinds.o", obj)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".k.o.{sleeper.pid}-abcdefgh.scall-tmp"
        live.write_bytes(b"in progress")
        write_lib(obj)
        assert live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_temporary_beside_a_skipped_object_is_removed(tmp_path):
    """Left by a killed `write --force`; the next plain write skips the
    object (its table exists) but still removes the temporary."""
    obj = tmp_path / "k.o"
    shutil.copy(PREBUILT / "kinds.o", obj)
    write_lib(obj)         # has a table now; the next write skips it
    stale = tmp_path / f".k.o.{_dead_pid()}-abcdefgh.scall-tmp"
    stale.write_bytes(b"half an object")
    # the next run: a new process (a process lists each directory once)
    assert run_cli("write", "-q", obj).rc == 0
    assert not stale.exists(), sorted(x.name for x in tmp_path.iterdir())
