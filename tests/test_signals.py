"""Ctrl-C and SIGTERM during a batch: a clean stop, nothing damaged (issue 10, item 11).

A batch ``write`` over 300 small objects is interrupted with SIGINT or SIGTERM,
sent to the whole process group (as a terminal or a job controller does) or to
the main process only, at several moments, with ``--jobs 1`` and ``--jobs 2``.
Each signal is sent once the tool has installed its handlers (it reports so
in the file that ``SCALL_OBJTOOL_READY_FILE`` names), never while the
interpreter is still starting.  Each run must exit 130/143 (the timeouts
below only catch a hang), print exactly one line on stderr and no traceback, leave no temporary or other new file, and
leave every object either byte-identical to its original or identical to the
complete object that an uninterrupted ``write`` produces.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["kinds.S", "crossing.S"]
COUNT = 1500         # a batch of a few seconds: the signal lands mid-batch


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SCALL_OBJTOOL_DEBUG", None)
    env["SCALL_OBJTOOL_NO_PROGRESS"] = "1"
    return env


HANG = 120           # seconds: only a hung run takes this long, however busy the machine


def _start(args, ready: Path) -> subprocess.Popen:
    """Start the tool in its own process group and return once it has
    installed its signal handlers."""
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(args, env=dict(_env(), SCALL_OBJTOOL_READY_FILE=str(ready)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + HANG
    while not (ready.exists() and ready.read_bytes().endswith(b"\n")):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"the tool never reported its handlers installed: {err!r}")
        time.sleep(0.01)
    assert int(ready.read_text()) == proc.pid
    return proc


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """{name: (original bytes, written bytes)} for COUNT objects built from testdata."""
    base = tmp_path_factory.mktemp("sig-src")
    pairs = []
    for src in SOURCES:
        obj = base / (Path(src).stem + ".o")
        subprocess.run(["gcc", "-c", "-o", str(obj), str(REPO / "testdata" / "src" / src)],
                       check=True, capture_output=True)
        ref = base / (Path(src).stem + ".ref.o")
        r = subprocess.run([sys.executable, "-m", "scall_objtool", "write", "-q",
                            "-o", str(ref), str(obj)], env=_env(), capture_output=True)
        assert r.returncode == 0, r.stderr
        assert ref.read_bytes() != obj.read_bytes()
        pairs.append((obj.read_bytes(), ref.read_bytes()))
    return {f"m{i:03d}.o": pairs[i % len(pairs)] for i in range(COUNT)}


def _interrupt(tmp_path, objects, sig, group, jobs, delay):
    work = tmp_path / "objs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for name, (orig, _) in objects.items():
        (work / name).write_bytes(orig)
    proc = _start([sys.executable, "-m", "scall_objtool", "write", "-q",
                   "--jobs", str(jobs), str(work)], tmp_path / "ready")
    time.sleep(delay)
    if proc.poll() is None:
        (os.killpg if group else os.kill)(proc.pid, sig)
    try:
        out, err = proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{sig.name} (group={group}, jobs={jobs}) did not stop the batch")
    # no worker may outlive the main process (a worker stops at its next
    # object: given until the hang guard, it is a worker left behind)
    deadline = time.monotonic() + HANG
    try:
        while time.monotonic() < deadline:
            os.killpg(proc.pid, 0)
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("a worker process is still alive after the main process exited")
    except ProcessLookupError:
        pass
    err_text = err.decode(errors="replace")
    what = f"{sig.name} group={group} jobs={jobs} at {delay}s"
    assert proc.returncode == 128 + sig, (what, proc.returncode, err_text)
    assert "Traceback" not in err_text, (what, err_text)
    assert err_text.count("\n") == 1 and "interrupted" in err_text, (what, err_text)
    assert sorted(os.listdir(work)) == sorted(objects), what    # no temporary, nothing new
    written = 0
    for name, (orig, ref) in objects.items():
        data = (work / name).read_bytes()
        assert data in (orig, ref), (what, name, "neither the original nor the written object")
        written += data == ref
    assert written < len(objects), (what, "the signal came after the batch had finished")
    return written


CASES_FAST = [(signal.SIGINT, True, 1, 0.5), (signal.SIGINT, True, 2, 0.5),
              (signal.SIGTERM, False, 2, 0.5), (signal.SIGTERM, True, 1, 0.5)]


@pytest.mark.parametrize("sig,group,jobs,delay", CASES_FAST,
                         ids=[f"{s.name}-{'group' if g else 'main'}-j{j}"
                              for s, g, j, _ in CASES_FAST])
def test_interrupted_batch_write_stops_cleanly(tmp_path, objects, sig, group, jobs, delay):
    _interrupt(tmp_path, objects, sig, group, jobs, delay)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.2, 0.5, 1.0])
@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("group", [True, False], ids=["group", "main"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_interrupt_matrix(tmp_path, objects, sig, group, jobs, delay):
    _interrupt(tmp_path, objects, sig, group, jobs, delay)


@pytest.mark.parametrize("command", ["scan", "verify", "check"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_read_only_commands_stop_cleanly(tmp_path, objects, command, sig):
    work = tmp_path / "objs"
    work.mkdir()
    for name, (orig, ref) in list(objects.items()):
        (work / name).write_bytes(ref)
    args = [sys.executable, "-m", "scall_objtool", command, "--jobs", "2", str(work)]
    for _ in range(3):                         # keep the run long enough to interrupt
        args.append(str(work))
    proc = _start(args, tmp_path / "ready")
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=HANG)
    text = err.decode(errors="replace")
    assert proc.returncode == 128 + sig, (proc.returncode, text)
    assert "Traceback" not in text
    assert text.count("\n") == 1, text
    assert sorted(os.listdir(work)) == sorted(objects)
