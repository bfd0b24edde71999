"""Source lines cost time and memory near-linear in the input (issue 10 item 15).

Compile units sharing one line program (testdata/gen/dwarf_shared_lines.py)
made memory grow with units x rows (106 KB took 1.7 GB).  Each input is
generated at 1x and 4x; the ratio of Python lines executed (a count of work
that a busy machine does not change) and of the tracemalloc peaks must stay
near 4 (a quadratic cost gives 16); a ~1 MB crafted input runs a bounded
number of lines per byte.  No times are measured."""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from scall_objtool import Options, scan_path
from scall_objtool.core.elf import ElfFile
from scall_objtool.core.pipeline import scan_elf
from scall_objtool.lines import attach_sources
from scall_testlib import python_lines, traced_peak

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


def _cost(obj: Path, line: int) -> tuple[int, int]:
    """(Python lines executed, tracemalloc peak) of the source lookup of a
    scanned object (the scan itself is not what is measured here)."""
    elf = ElfFile(obj.read_bytes(), str(obj))
    attach_sources(elf, scan_elf(elf, Options(), sources=False))    # warm imports
    res = scan_elf(elf, Options(), sources=False)
    _, lines = python_lines(attach_sources, elf, res)
    assert res.sites and res.sites[0].source == {"file": "a.c", "line": line}, res.sites
    assert not res.warnings
    res = scan_elf(elf, Options(), sources=False)
    _, peak = traced_peak(attach_sources, elf, res)
    return lines, peak


@pytest.mark.parametrize("shape", ["units", "both"])
def test_shared_line_program_cost_is_linear(tmp_path, shape):
    """The static call's row is the program's last: the whole program is
    decoded, once however many units share it."""
    gen = _generator("dwarf_shared_lines")
    n, m = 300, 50000                         # the 106 KB input
    n4, m4 = {"units": (4 * n, m), "both": (4 * n, 4 * m)}[shape]
    small = _assemble(tmp_path, gen(n, m, call_last=True), "small")
    big = _assemble(tmp_path, gen(n4, m4, call_last=True), "big")
    w1, mem1 = _cost(small, m + 2)
    w4, mem4 = _cost(big, m4 + 2)
    # near-linear in the factor 4 (quadratic would be 16)
    assert w4 / w1 < 5, (shape, w1, w4)
    assert mem4 / mem1 < 8, (shape, mem1, mem4)
    # and memory stays within a small multiple of the input itself
    assert mem4 < 2 * big.stat().st_size + (1 << 20), (mem4, big.stat().st_size)


def test_one_megabyte_of_shared_line_programs_takes_seconds(tmp_path):
    gen = _generator("dwarf_shared_lines")
    obj = _assemble(tmp_path, gen(12000, 380000, call_last=True), "mb")
    assert obj.stat().st_size > 900_000
    res, lines = python_lines(scan_path, str(obj), Options())
    assert lines < 20 * obj.stat().st_size, lines      # a quadratic path runs thousands a byte
    assert res.sites[0].source == {"file": "a.c", "line": 380002} and not res.warnings
