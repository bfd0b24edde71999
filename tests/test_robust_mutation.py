"""Hostile input: a mutation and fuzz suite over real objects.

Bases: a gas object (kinds.o, every site kind), two gcc objects
(staticcall-O2.o; demo.o with DWARF), a 6.1 kernel module with its
objtool-written table, the same module stripped of it, and as Debian ships
it, signed (``write`` must refuse every mutant that still ends with the
signature's marker, and leave it untouched), a linked
executable built here with gcc, and two objects this tool has written
(kinds.o, the stripped module: mutating them drives ``--force`` through the
recovery of the original object).  Each base is mutated

* structurally -- every ELF header field, every field of the section
  headers, of the interesting symbols (trampolines, keys, functions,
  section symbols) and relocations (those against trampolines, first and
  last of each table) set to absurd and boundary values; link loops,
  string tables without NUL, overlapping sections, zero entsize,
  relocations beyond their section, extended numbering;
* by truncation at every structural boundary (ELF header bytes, each
  section's start and end, each section header, symbols), +-1;
* by seeded random byte flips, mostly in the headers and tables;
* by hypothesis, patching 1-4 fields at once (derandomized).

Every mutant goes through ``robust_harness.check_bytes`` in a worker
process with a 1 GiB address-space limit and a per-case timeout: two scans,
a write to ``-o`` and a forced write in place.  Only InputError (ScallError)
may come out; the input must be byte-identical after a failure; nothing may
be left in the directory; a written object must be readable by the tool, a
second write must leave it byte-identical and so must ``--force``; errors
and warnings must be one printable line.  A sample also goes through the real
CLI (exit 0, or exit 2 with exactly one error line per bad input), and ar
archive headers are mutated for the archive reader.

Counts are printed at the end of the module (and are in every assertion
message).  Bigger budgets: SCALL_FUZZ_FLIPS (random flips per base, default
400), SCALL_FUZZ_EXAMPLES (hypothesis examples per base, default 150),
SCALL_FUZZ_JOBS (worker processes, default 2), SCALL_FUZZ_TIMEOUT (seconds
per case, default 20).

The sweeps and the CLI run over mutants are marked slow; the everyday run
(``-m "not slow"``) runs a sample of each (test_sweep_sample,
test_cli_on_mutants_sample) with the same checks.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robust_harness as H
from scall_testlib import PREBUILT, run_cli

REPRO = Path(__file__).resolve().parent / "fuzz_repro"

FLIPS = int(os.environ.get("SCALL_FUZZ_FLIPS", "400"))
EXAMPLES = int(os.environ.get("SCALL_FUZZ_EXAMPLES", "150"))
JOBS = int(os.environ.get("SCALL_FUZZ_JOBS", "2"))
TIMEOUT = float(os.environ.get("SCALL_FUZZ_TIMEOUT", "60"))   # a hang guard only

#: Known bugs (see robust_harness.KNOWN_BUGS), each with a strict-xfail
#: reproducer test.  Mutants that hit only these are counted as "known bugs"
#: and do not fail the sweep; anything else does.  The bugs the sweep found
#: and that are fixed have their reproducers as regression tests at the end
#: of this file.
KNOWN = H.KNOWN_BUGS

#: demo.o carries DWARF, read by pyelftools on every scan, so it is ~5 times
#: slower a case: its structural sweep takes every DEMO_STRIDE-th mutant (and
#: it gets a sweep of byte flips aimed at its .debug_* sections instead).
DEMO_STRIDE = int(os.environ.get("SCALL_FUZZ_DEMO_STRIDE", "6"))

#: the everyday run (-m "not slow") takes every SAMPLE_STRIDE-th case of the
#: sweeps (and SAMPLE_FLIPS byte flips a base); the full run takes them all.
SAMPLE_STRIDE = 16
SAMPLE_FLIPS = 8

BASE_NAMES = ["gas:kinds.o", "gcc:staticcall-O2.o", "gcc-g:demo.o", "ko:async_memcpy.ko",
              "ko-stripped:async_memcpy.ko", "signed:async_memcpy.ko", "exe:linkprog",
              "written:kinds.o", "written:async_memcpy.ko"]


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def bases(corpus, tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("bases")
    ko = corpus / H.CORPUS_MODULE
    out = {
        "gas:kinds.o": (PREBUILT / "kinds.o").read_bytes(),
        "gcc:staticcall-O2.o": (PREBUILT / "staticcall-O2.o").read_bytes(),
        "gcc-g:demo.o": (PREBUILT / "demo.o").read_bytes(),
        # Debian signs its modules: the module as objtool wrote it, and as shipped
        "ko:async_memcpy.ko": H.unsigned(ko.read_bytes()),
        "signed:async_memcpy.ko": ko.read_bytes(),
        "ko-stripped:async_memcpy.ko": Path(H.strip_table(str(ko), str(d / "s.ko")))
        .read_bytes(),
        "exe:linkprog": Path(H.build_executable(str(d / "linkprog"))).read_bytes(),
    }
    # objects this tool has written (a table it appended, the keys it added):
    # mutating them drives --force through the recovery of the original
    for name, src, args in (("written:kinds.o", out["gas:kinds.o"], ["--policy", "kernel"]),
                            ("written:async_memcpy.ko", out["ko-stripped:async_memcpy.ko"],
                             ["--policy", "kernel", "--module"])):
        w = d / name.replace(":", "-")
        w.write_bytes(src)
        assert run_cli("write", "-q", *args, w).rc == 0
        out[name] = w.read_bytes()
        assert out[name] != src
    assert b".static_call_sites" in out["ko:async_memcpy.ko"]
    assert H.signed(out["signed:async_memcpy.ko"]) and not H.signed(out["ko:async_memcpy.ko"])
    assert b".static_call_sites" not in out["ko-stripped:async_memcpy.ko"]
    assert struct.unpack_from("<H", out["exe:linkprog"], 16)[0] in (2, 3)   # EXEC/DYN
    return out


@pytest.fixture(scope="module")
def pool():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    d = tempfile.mkdtemp(prefix="scall-fuzz-", dir=base)
    p = H.WorkerPool(d, n=JOBS, timeout=TIMEOUT)
    yield p
    p.close()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def totals(request):
    """Per-test tallies; a summary is printed when the module ends."""
    rows: list[tuple[str, H.Tally]] = []
    yield rows
    total = H.Tally()
    lines = []
    for label, t in rows:
        total.merge(t)
        lines.append(t.line(label))
    lines.append(total.line("robustness TOTAL"))
    _print_summary(request.config, lines)


def _print_summary(config, lines: list[str]) -> None:
    """Print past pytest's output capture (the counts belong in the CI log)."""
    import contextlib
    capman = config.pluginmanager.get_plugin("capturemanager")
    ctx = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
    tr = config.pluginmanager.get_plugin("terminalreporter")
    with ctx:
        if tr is not None:
            tr.write_line("")
            for line in lines:
                tr.write_line(line)
        else:                               # pragma: no cover
            print("\n".join(lines))


def _check(tally: H.Tally, label: str) -> None:
    msg = tally.line(label)
    if not tally.clean:
        msg += "\n" + tally.report()
    assert tally.clean, msg
    # the base itself must be processed: the suite would be vacuous otherwise
    assert tally.cases > 0, msg


# ----------------------------------------------------------------- the sweeps
@pytest.mark.slow
@pytest.mark.parametrize("base", BASE_NAMES)
def test_structural_mutations_and_truncations(base, bases, pool, totals):
    data = bases[base]
    cases = list(H.structural_mutations(data))
    if base == "gcc-g:demo.o":
        cases = cases[::DEMO_STRIDE]
    cases += list(H.truncations(data))
    tally = pool.run(cases, KNOWN)
    totals.append((f"structural+truncation {base}", tally))
    _check(tally, base)
    assert tally.rejected > 0 and tally.cases == len(cases)


@pytest.mark.slow
@pytest.mark.parametrize("base", BASE_NAMES)
def test_random_byte_flips(base, bases, pool, totals):
    data = bases[base]
    tally = pool.run(H.byte_flips(data, FLIPS, seed=20240601 + BASE_NAMES.index(base)), KNOWN)
    totals.append((f"byte flips {base}", tally))
    _check(tally, base)


@pytest.mark.slow
def test_dwarf_byte_flips(bases, pool, totals):
    """Flips inside demo.o's .debug_* sections (the line-table reader)."""
    data = bases["gcc-g:demo.o"]
    regions = H.section_regions(data, b".debug_") + H.section_regions(data, b".rela.debug_")
    assert regions
    tally = pool.run(H.byte_flips(data, FLIPS, seed=99, regions=regions), KNOWN)
    totals.append(("DWARF byte flips gcc-g:demo.o", tally))
    _check(tally, "demo.o DWARF")


def test_sweep_sample(bases, pool, totals):
    """The everyday run's sample of the sweeps above (marked slow), with the
    same checks: of every base, every SAMPLE_STRIDE-th truncation, every
    2*SAMPLE_STRIDE-th structural mutant (demo.o, whose DWARF makes a case
    ~5 times slower: DEMO_STRIDE times fewer of both) and SAMPLE_FLIPS byte
    flips; and SAMPLE_FLIPS flips in demo.o's DWARF."""
    for base in BASE_NAMES:
        data = bases[base]
        stride = SAMPLE_STRIDE * (DEMO_STRIDE if base == "gcc-g:demo.o" else 1)
        cases = (list(H.structural_mutations(data))[::stride * 2]
                 + list(H.truncations(data))[::stride]
                 + list(H.byte_flips(data, SAMPLE_FLIPS,
                                     seed=20240601 + BASE_NAMES.index(base))))
        tally = pool.run(cases, KNOWN)
        totals.append((f"sample {base}", tally))
        _check(tally, base)
        assert tally.rejected > 0 and tally.cases == len(cases)
    data = bases["gcc-g:demo.o"]
    regions = H.section_regions(data, b".debug_") + H.section_regions(data, b".rela.debug_")
    tally = pool.run(H.byte_flips(data, SAMPLE_FLIPS, seed=99, regions=regions), KNOWN)
    totals.append(("sample DWARF byte flips gcc-g:demo.o", tally))
    _check(tally, "demo.o DWARF")


def test_unmodified_bases_are_accepted(bases, pool):
    """The bases themselves are accepted (the linked image is scanned; write
    refuses it, with an InputError)."""
    for name, data in bases.items():
        t = pool.run([(name, data)], KNOWN)
        assert t.clean, t.report()
        if not name.startswith("exe:"):
            assert t.accepted + t.known == 1, name


# ----------------------------------------------------------------- hypothesis
def _slots(data: bytes) -> list[tuple[int, str]]:
    """(file offset, struct format) of every field the reader interprets."""
    lay = H.Layout(data)
    out = [(off, fmt) for _n, off, fmt in H.EHDR_FIELDS]
    for s in lay.sections:
        out += [(s.hdr_off + off, fmt) for _n, off, fmt in H.SHDR_FIELDS]
    if lay.symtab:
        for i in range(lay.nsyms):
            base = lay.symtab.offset + i * H.SYM.size
            out += [(base + off, fmt) for _n, off, fmt in H.SYM_FIELDS]
    for r in lay.relas:
        for j in range(r.size // H.RELA.size):
            base = r.offset + j * H.RELA.size
            out += [(base + off, fmt) for _n, off, fmt in H.RELA_FIELDS]
    for s in lay.sections:               # string table bytes
        if s.type == H.SHT_STRTAB:
            out += [(s.offset + k, "B") for k in range(0, s.size, max(1, s.size // 64))]
    return out


def _hypothesis_sweep(name: str, data: bytes, pool, totals):
    slots = _slots(data)
    size = len(data)
    interesting = [0, 1, 2, 3, 4, 8, 16, 24, 64, 0x7F, 0x80, 0xFF, 0xFF00, 0xFFF1, 0xFFFF,
                   size - 1, size, size + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32,
                   1 << 63, (1 << 64) - 1, (1 << 64) - 4]
    value = st.one_of(st.sampled_from(interesting), st.integers(0, (1 << 64) - 1),
                      st.integers(0, 256))
    patch = st.tuples(st.sampled_from(slots), value)
    tally = H.Tally()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(patches=st.lists(patch, min_size=1, max_size=4))
    def run(patches):
        d = bytearray(data)
        for (off, fmt), v in patches:
            struct.pack_into("<" + fmt, d, off, v & H.MAX[fmt])
        label = "hyp[" + ",".join(f"{off:#x}:{fmt}={v:#x}" for (off, fmt), v in patches) + "]"
        t = pool.run([(label, bytes(d))], KNOWN)
        tally.merge(t)
        assert t.clean, t.report()

    run()
    totals.append((f"hypothesis {name}", tally))
    _check(tally, name)


@pytest.mark.slow
@pytest.mark.parametrize("base", ["gas:kinds.o", "gcc-g:demo.o", "ko-stripped:async_memcpy.ko",
                                  "exe:linkprog"])
def test_hypothesis_field_patches(base, bases, pool, totals):
    _hypothesis_sweep(base, bases[base], pool, totals)


# ------------------------------------------------------------- the real CLI
def _cli_sample(bases, pool, stride: int = 1):
    """About 40 mutants per base (every STRIDE-th of them), spread over every
    kind of mutation, that hit no known bug; with their in-process verdict."""
    picked = []
    for name, data in bases.items():
        structural = list(H.structural_mutations(data))
        trunc = list(H.truncations(data))
        flips = list(H.byte_flips(data, 10, seed=7))
        cands = structural[::max(1, len(structural) // 25)] + trunc[::max(1, len(trunc) // 8)] \
            + flips
        for case_name, mutant in cands[::stride]:
            picked.append((f"{name} {case_name}", mutant))
    verdicts = {}

    def hook(n, _d, res):
        verdicts[n] = res
    pool.run(picked, KNOWN, hook=hook)
    return [(n, d, verdicts[n]) for n, d in picked if verdicts[n]["status"] != "bug"]


def _lines_for(stderr: str, path: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(f"scall-objtool: error: {path}: ")]


@pytest.mark.slow
def test_cli_on_mutants(bases, pool, totals, tmp_path):
    """One `scan --format json` and one `write` over a few hundred mutants:
    every input is either processed or named by exactly one error line; no
    internal error, no traceback; failed inputs are byte-identical; nothing
    left behind.  Then single-file runs: exit 0, or exit 2 with one line."""
    _cli_on_mutants(_cli_sample(bases, pool), totals, tmp_path, "CLI mutants")


def test_cli_on_mutants_sample(bases, pool, totals, tmp_path):
    """The everyday run's sample of test_cli_on_mutants: every SAMPLE_STRIDE-th
    mutant."""
    _cli_on_mutants(_cli_sample(bases, pool, SAMPLE_STRIDE), totals, tmp_path,
                    "CLI mutants (sample)")


def _cli_on_mutants(sample, totals, tmp_path, label: str):
    d = tmp_path / "m"
    d.mkdir()
    files = []
    for k, (_n, data, _v) in enumerate(sample):
        p = d / f"m{k:04d}.o"
        p.write_bytes(data)
        files.append(p)
    tally = H.Tally()
    problems = []

    res = run_cli("scan", "--format", "json", *files, timeout=600)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    report = json.loads(res.stdout)
    scanned = {o["path"] for o in report["objects"]}
    for (n, data, _v), p in zip(sample, files):
        errs = _lines_for(res.stderr, str(p))
        if str(p) in scanned:
            if errs:
                problems.append(f"scan: {n}: processed and an error line: {errs}")
        elif len(errs) != 1:
            problems.append(f"scan: {n}: not processed, {len(errs)} error lines")
    other = [ln for ln in res.stderr.splitlines()
             if not ln.startswith(("scall-objtool: error: ", "scall-objtool: warning: "))]
    if other:
        problems.append(f"scan: unexpected stderr lines: {other[:5]}")
    assert res.rc == (2 if len(scanned) < len(files) else 0)

    res = run_cli("write", "--policy", "kernel", "--module", *files, timeout=600)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    out_lines = res.stdout.splitlines()
    for (n, data, _v), p in zip(sample, files):
        errs = _lines_for(res.stderr, str(p))
        done = [ln for ln in out_lines if ln.startswith(f"{p}: ")]
        tally.cases += 1
        if errs:
            tally.rejected += 1
            if len(errs) != 1 or done:
                problems.append(f"write: {n}: {len(errs)} error lines, {len(done)} results")
            if p.read_bytes() != data:
                tally.changed_inputs += 1
                problems.append(f"write: {n}: failed but changed the input")
        else:
            tally.accepted += 1
            if len(done) != 1:
                problems.append(f"write: {n}: no error and {len(done)} result lines")
    left = sorted(x.name for x in d.iterdir() if x.name not in {f.name for f in files})
    if left:
        tally.leftovers += len(left)
        problems.append(f"left behind: {left}")

    # single-file runs, through both the fast path and typer
    for k, ((n, data, _v), p) in enumerate(zip(sample[::12], files[::12])):
        q = tmp_path / f"single{k}.o"
        q.write_bytes(data)
        env = {"SCALL_OBJTOOL_NO_FASTPATH": "1"} if k % 2 else None
        for args in (["scan"], ["write"]):
            r = run_cli(*args, q, env=env)
            tally.cases += 1
            errs = r.stderr.splitlines()
            if r.rc == 0:
                tally.accepted += 1
                bad = [e for e in errs if not e.startswith("scall-objtool: warning: ")]
                if bad:
                    problems.append(f"{args} {n}: exit 0 with stderr {bad}")
            elif r.rc == 2:
                tally.rejected += 1
                if len(errs) != 1 or not errs[0].startswith(f"scall-objtool: error: {q}: "):
                    problems.append(f"{args} {n}: exit 2 with stderr {errs}")
                if q.read_bytes() != data:
                    tally.changed_inputs += 1
                    problems.append(f"{args} {n}: failed but changed the input")
            else:
                problems.append(f"{args} {n}: exit {r.rc}: {r.stderr}")
            if "Traceback" in r.stderr or "internal error" in r.stderr:
                tally.tracebacks += 1
            q.write_bytes(data)
        q.unlink()
    totals.append((label, tally))
    assert not problems, "\n".join(problems[:20])
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m"]


# --------------------------------------------------------- archives (inputs)
def test_archive_header_mutations(tmp_path, totals):
    """The ar reader behind `scan lib.a`: only InputError for any mutant."""
    import random
    import subprocess

    from scall_objtool.errors import ScallError
    from scall_objtool.inputs import archive_members
    for o in ("kinds.o", "demo.o"):
        shutil.copy(PREBUILT / o, tmp_path / o)
    lib = tmp_path / "lib.a"
    subprocess.run(["ar", "rcs", str(lib), str(tmp_path / "kinds.o"), str(tmp_path / "demo.o")],
                   check=True, cwd=tmp_path)
    data = lib.read_bytes()
    assert len(archive_members(str(lib), data)) == 2
    rng = random.Random(3)
    tally = H.Tally()
    bugs = []
    heads = [8]
    pos = 8
    while pos + 60 <= len(data):
        size = int(data[pos + 48:pos + 58])
        pos += 60 + size
        pos += pos & 1
        heads.append(pos)
    mutants = [data[:k] for k in sorted({*range(0, 80), *heads, *(h + 59 for h in heads)})]
    for _ in range(1500):
        d = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            h = rng.choice(heads[:-1]) if heads[:-1] else 8
            p = min(len(d) - 1, h + rng.randrange(60))
            d[p] = rng.choice(b"0123456789 /`\n#-\xff\x00")
        mutants.append(bytes(d))
    for m in mutants:
        tally.cases += 1
        try:
            archive_members(str(lib), m)
            tally.accepted += 1
        except ScallError:
            tally.rejected += 1
        except Exception as e:  # noqa: BLE001
            tally.tracebacks += 1
            bugs.append(f"{type(e).__name__}: {e}")
    totals.append(("archive headers", tally))
    assert not bugs, (tally.line("archive"), bugs[:5])


# ------------------------------------ regressions: bugs the sweep found
def _section_symbol_value_huge() -> bytes:
    """staticcall-O2.o with the .text section symbol's st_value = 2**64-1."""
    d = bytearray((PREBUILT / "staticcall-O2.o").read_bytes())
    lay = H.Layout(bytes(d))
    idx = next(i for i in range(lay.nsyms)
               if (lay.sym(i)[1] & 0xF) == 3 and lay.sym(i)[3] == 1)     # STT_SECTION .text
    struct.pack_into("<Q", d, lay.symtab.offset + idx * 24 + 8, (1 << 64) - 1)
    return bytes(d)


def test_section_symbol_value_near_2_64(tmp_path):
    """Found by the sweep: write died in emit.render with struct.error
    ('internal error: error: argument out of range') when the section
    symbol's st_value made the addr addend overflow (fuzz_repro/secsym-value-huge.o)."""
    p = tmp_path / "secsym.o"
    data = _section_symbol_value_huge()
    assert data == (REPRO / "secsym-value-huge.o").read_bytes()
    p.write_bytes(data)
    res = run_cli("write", p)
    assert "internal error" not in res.stderr, res.stderr
    assert res.rc in (0, 2)
    if res.rc == 2:
        assert p.read_bytes() == data


def _added_key_hostile() -> bytes:
    """kinds.o with the missing key's trampoline renamed __SCT__ba\\x7f: the
    key __SCK__ba\\x7f is added, and its warning names it."""
    data = (PREBUILT / "kinds.o").read_bytes()
    assert data.count(b"__SCT__bar\0") == 1
    return data.replace(b"__SCT__bar\0", b"__SCT__ba\x7f\0")


def test_added_key_warning_is_escaped(tmp_path):
    """Found by the sweep: the 'key K is not in the object; added' warning
    carried the key name raw (fuzz_repro/key-warning-newline.o has a newline
    in it: the warning was split over two lines)."""
    for data in (_added_key_hostile(), (REPRO / "key-warning-newline.o").read_bytes()):
        p = tmp_path / "key.o"
        p.write_bytes(data)
        res = run_cli("write", "--policy", "kernel", "-o", tmp_path / "out.o", p)
        assert res.rc == 0, res.stderr
        lines = res.stderr.splitlines()
        assert len(lines) == 1 and "__SCK__ba" in lines[0] and "added" in lines[0], lines
        assert lines[0].isprintable(), repr(lines[0])


# ------------------------------------------------ issue 10: the new classes
# NOBITS and oversized sizes, sections that only carry the table's name,
# shared DWARF line programs, thin archives, outputs that are devices, FIFOs
# or the input itself, and hostile JSON reports.  The byte-level classes go
# through check_bytes (which now also runs verify on anything with a table
# and checks that no code section is lost by a write).
@pytest.fixture(scope="module")
def small_bases(tmp_path_factory) -> dict[str, bytes]:
    """kinds.o as gas writes it, and as this tool writes it (with a table)."""
    d = tmp_path_factory.mktemp("small-bases")
    w = d / "written-kinds.o"
    w.write_bytes((PREBUILT / "kinds.o").read_bytes())
    assert run_cli("write", "-q", w).rc == 0
    return {"gas:kinds.o": (PREBUILT / "kinds.o").read_bytes(),
            "written:kinds.o": w.read_bytes()}


@pytest.mark.parametrize("base", ["gas:kinds.o", "written:kinds.o"])
def test_nobits_and_oversized_sizes(base, small_bases, pool, totals):
    cases = list(H.nobits_and_size_mutations(small_bases[base]))
    tally = pool.run(cases, KNOWN)
    totals.append((f"NOBITS/oversized sizes {base}", tally))
    _check(tally, base)
    assert tally.cases == len(cases) and tally.rejected > 0


@pytest.mark.slow
@pytest.mark.parametrize("base", BASE_NAMES)
def test_nobits_and_oversized_sizes_all_bases(base, bases, pool, totals):
    tally = pool.run(H.nobits_and_size_mutations(bases[base]), KNOWN)
    totals.append((f"NOBITS/oversized sizes {base}", tally))
    _check(tally, base)


def test_sections_named_like_the_table(small_bases, pool, totals):
    """.text, .symtab, .strtab, .shstrtab ... renamed .static_call_sites: the
    table is recognised by its structure; --force never drops code."""
    cases = list(H.table_name_mutations(small_bases["written:kinds.o"]))
    assert len(cases) > 10
    tally = pool.run(cases, KNOWN)
    totals.append(("table-name impostors written:kinds.o", tally))
    _check(tally, "table-name impostors")


@pytest.mark.slow
@pytest.mark.parametrize("base", ["ko:async_memcpy.ko", "written:async_memcpy.ko"])
def test_sections_named_like_the_table_modules(base, bases, pool, totals):
    tally = pool.run(H.table_name_mutations(bases[base]), KNOWN)
    totals.append((f"table-name impostors {base}", tally))
    _check(tally, base)


def _assemble_text(src: str, out: Path) -> bytes:
    s = out.with_suffix(".s")
    s.write_text(src)
    import subprocess
    subprocess.run(["as", "--64", "-o", str(out), str(s)], check=True, capture_output=True)
    return out.read_bytes()


@pytest.mark.parametrize("units,rows", [(400, 20000)])
def test_shared_dwarf_line_programs(units, rows, pool, totals, tmp_path):
    """Compile units sharing one line program: within the worker's 1 GiB and
    the per-case timeout (units x rows decoded rows would not be)."""
    data = _assemble_text(H.dwarf_shared_lines_source(units, rows), tmp_path / "shared.o")
    assert len(data) < 200_000
    tally = pool.run([(f"shared-lines {units}x{rows}", data)], KNOWN)
    totals.append((f"shared DWARF line programs {units}x{rows}", tally))
    _check(tally, "shared DWARF line programs")
    assert tally.accepted == 1


def test_crafted_cost_objects(pool, totals, tmp_path):
    """Issue 23's crafted costs -- a 400 KB name over 4000 sites, 12000 nested
    inline DIEs over 12000 sites, 400 KB LEB128s in .debug_info and
    .debug_line -- each within the worker's 1 GiB and the per-case timeout
    (653ef3c: 4.7 GB, 1.6 GB, 8.5 s)."""
    cases = [("long-name 400000x4000", H.long_name(400_000, 4000)),
             ("inline-nest 12000x12000", H.inline_nest(12_000, 12_000)),
             ("leb128-info 400000", H.long_leb(400_000, "info")),
             ("leb128-line 400000", H.long_leb(400_000, "line"))]
    data = [(label, _assemble_text(src, tmp_path / f"c{i}.o"))
            for i, (label, src) in enumerate(cases)]
    tally = pool.run(data, KNOWN)
    totals.append(("crafted cost (issue 23)", tally))
    _check(tally, "crafted cost objects")
    assert tally.accepted == len(cases)


def _thin_cases(tmp_path: Path) -> list[tuple[str, list[str]]]:
    src = tmp_path / "src"
    src.mkdir()
    obj = src / "k.o"
    obj.write_bytes((PREBUILT / "kinds.o").read_bytes())
    return [("relative", ["../src/k.o"]),
            ("absolute", [str(obj)]),
            ("both", ["../src/k.o", str(obj)]),
            ("missing", ["../src/nope.o"]),
            ("directory", ["../src"]),
            ("dev-zero", ["/dev/zero"]),
            ("itself", ["t.a"])]


def test_thin_archives(tmp_path, totals):
    """A thin archive's members live elsewhere: scan reads them, write is exit 2
    and touches nothing -- neither the archive nor any member."""
    cases = _thin_cases(tmp_path)
    lib = tmp_path / "lib"
    lib.mkdir()
    obj = tmp_path / "src" / "k.o"
    orig = obj.read_bytes()
    problems = []
    for label, names in cases:
        for sizes in ([len(orig)] * len(names), [1 << 40] * len(names)):
            ar = lib / "t.a"
            ar.write_bytes(H.thin_archive(names, sizes))
            ar_bytes = ar.read_bytes()
            commands = ([["scan"], ["write"], ["write", "--force"], ["verify"]]
                        if sizes[0] == len(orig) else [["scan"], ["write"]])
            for args in commands:
                r = run_cli(*args, ar, cwd=lib, timeout=60)
                what = f"{' '.join(args)} thin[{label}, size {sizes[0]}]"
                if "Traceback" in r.stderr or r.rc not in (0, 1, 2):
                    problems.append(f"{what}: rc {r.rc}: {r.stderr[-300:]}")
                if args[0] == "write" and r.rc != 2:
                    problems.append(f"{what}: exit {r.rc}, expected 2")
                if obj.read_bytes() != orig or ar.read_bytes() != ar_bytes:
                    problems.append(f"{what}: changed a member or the archive")
                    obj.write_bytes(orig)
                leftovers = sorted(set(os.listdir(lib)) - {"t.a"}) + sorted(
                    set(os.listdir(obj.parent)) - {"k.o"})
                if leftovers:
                    problems.append(f"{what}: left {leftovers}")
    assert not problems, "\n".join(problems)


def _output_targets(tmp_path: Path, obj: Path):
    """(label, path, checker) of outputs that are not new regular files."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    yield "fifo", fifo, lambda: fifo.is_fifo()
    dev = tmp_path / "null"
    try:
        os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))     # a private /dev/null
    except (PermissionError, OSError):
        pass
    else:
        yield "char-device", dev, lambda: dev.is_char_device()
    yield "the-input", obj, None
    link = tmp_path / "hardlink.o"
    os.link(obj, link)
    yield "hard-link-to-input", link, None


@pytest.mark.parametrize("command", [["scan"], ["scan", "--format", "json"], ["verify"],
                                     ["check", "--format", "sarif"], ["write"]],
                         ids=["scan", "scan-json", "verify", "check-sarif", "write"])
def test_outputs_that_are_devices_fifos_or_inputs(command, tmp_path):
    obj = tmp_path / "k.o"
    obj.write_bytes((PREBUILT / "kinds.o").read_bytes())
    if command[0] == "verify":
        assert run_cli("write", "-q", obj).rc == 0
    orig = obj.read_bytes()
    problems = []
    for label, target, still in _output_targets(tmp_path, obj):
        reader = os.open(target, os.O_RDONLY | os.O_NONBLOCK) if label == "fifo" else None
        try:
            r = run_cli(*command, "-o", target, obj, timeout=60)
        finally:
            got = b""
            if reader is not None:
                try:
                    got = os.read(reader, 1 << 20)
                except BlockingIOError:
                    pass
                os.close(reader)
        what = f"{' '.join(command)} -o {label}"
        if "Traceback" in r.stderr:
            problems.append(f"{what}: traceback")
        if still is not None:
            if not still():
                problems.append(f"{what}: the {label} was replaced by a regular file")
            if label == "fifo" and r.rc in (0, 1) and not got:
                problems.append(f"{what}: nothing reached the FIFO")
            if obj.read_bytes() != orig:
                problems.append(f"{what}: the input changed")
        elif command[0] != "write" or label != "the-input":
            # an output that is an input (same inode) is refused; write -o X X is
            # the in-place write and allowed
            if r.rc != 2 or obj.read_bytes() != orig:
                problems.append(f"{what}: rc {r.rc}, input "
                                f"{'unchanged' if obj.read_bytes() == orig else 'CHANGED'}")
        obj.write_bytes(orig)
        left = [n for n in os.listdir(tmp_path) if n.endswith(H.TEMP_GLOB[2:])]
        if left:
            problems.append(f"{what}: left {left}")
    empty = run_cli(*command, "-o", "", obj)
    if empty.rc != 2 or obj.read_bytes() != orig:
        problems.append(f"{' '.join(command)} -o '': rc {empty.rc}")
    assert not problems, "\n".join(problems)


def test_hostile_reports(tmp_path, totals):
    """Every variant of a report is read by load_report and by the dashboard's
    reader: only an InputError (one printable line) may come out; a sample goes
    through the CLI (exit 2, every stderr line printable)."""
    from scall_objtool.errors import InputError
    from scall_objtool.report.dashboard import dashboard_from_files
    from scall_objtool.report.jsondoc import load_report
    obj = tmp_path / "k.o"
    obj.write_bytes((PREBUILT / "kinds.o").read_bytes())
    r = run_cli("scan", "--format", "json", obj)
    doc = json.loads(r.stdout)
    good = tmp_path / "good.json"
    good.write_text(r.stdout)
    load_report(str(good))
    problems = []
    tally = H.Tally()
    cases = list(H.hostile_reports(doc))
    for label, text in cases:
        p = tmp_path / "bad.json"
        p.write_text(text, errors="surrogateescape")
        try:
            load_report(str(p))
            tally.add(label, {"status": "accepted"}, {})
        except InputError as e:
            tally.add(label, {"status": "rejected"}, {})
            if not str(e).isprintable():
                problems.append(f"{label}: message not one printable line: {str(e)!r}")
        except Exception as e:  # noqa: BLE001
            problems.append(f"{label}: {type(e).__name__}: {e}"[:300])
        try:
            dashboard_from_files([str(p)])
        except InputError as e:
            if not str(e).isprintable():
                problems.append(f"dashboard {label}: message not one printable line: "
                                f"{str(e)!r}")
        except Exception as e:  # noqa: BLE001
            problems.append(f"dashboard {label}: {type(e).__name__}: {e}"[:300])
    totals.append(("hostile JSON reports", tally))
    assert tally.rejected > 0.8 * len(cases), tally.line("reports")
    sample = cases[::29] + [c for c in cases if c[0].startswith(("key-in:", "names:"))][::3]
    for label, text in sample:
        p = tmp_path / "bad.json"
        p.write_text(text, errors="surrogateescape")
        for args in (["diff", good, p], ["diff", p, good], ["check", "--baseline", p, obj],
                     ["dashboard", p]):
            r = run_cli(*args)
            if "Traceback" in r.stderr or r.rc not in (0, 1, 2):
                problems.append(f"{args[0]} {label}: rc {r.rc} {r.stderr[-200:]}")
            if r.rc == 2 and len(r.stderr.splitlines()) != 1:
                problems.append(f"{args[0]} {label}: stderr {r.stderr!r}"[:300])
            if not all(ln.isprintable() for ln in r.stderr.splitlines()):
                problems.append(f"{args[0]} {label}: raw stderr {r.stderr!r}"[:300])
    assert not problems, "\n".join(problems)
