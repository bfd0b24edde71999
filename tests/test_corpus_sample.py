"""A bounded CI sample of the kernel parity check (scripts/kernel-parity).

`scripts/kernel-parity --sample 60` strips the objtool-written table from
about 60 of Debian's 6.1 modules (every module with a tail call, the largest
tables, and every k-th of the rest, including modules without static calls),
runs ONE `scall-objtool write --policy kernel --module` over them and compares
every table with the original.  With --objtool it also re-runs objtool 6.1 on
the stripped modules, and with --readelf it checks the written modules with
`readelf -a -W`.  The full run is `scripts/kernel-parity` (all 1121 modules).

The sample is a corpus run (its fixed cost, reading all 1121 original tables,
is most of it), marked slow.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "kernel-parity"


def _parity(tmp_path, *select: str):
    """Run kernel-parity with --objtool --readelf: (stdout, all output, the
    counts of its summary line).  The timeout only catches a hang (the sample
    takes about a minute; its time is scripts/bench's to measure)."""
    p = subprocess.run([sys.executable, str(SCRIPT), *select, "--objtool",
                        "--readelf", "--keep", str(tmp_path / "work")],
                       capture_output=True, text=True, timeout=1800)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"kernel-parity exit {p.returncode}:\n{out}"
    m = re.search(r"^modules: (\d+)/(\d+) identical; sites: (\d+)/(\d+); "
                  r"calls (\d+), tail calls (\d+)", p.stdout, re.M)
    assert m, out
    assert re.search(r"^objtool 6\.1: .* unexpected mismatches 0$", p.stdout, re.M), out
    assert "without new warnings" in p.stdout and "READELF" not in p.stdout, out
    return p.stdout, out, tuple(map(int, m.groups()))


@pytest.mark.slow
def test_kernel_parity_sample(corpus, objtool, tmp_path):
    _stdout, out, counts = _parity(tmp_path, "--sample", "60")
    ok, n, matched, sites, calls, tails = counts
    assert n >= 60 and ok == n, out
    assert matched == sites == calls + tails and sites > 1000, out
    assert tails == 43, out           # every module with a tail call is in the sample

