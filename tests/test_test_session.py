"""The test session itself (issue 22): it installs nothing, and a test whose
program is missing fails and names scripts/install-debian-deps (a CI run
must not go green by skipping what it could not run)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scall_testlib import ROOT

TESTS = ROOT / "tests"


def _session(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run pytest on one test file with the suite's conftest, on a PATH where
    dpkg reports every package missing and apt-get records that it ran."""
    fake = tmp_path / "bin"
    fake.mkdir()
    ran = tmp_path / "apt-ran"
    (fake / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (fake / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {ran}\n")
    (fake / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    (tmp_path / "test_inner.py").write_text(body)
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]))
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-c", os.devnull,
                        "--rootdir", str(tmp_path), "-q", str(tmp_path / "test_inner.py")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    return p, ran


def test_a_session_installs_no_package(tmp_path):
    p, ran = _session(tmp_path, "def test_nothing():\n    pass\n")
    assert p.returncode == 0, p.stdout + p.stderr
    assert not ran.exists(), f"the session ran apt-get {ran.read_text()}"


def test_a_missing_program_fails_and_names_the_install_script(tmp_path):
    p, _ran = _session(tmp_path, "import subprocess\n\n"
                       "def test_tool():\n"
                       "    subprocess.run(['scall-no-such-compiler', '--version'])\n")
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "1 failed" in out and "skipped" not in out, out
    assert "scall-no-such-compiler not installed: run scripts/install-debian-deps" in out, out
