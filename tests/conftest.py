"""Shared fixtures: run the CLI, build objects from testdata sources, fetch
the objtool oracle and the Debian module corpus."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"
SRC = TESTDATA / "src"
PREBUILT = TESTDATA / "prebuilt"


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_cli(*args, cwd=None, env=None, timeout=120) -> Result:
    """Run `python -m scall_objtool ARGS` and capture everything."""
    full_env = dict(os.environ)
    full_env.pop("SRCARCH", None)
    if env:
        full_env.update(env)
    p = subprocess.run([sys.executable, "-m", "scall_objtool", *map(str, args)],
                       capture_output=True, text=True, cwd=cwd, env=full_env,
                       timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def cli():
    return run_cli


def assemble(src: Path, out: Path, *flags: str) -> Path:
    subprocess.run(["as", "--64", *flags, "-o", str(out), str(src)], check=True,
                   capture_output=True, text=True)
    return out


def compile_c(src: Path, out: Path, *flags: str) -> Path:
    subprocess.run(["gcc", "-c", *flags, "-o", str(out), str(src)], check=True,
                   capture_output=True, text=True)
    return out


@pytest.fixture
def build(tmp_path):
    """build("name.S") or build("name.c", "-O2") -> path of a fresh object."""
    counter = [0]

    def _build(name: str, *flags: str, out: str | None = None) -> Path:
        src = SRC / name
        counter[0] += 1
        stem = out or f"{src.stem}-{counter[0]}.o"
        dst = tmp_path / stem
        if src.suffix in (".S", ".s"):
            return assemble(src, dst, *flags)
        return compile_c(src, dst, *flags)

    return _build


def _fetch(what: str) -> Path:
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch-debian"), what],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        pytest.fail(f"cannot fetch {what}: {p.stderr.strip()}")
    return Path(p.stdout.strip().splitlines()[-1])


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


def run_objtool(objtool: Path, obj: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(objtool), "--static-call", *flags, str(obj)],
                          capture_output=True, text=True, timeout=120)


def copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst
