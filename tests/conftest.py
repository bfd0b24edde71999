"""Shared fixtures: run the CLI, build objects from testdata sources, fetch
the objtool oracle and the Debian module corpus.  The helpers behind them
live in scall_testlib.py; import helpers from there, never from conftest."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scall_testlib import (ROOT, FetchError, build_source, fetch_debian, missing_tool_message,
                           run_cli)

# The Debian packages the tests use (compilers, qemu, chromium, kernel headers:
# scripts/debian-packages/*.txt) are installed by scripts/install-debian-deps,
# a step of .ci/run and of the README's setup, not of every test session.  A
# test whose program is missing fails and names that script (never a skip).


def pytest_report_header(config):
    r = subprocess.run(["bash", str(ROOT / "scripts" / "install-debian-deps"), "--check"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        return "debian packages: all installed"
    return (f"debian packages missing: {r.stdout.strip() or r.stderr.strip()} "
            "(tests that need them fail: run scripts/install-debian-deps)")


def _missing_program(e: FileNotFoundError) -> str | None:
    name = e.filename
    if isinstance(name, str) and name and "/" not in name and shutil.which(name) is None:
        return name
    return None


@pytest.hookimpl(wrapper=True)
def _fail_on_a_missing_program(item):
    """A test (its setup or its call) that runs a program the machine lacks
    fails with a message naming scripts/install-debian-deps."""
    try:
        return (yield)
    except FileNotFoundError as e:
        if (name := _missing_program(e)) is None:
            raise
        pytest.fail(missing_tool_message(name), pytrace=False)


pytest_runtest_setup = pytest_runtest_call = _fail_on_a_missing_program


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
