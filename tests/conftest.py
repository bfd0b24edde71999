"""Shared fixtures: run the CLI, build objects from testdata sources, fetch
the objtool oracle and the Debian module corpus.  The helpers behind them
live in scall_testlib.py; import helpers from there, never from conftest."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scall_testlib import ROOT, FetchError, build_source, fetch_debian, run_cli


def pytest_sessionstart(session):
    """The Debian packages the tests use (compilers, qemu, chromium, kernel
    headers: scripts/debian-packages/*.txt) are installed once, when missing,
    so that `python -m pytest` works on a fresh machine as .ci/run does."""
    r = subprocess.run(["bash", str(ROOT / "scripts" / "install-debian-deps")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise pytest.UsageError(f"scripts/install-debian-deps failed: {r.stderr.strip()}")


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def build(tmp_path):
    """build("name.S") or build("name.c", "-O2") -> path of a fresh object."""
    counter = [0]

    def _build(name: str, *flags: str, out: str | None = None) -> Path:
        counter[0] += 1
        stem = out or f"{Path(name).stem}-{counter[0]}.o"
        return build_source(name, tmp_path / stem, *flags)

    return _build


def _fetch(what: str) -> Path:
    try:
        return fetch_debian(what)
    except FetchError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def objtool() -> Path:
    """The objtool 6.1 binary from Debian's linux-kbuild-6.1 (the oracle).

    $SCALL_OBJTOOL overrides the path."""
    if os.environ.get("SCALL_OBJTOOL"):
        return Path(os.environ["SCALL_OBJTOOL"])
    return _fetch("objtool")


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The module tree of Debian's linux-image-6.1.0-50-cloud-amd64."""
    return _fetch("corpus")


@pytest.fixture(scope="session")
def vmlinux() -> Path:
    """Debian's 6.1 cloud vmlinux with debug info (from the -dbg package)."""
    return _fetch("vmlinux")
