"""Source lines cost time and memory near-linear in the input (issue 10 item 15).

Compile units sharing one line program (testdata/gen/dwarf_shared_lines.py)
made memory grow with units x rows (106 KB took 1.7 GB).  Each input is
generated at 1x and 4x; the time ratio and the tracemalloc peak ratio must
stay near 4 (a quadratic cost gives 16); a ~1 MB crafted input finishes in
seconds.  No absolute times except the generous bound on the 1 MB input."""
from __future__ import annotations

import importlib.util
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from scall_objtool import Options, scan_path

GEN = Path(__file__).resolve().parent.parent / "testdata" / "gen"


def _generator(name: str):
    spec = importlib.util.spec_from_file_location(name, GEN / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.generate


def _assemble(tmp_path: Path, text: str, name: str) -> Path:
    src, obj = tmp_path / f"{name}.s", tmp_path / f"{name}.o"
    src.write_text(text)
    subprocess.run(["as", "-o", str(obj), str(src)], check=True, capture_output=True)
    return obj


def _cost(obj: Path) -> tuple[float, int]:
    """(best of 3 wall times, tracemalloc peak) of a scan with lines."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        res = scan_path(str(obj), Options())
        best = min(best, time.perf_counter() - t0)
    assert res.sites and res.sites[0].source == {"file": "a.c", "line": 1}, res.sites
    assert not res.warnings
    tracemalloc.start()
    try:
        scan_path(str(obj), Options())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return best, peak


@pytest.mark.parametrize("shape", ["units", "rows", "both"])
def test_shared_line_program_cost_is_linear(tmp_path, shape):
    gen = _generator("dwarf_shared_lines")
    n, m = 300, 50000                         # the 106 KB input
    n4, m4 = {"units": (4 * n, m), "rows": (n, 4 * m), "both": (4 * n, 4 * m)}[shape]
    small = _assemble(tmp_path, gen(n, m), "small")
    big = _assemble(tmp_path, gen(n4, m4), "big")
    size_ratio = big.stat().st_size / small.stat().st_size
    t1, m1 = _cost(small)
    t4, m4_ = _cost(big)
    # near-linear: at most ~2x the size ratio (quadratic would be its square)
    assert t4 / t1 < 2 * max(size_ratio, 1.5) + 1, (shape, size_ratio, t1, t4)
    assert m4_ / m1 < 2 * max(size_ratio, 1.5) + 1, (shape, size_ratio, m1, m4_)
    # and memory stays a small multiple of the input itself
    assert m4_ < 12 * big.stat().st_size + (8 << 20), (m4_, big.stat().st_size)


def test_one_megabyte_of_shared_line_programs_takes_seconds(tmp_path):
    gen = _generator("dwarf_shared_lines")
    obj = _assemble(tmp_path, gen(12000, 380000), "mb")
    assert obj.stat().st_size > 900_000
    t0 = time.perf_counter()
    res = scan_path(str(obj), Options())
    assert time.perf_counter() - t0 < 10
    assert res.sites[0].source == {"file": "a.c", "line": 1} and not res.warnings
