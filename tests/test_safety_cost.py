"""Every input bounded, every path linear (issue 23, items 4-10 and 21).

Each test counts work or memory -- bytes read (``/proc/self/io``), bytes
indexed, tracemalloc peaks, output sizes -- with generous margins; none
measures time.  The inputs are those of the issue's reproductions
(/work/shared/repro/round2), at sizes that cost a few seconds on 653ef3c.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scall_objtool import Options
from scall_objtool.core.elf import ElfFile
from scall_objtool.core.pipeline import scan_elf
from scall_objtool.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scall_testlib import PREBUILT, run_cli, traced_peak  # noqa: E402


def _rchar() -> int:
    """Bytes this process has read through read(2) and friends so far."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _assemble(tmp_path: Path, text: str, name: str) -> Path:
    src, obj = tmp_path / f"{name}.s", tmp_path / f"{name}.o"
    src.write_text(text)
    subprocess.run(["as", "-o", str(obj), str(src)], check=True, capture_output=True)
    return obj


# the reproduction generators, kept with the robustness harness
from robust_harness import inline_nest, long_leb, long_name  # noqa: E402


# ------------------------------------------------------ item 10: magic first
def test_a_large_file_that_is_not_elf_is_refused_after_its_first_bytes(tmp_path):
    from scall_objtool.core.elf import read_file
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as f:
        f.truncate(256 << 20)
    start = _rchar()
    with pytest.raises(InputError, match="not an ELF file"):
        read_file(str(sparse))
    assert _rchar() - start < 1 << 20, "the whole file was read before its magic"


def test_a_large_file_of_another_machine_is_refused_after_its_header(tmp_path):
    """An ELF header that says ARM: refused (skipped in a walk) after 64 bytes."""
    from scall_objtool.core.elf import read_file
    from scall_objtool.errors import ForeignObject
    obj = _assemble(tmp_path, ".text\nret\n", "x")
    head = bytearray(obj.read_bytes()[:64])
    head[18:20] = (40).to_bytes(2, "little")        # e_machine = ARM
    big = tmp_path / "arm.o"
    with open(big, "wb") as f:
        f.write(head)
        f.truncate(256 << 20)
    start = _rchar()
    with pytest.raises(ForeignObject, match="ARM"):
        read_file(str(big))
    assert _rchar() - start < 1 << 20
    r = run_cli("scan", big)
    assert r.rc == 2 and "not an x86-64 object" in r.stderr and len(r.stderr.splitlines()) == 1


def test_checking_the_first_bytes_costs_no_second_copy(tmp_path):
    """The header is read, then the file once: the peak is the file, not twice it."""
    from scall_objtool.core.elf import read_file
    obj = _assemble(tmp_path, ".text\nret\n", "x").read_bytes()
    big = tmp_path / "big.o"
    big.write_bytes(obj + bytes(32 << 20))
    data, peak = traced_peak(read_file, str(big))
    assert len(data) == big.stat().st_size and peak < 1.2 * len(data), peak / len(data)


def test_an_object_is_read_with_one_stat_and_two_reads(tmp_path, monkeypatch):
    """read_file makes its header check and the whole read without a second
    stat (the caller's is reused), a seek or a read to find the end: a batch
    reads thousands of objects.  A file that grew since the stat is still read
    to its end."""
    import os as os_
    from scall_objtool.core import elf as elfmod
    obj = _assemble(tmp_path, ".text\nret\n", "x")
    data = obj.read_bytes()
    calls = []
    for name in ("stat", "lstat", "read", "pread", "lseek", "fstat"):
        real = getattr(os_, name)
        monkeypatch.setattr(elfmod.os, name,
                            lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    st = os_.stat(obj)
    calls.clear()
    assert elfmod.read_file(str(obj), st) == data
    assert calls == ["read", "pread"], calls
    calls.clear()
    assert elfmod.read_file(str(obj)) == data and calls == ["stat", "read", "pread"], calls
    with open(obj, "ab") as f:                      # grows after the stat
        f.write(b"\0" * (3 << 20))
    assert elfmod.read_file(str(obj), st) == data + b"\0" * (3 << 20)


def test_a_write_puts_the_object_on_disk_without_a_second_copy(tmp_path):
    """write reads the object once and writes the new one as its pieces (the
    new header, the original bytes, the appended table): its peak is the
    file, not the file twice (the joined copy it used to make)."""
    from scall_objtool.core import Options
    from scall_objtool.table.write import write_path
    big = _assemble(tmp_path, ".data\n.skip 33554432\n.text\n.globl __SCT__x\n"
                    ".globl f\nf: call __SCT__x\nret\n", "big")
    size = big.stat().st_size
    out, peak = traced_peak(write_path, str(big), Options(policy="kernel"))
    assert out.action == "written" and out.entries == 1
    assert big.stat().st_size > size and peak < 1.3 * size, peak / size


# ------------------------------------------------------ item 8: archive once
def test_an_archive_is_read_once_not_once_a_member(tmp_path):
    from scall_objtool.inputs import expand
    members = []
    for i in range(200):
        members.append(_assemble(tmp_path, f".text\n.globl g{i}\ng{i}: call __SCT__x\n"
                                 ".globl __SCT__x\n", f"m{i}"))
    lib = tmp_path / "lib.a"
    subprocess.run(["ar", "rcS", str(lib), *map(str, members)], check=True)
    size = lib.stat().st_size
    start = _rchar()
    inputs = expand([str(lib)]).inputs
    datas = [inp.read() for inp in inputs]
    read = _rchar() - start
    assert len(inputs) == 200 and all(d[:4] == b"\x7fELF" for d in datas)
    assert datas[7] == members[7].read_bytes()
    assert read < 3 * size, f"{read} bytes read for a {size}-byte archive of 200 members"


# ---------------------------------------------------- item 4: JSON bounded
def _limited(args, limit_mb: int = 1500):
    """The CLI under an address-space limit (a read without bound fails fast)."""
    import resource

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run([sys.executable, "-m", "scall_objtool", *map(str, args)],
                          capture_output=True, text=True, timeout=120, preexec_fn=cap,
                          env=env)


@pytest.mark.parametrize("command", ["baseline", "diff", "dashboard"])
def test_a_device_as_a_json_input_is_refused_unread(tmp_path, command):
    obj = _assemble(tmp_path, long_name(8, 1), "x")
    out = tmp_path / "r.json"
    assert run_cli("scan", "--format", "json", "-o", out, obj).rc == 0
    args = {"baseline": ["check", "--baseline", "/dev/zero", obj],
            "diff": ["diff", out, "/dev/zero"],
            "dashboard": ["dashboard", "-o", tmp_path / "d.html", "/dev/zero"]}[command]
    r = _limited(args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        "scall-objtool: error: /dev/zero: not a regular file or a pipe: refused unread"]


def test_json_inputs_have_a_bound_for_files_and_pipes(tmp_path, monkeypatch):
    import scall_objtool.report.jsondoc as jsondoc
    monkeypatch.setattr(jsondoc, "MAX_JSON", 1 << 20, raising=False)
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(4 << 20)
    start = _rchar()
    with pytest.raises(InputError, match=r"larger than 1048576 bytes: refused unread"):
        jsondoc.read_json(str(big))
    assert _rchar() - start < 1 << 20
    # a pipe fed without end: at most the bound (+1) is read
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fed = []

    def feed():
        try:
            with open(fifo, "wb") as f:
                for _ in range(64):
                    f.write(b" " * (1 << 20))
                    fed.append(1)
        except BrokenPipeError:
            pass
    t = threading.Thread(target=feed)
    t.start()
    with pytest.raises(InputError, match=r"larger than 1048576 bytes: refused$"):
        jsondoc.read_json(str(fifo))
    t.join(30)
    assert not t.is_alive() and len(fed) < 8, f"{len(fed)} MiB taken from the pipe"


def test_a_json_report_through_a_pipe_still_reads(tmp_path):
    obj = _assemble(tmp_path, long_name(8, 2), "x")
    out = tmp_path / "r.json"
    assert run_cli("scan", "--format", "json", "-o", out, obj).rc == 0
    r = subprocess.run(["bash", "-c", f'{sys.executable} -m scall_objtool diff '
                        f'<(cat {out}) {out}'], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert r.returncode == 0, r.stderr
    assert "0 added, 0 removed, 0 changed, 2 unchanged" in r.stdout


# ------------------------------------------- item 7: prefixes, no regex blow-up
def test_a_long_prefixes_string_costs_its_size_not_78_times_it(tmp_path):
    from scall_objtool.report.jsondoc import load_report
    obj = _assemble(tmp_path, long_name(8, 1), "x")
    doc = json.loads(run_cli("scan", "--format", "json", obj).stdout)
    doc["objects"][0]["sites"][0]["prefixes"] = "ab" * (2 << 20)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    def refused():
        with pytest.raises(InputError, match="prefixes: longer than 28 characters"):
            load_report(str(bad))
    _, peak = traced_peak(refused)
    size = bad.stat().st_size
    assert peak < 8 * size, f"{peak} bytes of memory for a {size}-byte report"


# ---------------------------------------------------------- item 9: LEB128
class _Counted:
    """Bytes that count how many of them are looked at."""

    def __init__(self, data: bytes):
        self.data, self.reads = data, 0

    def __getitem__(self, i):
        self.reads += 1
        return self.data[i]


@pytest.mark.parametrize("signed", [False, True])
def test_an_overlong_leb128_is_corrupt_after_ten_bytes(signed):
    from scall_objtool.lines.dwarf import DwarfError, sleb, uleb
    data = _Counted(b"\xd5" * 20000 + b"\x15")
    with pytest.raises(DwarfError, match="does not fit in 64 bits"):
        (sleb if signed else uleb)(data, 0)
    assert data.reads <= 11
    # what the format allows is read as before: 64-bit values, padding
    assert uleb(b"\xff" * 9 + b"\x01", 0) == ((1 << 64) - 1, 10)
    assert uleb(b"\x85\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 0) == (5, 12)
    assert sleb(b"\x80" * 9 + b"\x7f", 0) == (-(1 << 63), 10)
    assert sleb(b"\xff\xff\xff\x7f", 0) == (-1, 4)
    assert sleb(b"\x3f", 0) == (63, 1) and sleb(b"\x40", 0) == (-64, 1)


@pytest.mark.parametrize("where", ["info", "line"])
def test_an_overlong_leb128_in_dwarf_is_a_one_line_warning(tmp_path, where):
    obj = _assemble(tmp_path, long_leb(5000, where), where)
    r = run_cli("scan", "--format", "json", obj)     # the scan output that shows lines
    assert r.rc == 0
    warn = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(warn) == 1 and "LEB128" in warn[0] and "does not fit in 64 bits" in warn[0], \
        r.stderr
    assert "int_max_str_digits" not in r.stderr and "digits" not in r.stderr


# ------------------------------------------------- item 6: nested inline DIEs
def _inline_peak(tmp_path: Path, n: int) -> tuple[int, list]:
    from scall_objtool.lines import attach_sources
    obj = _assemble(tmp_path, inline_nest(n, n), f"nest{n}")
    elf = ElfFile(obj.read_bytes(), str(obj))
    res = scan_elf(elf, Options(), sources=False)
    _, peak = traced_peak(attach_sources, elf, res)
    assert not res.warnings, res.warnings
    return peak, res.sites


def test_nested_inline_dies_cost_depth_plus_sites(tmp_path):
    peak1, sites1 = _inline_peak(tmp_path, 600)
    peak4, sites4 = _inline_peak(tmp_path, 2400)
    for sites in (sites1, sites4):
        # 64 frames kept: the innermost 62 inlined "g", the outermost "f"
        assert [len(s.inlined) for s in sites] == [63] * len(sites)
        assert {f["function"] for s in sites for f in s.inlined} == {"g"}
    # 653ef3c: 10.5 MB and 48 MB (each level listed its sites; each site had its
    # own 63 frame dicts); now ~1 and ~4 MB: the frames are shared by the sites
    assert peak4 < 6 * peak1, f"600 levels and sites: {peak1} B, 2400: {peak4} B"
    assert peak4 < 2000 * (2400 + 2400), f"{peak4} B for 2400 levels over 2400 sites"


def test_the_site_counts_label_what_listing_the_sites_labelled():
    """_Depth answers what the walk it replaces computed by listing, per DIE,
    the sites inside it and every enclosing DIE: whether any is, and for each
    site the last DIE that held it (overlapping siblings, several ranges)."""
    import random

    from scall_objtool.lines import _Depth, _Placed, _spans
    rng = random.Random(6)
    for _ in range(300):
        n = rng.randrange(1, 40)
        sites = sorted(rng.sample(range(1000), n))
        d = _Depth(n)
        want = [-1] * n
        path: list[list] = []
        for label in range(40):
            if path and rng.random() < 0.4:
                for i, j in path.pop():
                    d.add(i, j, -1)
                continue
            ranges = [tuple(sorted(rng.sample(range(1000), 2)))
                      for _ in range(rng.randrange(1, 4))]
            spans = _spans(sites, ranges)
            sub = [k for k in range(n) if any(lo <= sites[k] < hi for lo, hi in ranges)
                   and all(any(i <= k < j for i, j in sp) for sp in path)]
            for i, j in spans:
                d.add(i, j, 1)
            assert (d.top() == len(path) + 1) == bool(sub)
            if sub:
                d.label(label)
                for k in sub:
                    want[k] = label
                path.append(spans)
            else:
                for i, j in spans:
                    d.add(i, j, -1)
        assert d.labels() == want
        placed = _Placed(n)
        marked = set()
        for _ in range(5):
            i = rng.randrange(n)
            j = rng.randrange(i, n + 1)
            placed.mark(i, j)
            marked.update(range(i, j))
            assert placed.count == len(marked)


# ------------------------------------------------ item 5: names per site
def test_a_long_name_repeated_per_site_costs_the_output_its_size(tmp_path):
    obj = _assemble(tmp_path, long_name(100_000, 1000), "long")
    size = obj.stat().st_size
    for args in (["scan"], ["scan", "--format", "json"], ["check", "--format", "sarif"],
                 ["check", "--format", "json"], ["check"], ["write", "--dry-run"],
                 ["verify"]):
        r = run_cli(*args, obj)
        assert r.rc in (0, 1) and "error" not in r.stderr, (args, r.stderr[-300:])
        assert len(r.stdout) < 20 * size, f"{args}: {len(r.stdout)} bytes of output"
    text = run_cli("scan", obj).stdout
    short = "f" + "x" * 255 + "...[100000 bytes, sha256:"
    assert short in text and "x" * 300 not in text


def test_long_names_stay_apart_and_match_themselves(tmp_path):
    """Two functions whose 600-byte names share their first 590 bytes: shown
    apart; a report used as its own baseline matches every site."""
    a = long_name(600, 3, "f" + "y" * 589 + "a")
    b = long_name(600, 2, "f" + "y" * 589 + "b")
    obj = _assemble(tmp_path, a + b.replace(".globl __SCT__x\n.globl __SCK__x\n", ""), "ab")
    doc = json.loads(run_cli("scan", "--format", "json", obj).stdout)
    names = [s["function"] for s in doc["objects"][0]["sites"]]
    assert len(set(names)) == 2 and all(len(n) < 330 for n in names), names
    base = tmp_path / "base.json"
    assert run_cli("scan", "--cache-line", "8", "--format", "json", "-o", base, obj).rc == 0
    fallback = json.loads(base.read_text())["summary"]["fallback"]
    assert fallback >= 1
    r = run_cli("check", "--cache-line", "8", "--baseline", base, obj)
    assert r.rc == 0 and f"{fallback} known, 0 new" in r.stdout, r.stdout


# ------------------------------------------------- item 21: compressed budget
def test_junk_after_a_compressed_stream_buys_no_expansion(tmp_path):
    from scall_objtool.core.compressed import MAX_EXPANDED, decompress
    raw = bytes(72 << 20)
    stream = gzip.compress(raw)
    # 64 x the stream plus 64 MiB is less than 72 MiB; 64 x the file is more
    assert 64 * len(stream) + (64 << 20) < len(raw) < 64 * (len(stream) + 300_000) + (64 << 20)
    assert len(raw) < MAX_EXPANDED
    with pytest.raises(InputError, match="expands to more than"):
        decompress(stream, "x.ko.gz")
    with pytest.raises(InputError, match="expands to more than"):
        decompress(stream + os.urandom(300_000), "x.ko.gz")


@pytest.mark.parametrize("codec", ["gzip", "xz"])
def test_expanding_costs_the_expanded_size_once(codec):
    import lzma
    from scall_objtool.core.compressed import decompress
    raw = bytes(range(256)) * (64 << 12)                  # 64 MiB
    packed = gzip.compress(raw) if codec == "gzip" else lzma.compress(raw)
    out, peak = traced_peak(decompress, packed, "x.ko")
    assert out == raw
    assert peak < 1.6 * len(raw), f"peak {peak / len(raw):.2f} x the expanded size"


def test_a_walk_resolves_each_directory_once(tmp_path, monkeypatch):
    """A walk compares the real paths of the files it finds (Kbuild's repeats,
    thin archives): each directory is resolved once, then each file is one
    lstat, not one per component of its path (a kernel tree: 22,000 lstat
    calls before, for 800 objects), and the paths are os.path.realpath's."""
    from scall_objtool.inputs import _Realpaths, expand
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(12)])
    deep.mkdir(parents=True)
    real = deep / "real"
    real.mkdir()
    (deep / "link").symlink_to("real")
    obj = (PREBUILT / "nostatic-O2.o").read_bytes()
    for i in range(60):
        (real / f"o{i}.o").write_bytes(obj)
    (real / "alias.o").symlink_to("o0.o")
    calls = []
    lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: calls.append(p) or lstat(p, *a, **k))
    got = expand([str(deep / "link")], linked=True)
    assert len(got.inputs) == 60 and got.duplicates
    assert len(calls) < 4 * 61, len(calls)
    resolve = _Realpaths()
    for p in [*(str(deep / "link" / f"o{i}.o") for i in range(3)), str(real / "alias.o"),
              str(deep / "link" / "missing.o"), str(deep / "link" / ".."), "rel.o"]:
        assert resolve(p) == os.path.realpath(p), p
