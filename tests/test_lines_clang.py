"""clang's source lines where the kernel's clang build looked wrong (issue 24).

testdata/src/sections_inline.c has the shape of arch/x86/kernel/smp.c's
DEFINE_IDTENTRY_SYSVEC: one macro line defines a function in .text, one in
.noinstr.text and the always-inline functions both inline, so two sections
of the relocatable object hold code at the same offsets; and a function whose
two tracepoint calls clang merges into one, leaving the call's row at line 0.

* A row at line 0: the line is unknown (null) and the file kept, as both
  `addr2line -i` (`file:?`) and `llvm-symbolizer --inlining` (`file:0`) say;
  never the function's declaration line.
* The macro-defined functions: the caller's line is the macro's line because
  that is the call line (DW_AT_call_line) of the outermost inlined function,
  not a fallback.  The object linked alone (every section at its own address,
  so that no reader can take one section's function for another's) gives
  `llvm-symbolizer --inlining` no choice to make: its whole chain is ours,
  site by site.  (On the kernel's smp.o, .text+0xf2, `addr2line -i` loses the
  inline frames whose ranges are DW_FORM_rnglistx and llvm-symbolizer names
  .noinstr.text's function: both then print the innermost row,
  irq_vectors.h:87, as if it were the caller; linked alone, llvm-symbolizer
  prints our four frames and smp.c:244.)
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scall_objtool import Options, scan_path
from scall_objtool.core.elf import open_elf
from scall_objtool.lines import addr2line
from scall_testlib import require_tools

SRC = Path(__file__).resolve().parent.parent / "testdata" / "src"
KERNEL = Options(policy="kernel")


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """(the clang object, the same object linked alone)."""
    require_tools("clang", "ld", "addr2line", "llvm-symbolizer")
    tmp = tmp_path_factory.mktemp("clang-lines")
    obj, linked = tmp / "sections_inline.o", tmp / "sections_inline.x"
    subprocess.run(["clang", "-O2", "-g", "-gdwarf-5", "-c", "-o", str(obj),
                    str(SRC / "sections_inline.c")], check=True)
    # unresolved symbols (work, the trampolines) are of no matter to the DWARF
    subprocess.run(["ld", "-o", str(linked), str(obj), "--unresolved-symbols=ignore-all",
                    "--noinhibit-exec", "-e", "0"], check=True, capture_output=True)
    return obj, linked


def _frames(site) -> list[tuple]:
    return ([(f["function"], f["file"], f["line"]) for f in site.inlined]
            + [(None, site.source["file"], site.source["line"])])


def test_line_zero_row_is_unknown_as_both_oracles_say(objects):
    obj, _ = objects
    res = scan_path(str(obj), KERNEL)
    (site,) = [s for s in res.sites if s.function == "merged"]
    assert site.source == {"file": str(SRC / "sections_inline.c"), "line": None}
    assert site.inlined == []
    for program in ("addr2line", "llvm-symbolizer"):
        (frame,) = addr2line(str(obj), ".text" if program == "addr2line" else None,
                             [site.offset], program=program)[0]
        assert (frame.file, frame.line) == (str(SRC / "sections_inline.c"), None), program


def test_macro_defined_functions_chain_is_llvm_symbolizers_once_linked(objects):
    obj, linked = objects
    res = scan_path(str(obj), KERNEL)
    sites = [s for s in res.sites if s.function != "merged"]
    assert {s.section for s in sites} == {".text", ".noinstr.text"}
    start = {s.name: s.addr for s in open_elf(str(linked)).sections}
    macro_line = next(i for i, text in enumerate((SRC / "sections_inline.c").read_text()
                                                 .splitlines(), 1)
                      if text.startswith("DEFINE_ENTRY(sysvec_tick)"))
    for s in sites:
        theirs = addr2line(str(linked), None, [start[s.section] + s.offset],
                           program="llvm-symbolizer")[0]
        ours = _frames(s)
        assert [(f.file, f.line) for f in theirs] == [(f, ln) for _, f, ln in ours], s.offset
        assert [f.function for f in theirs[:-1]] == [fn for fn, _, _ in ours[:-1]]
        assert s.source["line"] == macro_line
        assert [f["function"] for f in s.inlined][-2:] == ["__sysvec_tick",
                                                           "instr_sysvec_tick"]
