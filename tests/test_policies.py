"""The crossing rule, the seed/kernel policies and their options, and what
`write` does with them (keys, existing tables, --dry-run, --backup, -o),
on testdata/src/crossing.S and kinds.S (fresh and prebuilt objects)."""
from __future__ import annotations

import subprocess

import pytest

from scall_testlib import (PREBUILT, assert_error_line, by_pos, copy, crossing,
                           effective_alignment, expected_table, read_table, read_table_raw,
                           scan_lib, section_bytes, section_names, sections, sites_of, symbol,
                           symbols, write_lib, write_ok)

K = "__SCK__foo"

# (section, offset) -> (kind, length, crossing at C=64, crossing at C=32,
#                       crossing with --assume-align 64)
CROSSING = {
    (".text", 0x000): ("call", 5, "never", "never", "never"),
    (".text", 0x03b): ("call", 5, "never", "never", "never"),
    (".text", 0x07c): ("call", 5, "always", "always", "always"),
    (".text", 0x0bf): ("call", 5, "always", "always", "always"),
    (".text", 0x11e): ("call", 5, "never", "always", "never"),
    (".text", 0x17d): ("tail", 5, "always", "always", "always"),
    (".text", 0x1c0): ("tail", 5, "never", "never", "never"),
    (".text", 0x23a): ("jcc-tail", 6, "never", "never", "never"),
    (".text", 0x27b): ("jcc-tail", 6, "always", "always", "always"),
    (".text", 0x2fb): ("prefixed-call", 6, "always", "always", "always"),
    (".text.a16", 0x00b): ("call", 5, "never", "never", "never"),
    (".text.a16", 0x01c): ("call", 5, "depends", "depends", "never"),
    (".text.a16", 0x03c): ("call", 5, "depends", "depends", "always"),
    (".text.a16", 0x04f): ("call", 5, "depends", "depends", "never"),
    (".text.a1", 0x000): ("call", 5, "depends", "depends", "never"),
    (".text.a1", 0x03e): ("call", 5, "depends", "depends", "always"),
    (".text.a1", 0x083): ("call", 5, "depends", "depends", "never"),
}
ALIGN = {".text": 64, ".text.a16": 16, ".text.a1": 1}
TAILS = {(".text", 0x17d), (".text", 0x1c0), (".text", 0x23a), (".text", 0x27b)}


@pytest.fixture(params=["src", "prebuilt"])
def crossing_obj(request, build, tmp_path):
    if request.param == "src":
        return build("crossing.S")
    return copy(PREBUILT / "crossing.o", tmp_path / "crossing-prebuilt.o")


@pytest.fixture(params=["src", "prebuilt"])
def kinds_obj(request, build, tmp_path):
    if request.param == "src":
        return build("kinds.S")
    return copy(PREBUILT / "kinds.o", tmp_path / "kinds-prebuilt.o")


# The write tests below that are not about the objects themselves run on
# freshly assembled ones only (test_write_table covers the prebuilt ones).
@pytest.fixture
def crossing_w(build):
    return build("crossing.S")


@pytest.fixture
def kinds_w(build):
    return build("kinds.S")


def test_expectations_follow_the_rule(crossing_obj):
    """Guard the table above against the rule itself and the object."""
    secs = sections(crossing_obj)
    for name, align in ALIGN.items():
        assert secs[name]["align"] == align
    for (sec, off), (_kind, length, c64, c32, a64) in CROSSING.items():
        assert crossing(off, length, secs[sec]["align"]) == c64
        assert crossing(off, length, secs[sec]["align"], cache_line=32) == c32
        assert crossing(off, length, secs[sec]["align"], assume_align=64) == a64
    assert {v[2] for v in CROSSING.values()} == {"never", "always", "depends"}


@pytest.mark.parametrize("opts,col,cl,aa", [
    ([], 2, 64, None),
    (["--cache-line", "32"], 3, 32, None),
    (["--assume-align", "64"], 4, 64, 64),
    (["--assume-align", "16"], None, 64, 16),  # raises .text.a1 to 16, leaves .text at 64
])
def test_crossing(crossing_obj, opts, col, cl, aa):
    rep = scan_lib(*opts, crossing_obj)
    got = by_pos(rep)
    assert set(got) == set(CROSSING)
    for pos, exp in CROSSING.items():
        s = got[pos]
        assert (s["kind"], s["length"]) == exp[:2], pos
        want = exp[col] if col else crossing(pos[1], exp[1], ALIGN[pos[0]], cl, aa)
        assert s["crossing"] == want, (pos, opts)
        assert s["alignment"] == effective_alignment(ALIGN[pos[0]], cl, aa), (pos, opts)
        assert s["trampoline"] == "__SCT__foo" and s["key"] == K
    assert rep["policy"]["cache_line"] == cl
    assert rep["policy"]["assume_align"] == aa


def test_always_boundary(crossing_obj):
    """(o mod g) + L == C is not yet "always": with a line of 8 and the
    sections 4-aligned, a 5-byte call at 131 % 4 = 3 (3 + 5 = 8) may fit."""
    rep = scan_lib("--cache-line", "8", "--assume-align", "4", crossing_obj)
    got = by_pos(rep)
    s = got[(".text.a1", 0x083)]
    assert (s["alignment"], s["crossing"]) == (4, "depends")
    for pos, s in got.items():
        assert s["alignment"] == effective_alignment(ALIGN[pos[0]], 8, 4)
        assert s["crossing"] == crossing(pos[1], s["length"], ALIGN[pos[0]], 8, 4), pos
    # .text (g = 8): 0x03b % 8 = 3 -> 3 + 5 = 8 fits; 0x07c % 8 = 4 -> always
    assert got[(".text", 0x03b)]["crossing"] == "never"
    assert got[(".text", 0x07c)]["crossing"] == "always"


def test_prefixed_site_offset_includes_prefix(crossing_obj):
    s = by_pos(scan_lib(crossing_obj))[(".text", 0x2fb)]
    assert s["prefixes"] == "2e" and s["length"] == 6
    assert section_bytes(crossing_obj, ".text")[0x2fb:0x2fd] == b"\x2e\xe8"


SEED_REASONS = {
    (".text", 0x000): None, (".text", 0x03b): None,
    (".text", 0x07c): "crosses-cache-line", (".text", 0x0bf): "crosses-cache-line",
    (".text", 0x11e): None,
    (".text", 0x17d): "tail-call", (".text", 0x1c0): "tail-call",
    (".text", 0x23a): "conditional-tail-call", (".text", 0x27b): "conditional-tail-call",
    (".text", 0x2fb): "prefixed",
    (".text.a16", 0x00b): None, (".text.a16", 0x01c): "may-cross-cache-line",
    (".text.a16", 0x03c): "may-cross-cache-line", (".text.a16", 0x04f): "may-cross-cache-line",
    (".text.a1", 0x000): "may-cross-cache-line", (".text.a1", 0x03e): "may-cross-cache-line",
    (".text.a1", 0x083): "may-cross-cache-line",
}


def _reasons(rep):
    out = {}
    for pos, s in by_pos(rep).items():
        assert s["patchable"] == (s["reason"] is None), s
        out[pos] = s["reason"]
    return out


def test_seed_policy(crossing_obj):
    rep = scan_lib(crossing_obj)
    assert rep["policy"]["name"] == "seed"
    assert _reasons(rep) == SEED_REASONS
    assert rep["summary"]["patchable"] == 4 and rep["summary"]["fallback"] == 13
    assert rep["summary"]["by_reason"] == {"crosses-cache-line": 2, "tail-call": 2,
                                           "conditional-tail-call": 2, "prefixed": 1,
                                           "may-cross-cache-line": 6}


def test_seed_allow_tail(crossing_obj):
    rep = scan_lib("--allow-tail", crossing_obj)
    want = dict(SEED_REASONS)
    want[(".text", 0x1c0)] = None                       # never crosses: patchable
    want[(".text", 0x17d)] = "crosses-cache-line"       # always crosses
    assert _reasons(rep) == want                        # jcc-tail stays fallback
    assert rep["policy"]["allow_tail"] is True


def test_seed_assume_align(crossing_obj):
    rep = scan_lib("--assume-align", "64", crossing_obj)
    want = dict(SEED_REASONS)
    want.update({(".text.a16", 0x01c): None, (".text.a16", 0x03c): "crosses-cache-line",
                 (".text.a16", 0x04f): None, (".text.a1", 0x000): None,
                 (".text.a1", 0x03e): "crosses-cache-line", (".text.a1", 0x083): None})
    assert _reasons(rep) == want


def test_seed_cache_line_32(crossing_obj):
    rep = scan_lib("--cache-line", "32", crossing_obj)
    want = dict(SEED_REASONS)
    want[(".text", 0x11e)] = "crosses-cache-line"
    assert _reasons(rep) == want


def test_kernel_policy(crossing_obj, kinds_obj):
    rep = scan_lib("--policy", "kernel", crossing_obj)
    assert rep["policy"]["name"] == "kernel"
    assert all(r is None for r in _reasons(rep).values())
    assert rep["summary"]["patchable"] == 17
    rep = scan_lib("--policy", "kernel", kinds_obj)
    for s in sites_of(rep):
        if s["kind"] == "indirect":
            assert not s["patchable"] and s["reason"] == "indirect"
        else:
            assert s["patchable"] and s["reason"] is None, s
    assert rep["summary"]["patchable"] == 8 and rep["summary"]["by_reason"] == {"indirect": 2}


def test_kinds_seed_allow_tail(kinds_obj):
    rep = scan_lib("--allow-tail", kinds_obj)
    patchable = {s["offset"]: s["kind"] for s in sites_of(rep) if s["patchable"]}
    assert patchable == {0x00: "call", 0x10: "tail", 0xa0: "call", 0xa5: "tail"}
    reasons = {s["offset"]: s["reason"] for s in sites_of(rep)}
    assert reasons[0x22] == "conditional-tail-call"


def test_policy_block(kinds_obj):
    rep = scan_lib("--policy", "kernel", "--allow-tail", "--cache-line", "128",
               "--assume-align", "32", "--module", "--tramp-prefix", "__SCT__",
               "--key-prefix", "__SCK__", kinds_obj)
    pol = rep["policy"]
    assert (pol["name"], pol["allow_tail"], pol["cache_line"], pol["assume_align"],
            pol["module"]) == ("kernel", True, 128, 32, True)
    assert all(s["alignment"] == 32 for s in sites_of(rep))


# ------------------------------------------------------------------- write
def _tab(entries, key=K):
    return sorted((sec, off, key, 1 if (sec, off) in TAILS else 0) for sec, off in entries)


SEED_TABLE = _tab([(".text", 0), (".text", 0x3b), (".text", 0x11e), (".text.a16", 0xb)])


@pytest.mark.parametrize("opts,want", [
    ([], SEED_TABLE),
    (["--allow-tail"], sorted(SEED_TABLE + _tab([(".text", 0x1c0)]))),
    (["--assume-align", "64"], sorted(SEED_TABLE + _tab(
        [(".text.a16", 0x1c), (".text.a16", 0x4f), (".text.a1", 0), (".text.a1", 0x83)]))),
    (["--cache-line", "32"], [e for e in SEED_TABLE if e[1] != 0x11e]),
    (["--policy", "kernel"], _tab(CROSSING)),
])
def test_write_table(crossing_obj, opts, want):
    rep = scan_lib(*opts, crossing_obj)
    assert expected_table(rep) == want
    write_lib(*opts, crossing_obj)
    assert read_table(crossing_obj) == want
    raw = read_table_raw(crossing_obj)
    secs = sections(crossing_obj)
    assert [(secs[e[0]]["index"], e[1]) for e in raw] == sorted(
        (secs[e[0]]["index"], e[1]) for e in raw), "entries not in (section, offset) order"


def test_write_keeps_code_and_relocations(kinds_w, tmp_path):
    """write adds a table; the code, its relocations (by symbol name) and the
    other sections' contents are unchanged, and binutils accept the result."""
    def relocs(path):
        from elftools.elf.elffile import ELFFile
        from elftools.elf.relocation import RelocationSection
        out = {}
        with open(path, "rb") as f:
            elf = ELFFile(f)
            for sec in elf.iter_sections():
                if isinstance(sec, RelocationSection) and sec.name != ".rela.static_call_sites":
                    st = elf.get_section(sec["sh_link"])
                    out[sec.name] = sorted(
                        (r["r_offset"], r["r_info_type"],
                         st.get_symbol(r["r_info_sym"]).name
                         or elf.get_section(st.get_symbol(r["r_info_sym"])["st_shndx"]).name,
                         r["r_addend"]) for r in sec.iter_relocations())
        return out

    before_names = section_names(kinds_w)
    before = {n: section_bytes(kinds_w, n) for n in (".text", ".data", ".static_call.text",
                                                       ".text.local")}
    before_rel = relocs(kinds_w)
    write_lib("--policy", "kernel", kinds_w)
    for n, data in before.items():
        assert section_bytes(kinds_w, n) == data, n
    assert relocs(kinds_w) == before_rel
    after_names = section_names(kinds_w)
    assert set(after_names) - set(before_names) == {".static_call_sites", ".rela.static_call_sites"}
    # symtab: every LOCAL before sh_info, every non-LOCAL from it on
    from elftools.elf.elffile import ELFFile
    with open(kinds_w, "rb") as f:
        st = ELFFile(f).get_section_by_name(".symtab")
        first_global = st["sh_info"]
        binds = [s["st_info"]["bind"] for s in st.iter_symbols()]
    assert all(b == "STB_LOCAL" for b in binds[:first_global])
    assert all(b != "STB_LOCAL" for b in binds[first_global:])
    r = subprocess.run(["readelf", "-a", "-W", str(kinds_w)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    linked = tmp_path / "linked.o"
    r = subprocess.run(["ld", "-r", "-o", str(linked), str(kinds_w)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    # (ld -r keeps the table and its relocations, but not its sh_entsize)
    assert read_table(linked, check_entsize=False) == read_table(kinds_w)


KINDS_KERNEL = [(".text", 0x00, "__SCK__foo", 0), (".text", 0x10, "__SCK__foo", 1),
                (".text", 0x22, "__SCK__bar", 1), (".text", 0x30, "__SCK__foo", 0),
                (".text", 0x40, "__SCK__foo", 0), (".text", 0x6e, "__SCK__bar", 0),
                (".text", 0xa0, "__SCK__baz", 0), (".text", 0xa5, "__SCK__baz", 1)]


def test_missing_key_is_added_as_undefined_global(kinds_w):
    assert symbol(kinds_w, "__SCK__bar") is None
    write_lib("--policy", "kernel", kinds_w)
    sym = symbol(kinds_w, "__SCK__bar")
    assert sym is not None and sym["bind"] == "STB_GLOBAL" and sym["shndx"] == "SHN_UNDEF"
    out = subprocess.run(["readelf", "-s", "-W", str(kinds_w)], check=True,
                         capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.split()[-1:] == ["__SCK__bar"]]
    assert len(line) == 1 and "GLOBAL" in line[0].split() and "UND" in line[0].split()
    assert read_table(kinds_w) == KINDS_KERNEL
    # keys that were there are used as they are, not duplicated
    assert [s["name"] for s in symbols(kinds_w)].count("__SCK__foo") == 1


def test_seed_write_adds_only_needed_keys(kinds_w):
    write_lib(kinds_w)
    assert read_table(kinds_w) == [(".text", 0x00, "__SCK__foo", 0),
                                     (".text", 0xa0, "__SCK__baz", 0)]
    assert symbol(kinds_w, "__SCK__bar") is None      # no bar site is written


def test_assume_align_makes_bar_call_patchable(kinds_w):
    # f_refs's call __SCT__bar at 0x6e: 0x6e % 64 = 46 -> never with 64
    write_lib("--assume-align", "64", kinds_w)
    assert read_table(kinds_w) == [(".text", 0x00, "__SCK__foo", 0),
                                     (".text", 0x6e, "__SCK__bar", 0),
                                     (".text", 0xa0, "__SCK__baz", 0)]
    assert symbol(kinds_w, "__SCK__bar")["shndx"] == "SHN_UNDEF"


def test_module_points_missing_key_at_trampoline(kinds_w):
    write_lib("--policy", "kernel", "--module", kinds_w)
    want = sorted((sec, off, "__SCT__bar" if key == "__SCK__bar" else key, fl)
                  for sec, off, key, fl in KINDS_KERNEL)
    assert read_table(kinds_w) == want
    assert symbol(kinds_w, "__SCK__bar") is None


def test_strict_keys(cli, kinds_w, crossing_w):
    before = kinds_w.read_bytes()
    r = cli("write", "--policy", "kernel", "--strict-keys", kinds_w)
    line = assert_error_line(r, kinds_w)
    assert "__SCK__bar" in line
    assert kinds_w.read_bytes() == before
    # with every key present --strict-keys is no obstacle
    write_lib("--policy", "kernel", "--strict-keys", crossing_w)
    assert read_table(crossing_w) == _tab(CROSSING)


def test_existing_table_is_left_alone_then_forced(cli, crossing_w):
    write_lib("--policy", "kernel", crossing_w)
    first = crossing_w.read_bytes()
    table = read_table(crossing_w)
    rep = scan_lib(crossing_w)
    assert rep["objects"][0]["existing_table"] == {"entries": 17}
    r = write_ok(cli, "--policy", "kernel", crossing_w)
    warns = [l for l in r.stderr.splitlines()
             if l.startswith(f"scall-objtool: warning: {crossing_w}: ")]
    assert warns, r.stderr
    assert crossing_w.read_bytes() == first
    # --force: the same options give the same table, once
    write_lib("--policy", "kernel", "--force", crossing_w)
    assert read_table(crossing_w) == table
    assert section_names(crossing_w).count(".static_call_sites") == 1
    # --force with another policy really replaces the table
    write_lib("--force", crossing_w)
    assert read_table(crossing_w) == SEED_TABLE


def test_dry_run(cli, crossing_w):
    before = crossing_w.read_bytes()
    write_ok(cli, "--dry-run", "--policy", "kernel", crossing_w)
    assert crossing_w.read_bytes() == before
    assert not crossing_w.with_name(crossing_w.name + ".orig").exists()


def test_backup(cli, crossing_w):
    before = crossing_w.read_bytes()
    write_ok(cli, "--backup", crossing_w)
    orig = crossing_w.with_name(crossing_w.name + ".orig")
    assert orig.read_bytes() == before
    assert read_table(crossing_w) == SEED_TABLE
    assert read_table(orig) is None


def test_output_file(cli, crossing_w, tmp_path):
    before = crossing_w.read_bytes()
    out = tmp_path / "out.o"
    write_ok(cli, "-o", out, crossing_w)
    assert crossing_w.read_bytes() == before
    assert read_table(out) == SEED_TABLE


def test_output_file_takes_one_input(cli, build, tmp_path):
    a, b = build("crossing.S"), build("kinds.S")
    ba, bb = a.read_bytes(), b.read_bytes()
    r = cli("write", "-o", tmp_path / "out.o", a, b)
    assert r.rc == 2 and "Traceback" not in r.stderr
    assert a.read_bytes() == ba and b.read_bytes() == bb
    assert not (tmp_path / "out.o").exists()


def test_write_several_in_place(cli, build):
    a, b = build("crossing.S"), build("kinds.S")
    write_ok(cli, "--policy", "kernel", a, b)
    assert read_table(a) == _tab(CROSSING)
    assert read_table(b) == KINDS_KERNEL


def test_bad_input_does_not_stop_the_others(cli, build, tmp_path):
    good = build("crossing.S")
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"\x7fELF" + b"\0" * 60)
    r = cli("write", bad, good)
    assert_error_line(r, bad)
    assert read_table(good) == SEED_TABLE
