"""The tests' command-line server (cliserver.py) gives what a real
`python -m scall_objtool` gives: the same exit status, stdout and stderr,
in the working directory and environment asked for, and a start-up
environment of its own where Python reads one (PYTHONIOENCODING)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import cliserver
from scall_testlib import PREBUILT

CASES = [["--version"], ["scan", "kinds.o"], ["scan", "--format", "json", "kinds.o"],
         ["scan", "missing.o"], ["check", "crossing.o"], ["scan", "--jobs", "0", "kinds.o"],
         ["dashboard"], ["write", "-o", "-", "demo.o"]]


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c) for c in CASES])
@pytest.mark.parametrize("extra", [{}, {"PYTHONIOENCODING": "ascii", "COLUMNS": "40"}],
                         ids=["env", "ascii"])
def test_a_forked_command_is_what_python_m_gives(case, extra, monkeypatch):
    monkeypatch.delenv("SCALL_TESTS_CLI", raising=False)
    env = dict(os.environ, **extra)
    forked = cliserver.run(case, cwd=PREBUILT, env=env)
    real = subprocess.run([sys.executable, "-m", "scall_objtool", *case], cwd=PREBUILT,
                          env=env, capture_output=True, timeout=120)
    assert (forked.returncode, forked.stdout, forked.stderr) == \
        (real.returncode, real.stdout, real.stderr)


def test_a_start_up_variable_gets_a_server_of_its_own(monkeypatch):
    monkeypatch.delenv("SCALL_TESTS_CLI", raising=False)
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    cliserver.run(["--version"], env=env)
    cliserver.run(["--version"], env=dict(env, SCALL_OBJTOOL_NO_PROGRESS="1"))  # same start-up
    keys = [k for k in cliserver._servers if ("PYTHONIOENCODING", "ascii") in k]
    assert len(keys) == 1
