"""The module loader's layout model (scall_objtool/core/placement.py) on small
module-like objects assembled from testdata/src/modlayout.S, and its effect
on the verdicts, the JSON report and `write`; then over Debian's 6.1 module
corpus.

The expected offsets below are worked out by hand from the kernel's rules
(kernel/module/main.c), with the section header order gas gives modlayout.S:

  [1] .text 0x48/16  [3] .data 0x18/8  [4] .bss 0x100/32 (nobits)
  [5] .exit.text 0x9/1  [7] .text.unlikely 0x40/16  [9] .init.text 0x45/1
  [11] .rodata 0x11/32  [12] .modinfo  [13] __versions 0x40/32
  [14] .data..ro_after_init 0x10/8  [15] __jump_table 0x20/8
  [16] .data..percpu 0x8/64  [17] .init.data 0x6/8  [18] .init.rodata 0x3/8
  [19] .exit.data 0x8/8  [20] .gnu.linkonce.this_module 0x380/64
  [21] .note.Linux 0x18/4          (size/sh_addralign)
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from scall_objtool import Options, scan_path, write_path
from scall_objtool.core.elf import open_elf
from scall_objtool.core.pipeline import scan_elf
from scall_objtool.core.placement import (is_module, layout, loader_flags, module_info, model_for,
                                          plan)
from scall_objtool.errors import UsageError
from scall_objtool.report.jsondoc import scan_doc as to_json, schema

PAGE = 0x1000

# 6.1, mod_unload: (region, offset in region, allocation, offset in allocation)
CORE_61 = {
    # pass 0, text: .exit.text stays in core with mod_unload
    ".text": ("text", 0x000, "core", 0x000),
    ".exit.text": ("text", 0x048, "core", 0x048),            # align 1, right after .text
    ".text.unlikely": ("text", 0x060, "core", 0x060),        # 0x51 rounded up to 16
    # strict_align: 0xa0 -> 0x1000; pass 1, read-only (.modinfo, __versions dropped)
    ".rodata": ("rodata", 0x000, "core", 0x1000),
    ".note.Linux": ("rodata", 0x014, "core", 0x1014),        # 0x1011 rounded up to 4
    # -> 0x2000; pass 2, ro_after_init (both marked by the loader)
    ".data..ro_after_init": ("ro_after_init", 0x000, "core", 0x2000),
    "__jump_table": ("ro_after_init", 0x010, "core", 0x2010),
    # -> 0x3000; pass 3, writable (.data..percpu is allocated per CPU)
    ".data": ("data", 0x000, "core", 0x3000),
    ".bss": ("data", 0x020, "core", 0x3020),                  # 0x3018 rounded up to 32
    ".exit.data": ("data", 0x120, "core", 0x3120),
    ".gnu.linkonce.this_module": ("data", 0x140, "core", 0x3140),   # 0x3128 up to 64
}
INIT_61 = {
    ".init.text": ("init_text", 0x000, "init", 0x000),
    ".init.rodata": ("init_rodata", 0x000, "init", 0x1000),
    ".init.data": ("init_data", 0x000, "init", 0x2000),
}
NOT_LOADED = {".modinfo", "__versions", ".data..percpu", ".note.GNU-stack"}

# 6.1 without mod_unload: .exit* sections are init, in section header order
NOUNLOAD_61 = {
    ".text": ("text", 0x000, "core", 0x000),
    ".text.unlikely": ("text", 0x050, "core", 0x050),        # 0x48 rounded up to 16
    ".exit.text": ("init_text", 0x000, "init", 0x000),       # [5] before [9]
    ".init.text": ("init_text", 0x009, "init", 0x009),
    ".init.rodata": ("init_rodata", 0x000, "init", 0x1000),
    ".init.data": ("init_data", 0x000, "init", 0x2000),
    ".exit.data": ("init_data", 0x008, "init", 0x2008),      # 0x2006 rounded up to 8
    ".gnu.linkonce.this_module": ("data", 0x140, "core", 0x3140),
}

# site function -> (verdict with the 6.1 model, mod_unload; without the model)
SITES = {
    "t_000": ("never", "never"),       # .text+0x0
    "t_03c": ("always", "depends"),    # .text+0x3c: 0x3c+5 > 0x40; align 16 leaves 12+5
    "x_000": ("never", "depends"),     # .exit.text at text+0x48; align 1
    "u_02d": ("never", "depends"),     # .text.unlikely at text+0x60: 0x8d % 64 = 13
    "i_000": ("never", "depends"),     # .init.text at init_text+0
    "i_03e": ("always", "depends"),    # 0x3e+5 > 0x40
}
# without mod_unload: .text.unlikely at 0x50 puts u_02d at 0x7d (61 + 5 > 64);
# .init.text at init_text+9 puts i_03e at 0x47 (7)
SITES_NOUNLOAD = {"t_000": "never", "t_03c": "always", "x_000": "never",
                  "u_02d": "always", "i_000": "never", "i_03e": "never"}


@pytest.fixture
def mod(build):
    """build a variant of modlayout.S: mod("NOUNLOAD", ...)"""
    def _mod(*variants: str) -> Path:
        flags = [a for v in variants for a in ("--defsym", f"{v}=1")]
        return build("modlayout.S", *flags)
    return _mod


def placed_by_name(path: Path, model: str) -> dict[str, tuple]:
    elf = open_elf(str(path))
    lay = layout(elf, model, module_info(elf))
    return {elf.sections[i].name: (p.region, p.offset, p.allocation, p.alloc_offset)
            for i, p in lay.sections.items()}


def verdicts(result) -> dict[str, tuple]:
    return {s.function: (s.crossing, s.placement) for s in result.sites}


def test_recognises_a_module_and_reads_vermagic(mod):
    elf = open_elf(str(mod()))
    assert is_module(elf)
    info = module_info(elf)
    assert (info.release, info.unload, info.smp) == ("6.1.0-50-cloud-amd64", True, True)
    assert model_for(info.release) == "6.1"
    assert model_for("6.12.107+deb12-cloud-amd64") == "6.4"
    assert model_for("6.3.0") == "6.1" and model_for("6.4-rc1") == "6.4"
    assert model_for("5.10.0-30-amd64") is None and model_for("6.13.1") is None
    assert model_for("garbage") is None and model_for(None) is None
    nounload = module_info(open_elf(str(mod("NOUNLOAD"))))
    assert (nounload.release, nounload.unload) == ("6.1.0-50-cloud-amd64", False)
    assert not is_module(open_elf(str(mod("NOTHISMOD"))))


def test_loader_flags(mod):
    elf = open_elf(str(mod()))
    flags = loader_flags(elf, module_info(elf))
    by_name = {s.name: (s.flags, flags[s.index]) for s in elf.sections}
    for name in (".modinfo", "__versions", ".data..percpu"):
        before, after = by_name[name]
        assert before & 0x2 and not after & 0x2, name              # SHF_ALLOC dropped
    for name in (".data..ro_after_init", "__jump_table"):
        before, after = by_name[name]
        assert after == before | 0x00200000, name                  # SHF_RO_AFTER_INIT
    assert by_name[".data"][0] == by_name[".data"][1]


def test_layout_61_order_alignment_regions(mod):
    got = placed_by_name(mod(), "6.1")
    assert got == {**CORE_61, **INIT_61}
    assert not NOT_LOADED & set(got)


def test_layout_61_without_mod_unload(mod):
    got = placed_by_name(mod("NOUNLOAD"), "6.1")
    for name, want in NOUNLOAD_61.items():
        assert got[name] == want, name
    # the rest of core is as with mod_unload
    for name in (".rodata", ".note.Linux", ".data..ro_after_init", "__jump_table",
                 ".data", ".bss"):
        assert got[name] == CORE_61[name], name


def test_layout_64_regions_are_allocations(mod):
    got = placed_by_name(mod("V612"), "6.4")
    # each mod_mem type is its own page-aligned block: offsets as in 6.1's
    # regions, but every region starts at 0 of its own allocation
    want = {name: (r, off, r, off) for name, (r, off, _, _) in {**CORE_61, **INIT_61}.items()}
    assert got == want


def test_missing_init_text(mod):
    got = placed_by_name(mod("NOINIT"), "6.1")
    assert ".init.text" not in got
    # the empty init text pass rounds 0 up to 0: init rodata starts the allocation
    assert got[".init.rodata"] == ("init_rodata", 0, "init", 0)
    assert got[".init.data"] == ("init_data", 0, "init", 0x1000)
    assert got[".text.unlikely"] == CORE_61[".text.unlikely"]
    res = scan_path(str(mod("NOINIT")))
    assert not res.warnings
    assert {s.function for s in res.sites} == {"t_000", "t_03c", "x_000", "u_02d"}


def test_verdicts_with_and_without_the_model(mod):
    path = str(mod())
    on, off = scan_path(path), scan_path(path, Options(placement="off"))
    assert not on.warnings and not off.warnings
    got_on, got_off = verdicts(on), verdicts(off)
    assert {f: c for f, (c, _) in got_on.items()} == {f: v[0] for f, v in SITES.items()}
    assert {f: c for f, (c, _) in got_off.items()} == {f: v[1] for f, v in SITES.items()}
    assert got_on["u_02d"][1] == {"basis": "model", "model": "6.1", "region": "text",
                                  "offset": 0x60}
    assert got_on["i_03e"][1] == {"basis": "model", "model": "6.1", "region": "init_text",
                                  "offset": 0}
    assert got_off["u_02d"][1] == {"basis": "alignment", "alignment": 16}
    assert all(s.alignment == 64 for s in on.sites)
    # seed policy: every exactly non-crossing call is patchable
    assert {s.function for s in on.sites if s.patchable} == \
        {f for f, v in SITES.items() if v[0] == "never"}


def test_verdicts_without_mod_unload(mod):
    res = scan_path(str(mod("NOUNLOAD")))
    assert {s.function: s.crossing for s in res.sites} == SITES_NOUNLOAD
    assert {s.function: s.placement["region"] for s in res.sites}["x_000"] == "init_text"


def test_forced_model_and_6_12(mod):
    res = scan_path(str(mod("V612")))
    assert not res.warnings
    assert {s.placement["model"] for s in res.sites} == {"6.4"}
    assert {s.function: s.crossing for s in res.sites} == {f: v[0] for f, v in SITES.items()}
    forced = scan_path(str(mod()), Options(placement="6.4"))
    assert {s.placement["model"] for s in forced.sites} == {"6.4"}


@pytest.mark.parametrize("variant,why", [
    ("V510", "no layout model for kernel release '5.10.0-30-cloud-amd64'"),
    ("NOVERMAGIC", "no vermagic in .modinfo"),
    ("WX", "section .text.wx is writable and executable"),
])
def test_fallback_to_alignment_with_one_warning(mod, variant, why):
    path = str(mod(variant))
    res = scan_path(path)
    assert len(res.warnings) == 1 and why in res.warnings[0], res.warnings
    assert "crossing verdicts use section alignment" in res.warnings[0]
    assert {s.function: s.crossing for s in res.sites} == {f: v[1] for f, v in SITES.items()}
    assert {s.placement["basis"] for s in res.sites} == {"alignment"}
    if variant == "NOVERMAGIC":
        # a forced model applies, assuming mod_unload
        forced = scan_path(path, Options(placement="6.1"))
        assert not forced.warnings
        assert {s.function: s.crossing for s in forced.sites} == \
            {f: v[0] for f, v in SITES.items()}


def test_site_in_a_section_the_loader_does_not_load(mod):
    # .data..percpu loses SHF_ALLOC before the layout (it is allocated per CPU)
    res = scan_path(str(mod("PCPUCODE")))
    assert res.warnings == [".data..percpu: the module loader does not load this section; "
                            "its sites' crossing verdicts use its alignment"]
    got = {s.function: (s.crossing, s.placement["basis"]) for s in res.sites}
    assert got.pop("n_003") == ("never", "alignment")      # 3 + 5 <= 64
    assert got == {f: (v[0], "model") for f, v in SITES.items()}


def test_not_a_module_keeps_alignment_verdicts(mod):
    path = str(mod("NOTHISMOD"))
    for choice in ("auto", "6.1"):
        res = scan_path(path, Options(placement=choice))
        assert not res.warnings
        assert {s.placement["basis"] for s in res.sites} == {"alignment"}
    res = scan_path(path, Options(assume_align=64))
    assert {s.function: s.placement["alignment"] for s in res.sites}["x_000"] == 64


def test_options_placement_validated():
    with pytest.raises(UsageError, match="--placement: unknown value '6.2'"):
        Options(placement="6.2")
    assert Options().to_json()["placement"] == "auto"


def test_report_validates_and_says_what_a_verdict_rests_on(mod):
    validator = jsonschema.Draft202012Validator(schema())
    results = [scan_path(str(mod())), scan_path(str(mod("V510")))]
    report = to_json(results, Options())
    validator.validate(report)
    assert report["policy"]["placement"] == "auto"
    sites = [s for o in report["objects"] for s in o["sites"]]
    assert Counter(s["placement"]["basis"] for s in sites) == {"model": 6, "alignment": 6}
    json.dumps(report, sort_keys=True)
    bad = json.loads(json.dumps(report))
    bad["objects"][0]["sites"][0]["placement"]["region"] = "heap"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)


def test_write_on_a_module_changes_no_alignment(mod, tmp_path):
    from elftools.elf.elffile import ELFFile
    src = mod()
    for opts in (Options(module=True), Options(module=True, assume_align=64),
                 Options(module=True, placement="off", assume_align=4096)):
        out = tmp_path / "out.ko"
        outcome = write_path(str(src), opts, output=str(out))
        assert outcome.action == "written"
        with open(src, "rb") as a, open(out, "rb") as b:
            before = {s.name: s["sh_addralign"] for s in ELFFile(a).iter_sections()}
            after = {s.name: s["sh_addralign"] for s in ELFFile(b).iter_sections()}
        assert {k: after[k] for k in before} == before
    # the table lists exactly the calls the model proves never cross
    outcome = write_path(str(src), Options(module=True), output=str(tmp_path / "t.ko"))
    assert outcome.entries == sum(v[0] == "never" for v in SITES.values())


def test_write_on_a_relocatable_object_still_keeps_its_promise(mod, tmp_path):
    from elftools.elf.elffile import ELFFile
    out = tmp_path / "out.o"
    write_path(str(mod("NOTHISMOD")), Options(module=True, assume_align=64), output=str(out))
    with open(out, "rb") as f:
        aligns = {s.name: s["sh_addralign"] for s in ELFFile(f).iter_sections()}
    assert aligns[".exit.text"] == aligns[".text.unlikely"] == 64


def test_plan_off():
    class Fake:
        linked = False
        sections = []
    assert plan(Fake(), "off") == (None, None)


# ------------------------------------------------------------------ corpus
#: crossing verdicts over Debian's 6.1 cloud corpus (7113 sites in 216 modules),
#: seed policy; recorded in docs/placement.md
CORPUS_OFF = {"never": 5235, "depends": 1878}
CORPUS_MODEL = {"never": 6662, "always": 451}


def test_corpus_counts_before_and_after(corpus):
    before, after, bases = Counter(), Counter(), Counter()
    warnings = []
    for d, _, files in os.walk(corpus):
        for f in sorted(files):
            if not f.endswith(".ko"):
                continue
            elf = open_elf(os.path.join(d, f))
            off = scan_elf(elf, Options(placement="off"), sources=False)
            on = scan_elf(elf, Options(), sources=False)
            before.update(s.crossing for s in off.sites)
            after.update(s.crossing for s in on.sites)
            bases.update(s.placement["basis"] for s in on.sites)
            warnings += on.warnings
    assert dict(before) == CORPUS_OFF
    assert dict(after) == CORPUS_MODEL          # no depends left
    assert bases == {"model": sum(CORPUS_MODEL.values())} and not warnings


@pytest.mark.parametrize("variants", [(), ("NOUNLOAD",), ("V612",), ("WX",), ("PCPUCODE",)],
                         ids=lambda v: "+".join(v) or "plain")
@pytest.mark.parametrize("choice", ["auto", "6.1", "6.4"])
def test_the_code_only_layout_places_code_as_the_whole_layout(mod, variants, choice):
    """The placer lays out the sections of code only (every site is in one)
    when the rest cannot change what the layout gives or raises: the model,
    the warning and every executable section's place are the whole layout's."""
    from scall_objtool.core.placement import _plan
    elf = open_elf(str(mod(*variants)))
    model, _info, full, warning = _plan(elf, choice)
    model2, _info2, code, warning2 = _plan(elf, choice, code_only=True)
    assert (model2, warning2) == (model, warning)
    if full is None:
        assert code is None and warning
        return
    executable = {s.index for s in elf.sections if s.executable and s.flags & 0x2}
    assert executable & set(full)           # (PCPUCODE: one the loader does not load)
    assert {i: p for i, p in code.items() if i in executable} == \
        {i: p for i, p in full.items() if i in executable}


def test_a_scan_asks_the_placer_once_a_section(mod, monkeypatch):
    """Where a section lands is worked out once a section, not once a site,
    and the policy's verdict once a (kind, prefixes, crossing)."""
    from scall_objtool.core import classify, placement
    asked, judged = [], []
    real_where, real_reason = placement.Placer.where, classify.policy_reason

    def where(self, sec):
        asked.append(sec.index)
        return real_where(self, sec)

    def reason(*args):
        judged.append(args[:3])
        return real_reason(*args)
    monkeypatch.setattr(placement.Placer, "where", where)
    monkeypatch.setattr(classify, "policy_reason", reason)
    elf = open_elf(str(mod()))
    sites = scan_elf(elf, Options()).sites
    sections = {s.section_index for s in sites}
    assert len(sites) > len(sections) >= 3
    assert sorted(asked) == sorted(sections)
    assert len(judged) == len(set(judged)) <= len(sites)
