"""Where a finding points: every site's `source` is `addr2line -i`'s outermost
frame (the caller after inlining) and its `inlined` chain is addr2line's
frames before that one, innermost first.

testdata/src/inline_sites.c calls static calls through always-inline
wrappers in a header that mimic the kernel's cond_resched() and a tracepoint
(inline_wrappers.h).  Covered: gcc and clang at -O2, with and without
-ffunction-sections, DWARF 4 and 5, -gz (zlib, and zstd where the toolchain
and Python can), relocatable objects and a linked executable."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scall_objtool import Options, scan_path
from scall_objtool.lines import Frame, addr2line
from scall_testlib import require_tools

SRC = Path(__file__).resolve().parent.parent / "testdata" / "src"

KERNEL = Options(policy="kernel")
COMPILERS = ["gcc", "clang"]


def _compile(cc: str, out: Path, *flags: str, link: bool = False) -> Path:
    require_tools(cc)
    cmd = [cc, "-O2", *flags, "-o", str(out), str(SRC / "inline_sites.c")]
    if not link:
        cmd.insert(1, "-c")
    else:
        cmd[1:1] = ["-DLINKED", "-no-pie"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode and "-gz=zstd" in flags:
        pytest.skip(f"{cc} cannot -gz=zstd here: {p.stderr.strip()[:100]}")
    assert p.returncode == 0, p.stderr
    return out


def _theirs(obj: Path, sites) -> list[list[Frame]]:
    if sites[0].address is not None:
        return addr2line(str(obj), None, [s.address for s in sites])
    out = []
    for s in sites:               # one section per site: -j SECTION OFFSET
        out += addr2line(str(obj), s.section, [s.offset])
    return out


def assert_frames_equal_addr2line(obj: Path) -> list:
    res = scan_path(str(obj), KERNEL)
    assert len(res.sites) >= 6 and not res.warnings, res.warnings
    for s, frames in zip(res.sites, _theirs(obj, res.sites)):
        where = (s.section, hex(s.offset))
        outer = frames[-1]
        assert outer.file is not None and outer.line is not None, (where, frames)
        assert s.source == {"file": outer.file, "line": outer.line}, (where, frames)
        assert s.inlined == [{"function": f.function, "file": f.file, "line": f.line}
                             for f in frames[:-1]], (where, frames)
    return res.sites


def assert_callers_in_c_file(sites):
    """The point of it all: the caller is the .c file's line of the call of
    the wrapper, not the header; the chain names the wrappers."""
    text = (SRC / "inline_sites.c").read_text().splitlines()
    assert all(s.source["file"].endswith("inline_sites.c") for s in sites)
    for s in sites:
        assert s.source["line"] is not None
        called = text[s.source["line"] - 1]
        # (in the linked program main() inlines the callers too)
        assert any(w in called for w in ("cond_resched()", "trace_sched_tick(",
                                         "static_call(cond_resched)", "scan_pages(",
                                         "sched_tick(")), (s.source, called)
    wrapped = [s for s in sites if s.inlined]
    assert len(wrapped) >= 5
    names = {f["function"] for s in wrapped for f in s.inlined}
    assert {"_cond_resched", "trace_sched_tick"} <= names, names
    assert all(s.inlined[0]["file"].endswith("inline_wrappers.h")
               or s.inlined[0]["function"] == "direct_call" for s in wrapped)


FLAGS = [
    ("-g",),
    ("-g", "-ffunction-sections"),
    ("-gdwarf-4",),
    ("-gdwarf-4", "-ffunction-sections"),
    ("-gdwarf-5", "-gz"),
    ("-gdwarf-4", "-gz", "-ffunction-sections"),
]


@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: " ".join(f))
def test_object_frames_equal_addr2line(tmp_path, cc, flags):
    obj = _compile(cc, tmp_path / "x.o", *flags)
    sites = assert_frames_equal_addr2line(obj)
    assert_callers_in_c_file(sites)
    if "-ffunction-sections" in flags:
        assert len({s.section for s in sites}) == 4


@pytest.mark.parametrize("cc", COMPILERS)
def test_zstd_compressed_debug_sections(tmp_path, cc):
    """zstd (ELFCOMPRESS_ZSTD): neither gcc 12 nor clang 14 emit it, binutils
    2.40's objcopy does; read with the `zstandard` module (extra `zstd`)."""
    pytest.importorskip("zstandard")
    obj = _compile(cc, tmp_path / "x.o", "-g", "-ffunction-sections")
    z = tmp_path / "z.o"
    p = subprocess.run(["objcopy", "--compress-debug-sections=zstd", str(obj), str(z)],
                       capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"objcopy cannot compress with zstd: {p.stderr.strip()[:100]}")
    sites = assert_frames_equal_addr2line(z)
    assert_callers_in_c_file(sites)
    assert [s.source for s in sites] == [s.source for s in scan_path(str(obj), KERNEL).sites]


def test_zdebug_sections(tmp_path):
    """The older GNU form, .zdebug_* (gcc -gz=zlib-gnu): binutils 2.40's
    addr2line itself loses the lines there, so the answer must be the one for
    the same code with plain sections (which equals addr2line's)."""
    plain = _compile("gcc", tmp_path / "plain.o", "-g")
    zdebug = _compile("gcc", tmp_path / "z.o", "-g", "-gz=zlib-gnu")
    assert any(n.startswith(".zdebug_")
               for n in subprocess.run(["readelf", "-SW", str(zdebug)], capture_output=True,
                                       text=True, check=True).stdout.split())
    want = assert_frames_equal_addr2line(plain)
    got = scan_path(str(zdebug), KERNEL).sites
    assert [(s.source, s.inlined) for s in got] == [(s.source, s.inlined) for s in want]


@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("flags", [("-g",), ("-gdwarf-4",)], ids=lambda f: " ".join(f))
def test_linked_executable_frames_equal_addr2line(tmp_path, cc, flags):
    exe = _compile(cc, tmp_path / "prog", *flags, link=True)
    sites = assert_frames_equal_addr2line(exe)
    assert all(s.address is not None for s in sites)
    assert_callers_in_c_file(sites)


def test_unknown_line_is_null_never_zero(build):
    """A row with line 0 (clang's "no line"): the line is null, the file kept."""
    obj = build("line_zero.s")
    res = scan_path(str(obj), KERNEL)
    (site,) = res.sites
    assert site.source == {"file": "/src/z.c", "line": None}
    assert site.inlined == []
    assert addr2line(str(obj), ".text", [site.offset])[0] == [Frame("f", "/src/z.c", None)]


def test_deep_inline_chain_is_bounded():
    """A crafted nesting of inlined functions: the chain keeps the outermost
    frame and the innermost ones, MAX_FRAMES in all, at linear cost."""
    from scall_objtool.lines import MAX_FRAMES, _unlink
    node = None
    for i in range(100_000):
        node = ({"i": i}, node, node[2] or node) if node else ({"i": i}, None, None)
    chain = _unlink(node)
    assert len(chain) == MAX_FRAMES
    assert chain[0] == {"i": 0}                       # the caller
    assert [a["i"] for a in chain[1:]] == list(range(100_000 - MAX_FRAMES + 1, 100_000))
    shallow = _unlink(({"i": 1}, ({"i": 0}, None, None), None))
    assert [a["i"] for a in shallow] == [0, 1]


@pytest.mark.parametrize("cc", COMPILERS)
def test_a_split_lookup_gives_the_frames_of_one_pass(tmp_path, cc, monkeypatch):
    """A linked image's lookup split over worker processes (``lookup(jobs=N)``;
    a vmlinux from 2,048 sites, here from 2): the frames of one pass, and one
    pass again when a part fails."""
    from scall_objtool import lines
    from scall_objtool.core.elf import ElfFile
    from scall_objtool.core.pipeline import scan_elf
    exe = _compile(cc, tmp_path / "prog", "-g", link=True)
    elf = ElfFile(exe.read_bytes(), str(exe))
    keys = [lines.site_key(s.section_index, s.offset, s.address)
            for s in scan_elf(elf, KERNEL, sources="none").sites]
    assert len(keys) >= 4
    one = lines.lookup(elf, keys)
    monkeypatch.setattr(lines, "SPLIT_SITES", 2)
    monkeypatch.setattr(lines, "SPLIT_PART", 1)
    parts = lines.split_parts(sorted(set(keys)), 3)
    assert len(parts) == 3 and sorted(sum(parts, [])) == sorted(set(keys))
    split = []
    real = lines._split_frames
    monkeypatch.setattr(lines, "_split_frames", lambda e, p: split.append(p) or real(e, p))
    assert lines.lookup(elf, keys, jobs=3) == one and one
    assert len(split) == 1 and len(split[0]) == 3
    monkeypatch.setattr(lines, "_split_part", lambda k: 1 / 0)     # a worker fails
    assert lines.lookup(elf, keys, jobs=3) == one
    assert lines.lookup(elf, keys, jobs=1) == one


def test_the_few_sites_depth_counts_as_the_segment_tree():
    """A unit of at most FEW_SITES sites counts the DIEs over each site in a
    plain list (``_FewDepth``); entered, left and labelled in any order, it
    gives the segment tree's maximum and labels."""
    import random

    from scall_objtool.lines import FEW_SITES, _Depth, _FewDepth
    rng = random.Random(5)
    for _ in range(2000):
        n = rng.randint(1, FEW_SITES)
        tree, few, path = _Depth(n), _FewDepth(n), []
        for _ in range(rng.randint(1, 60)):
            r = rng.random()
            if r < 0.45 or not path:
                i = rng.randrange(n)
                j = rng.randint(i + 1, n)
                path.append((i, j))
                tree.add(i, j, 1)
                few.add(i, j, 1)
            elif r < 0.8:
                i, j = path.pop()
                tree.add(i, j, -1)
                few.add(i, j, -1)
            else:
                x = rng.randrange(100)
                tree.label(x)
                few.label(x)
            assert tree.top() == few.top()
        assert tree.labels() == few.labels()
