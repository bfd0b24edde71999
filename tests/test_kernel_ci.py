"""A CI gate a kernel developer would accept: compressed modules, kernel build
trees, kernel-aware defaults, readable batches, baselines that move, linked
programs without a linker script, and the recipes under examples/ run as
written."""
from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scall_testlib import (PREBUILT, ROOT, SRC, assemble, build_source, missing_tool_message,
                           read_table, run_cli, symbol)

EXAMPLES = ROOT / "examples"


def _corpus_modules(corpus: Path, names: list[str]) -> list[Path]:
    found = {p.name: p for p in corpus.rglob("*.ko") if p.name in names}
    return [found[n] for n in names]


SAMPLE = ["af_key.ko", "mptcp_diag.ko", "tipc.ko", "xfs.ko", "kvm.ko"]


# ------------------------------------------------------ 1. compressed modules
def _compress(src: Path, dst_dir: Path) -> list[Path]:
    import zstandard
    data = src.read_bytes()
    out = []
    # the fastest levels: the reader's decoders are the same at every level
    # (xz -6 and gzip -9 of xfs.ko and kvm.ko cost 3.5 s of CPU)
    for suffix, pack in ((".xz", lambda d: lzma.compress(d, preset=0)),
                         (".gz", lambda d: gzip.compress(d, compresslevel=1)),
                         (".zst", zstandard.ZstdCompressor(level=1).compress)):
        p = dst_dir / (src.name + suffix)
        p.write_bytes(pack(data))
        out.append(p)
    return out


def test_compressed_modules_report_exactly_what_the_plain_ko_gives(corpus, tmp_path):
    plain = tmp_path / "plain"
    packed = tmp_path / "packed"
    plain.mkdir()
    packed.mkdir()
    for ko in _corpus_modules(corpus, SAMPLE):
        shutil.copy(ko, plain / ko.name)
        _compress(ko, packed)
    for cmd in (["scan", "--format", "json"], ["verify", "--format", "json"]):
        a = run_cli(*cmd, plain)
        b = run_cli(*cmd, packed)
        assert a.rc == b.rc == 0, (a.stderr, b.stderr)
        ja, jb = a.json(), b.json()
        # every compressed copy reports what its plain .ko does, named as given
        by_name = {Path(o["path"]).name: o for o in ja["objects"]}
        assert len(jb["objects"]) == 3 * len(by_name)
        for o in jb["objects"]:
            name = Path(o["path"]).name
            base = re.sub(r"\.(xz|gz|zst)$", "", name)
            assert name != base and o["path"].startswith(str(packed))
            want = {k: v for k, v in by_name[base].items() if k != "path"}
            assert {k: v for k, v in o.items() if k != "path"} == want, (cmd, name)


def test_write_refuses_a_compressed_module(tmp_path):
    [xz, gz, zst] = _compress(PREBUILT / "demo.o", tmp_path)
    for p in (xz, gz, zst):
        before = p.read_bytes()
        r = run_cli("write", p)
        assert r.rc == 2 and "compressed module" in r.stderr and "Traceback" not in r.stderr
        assert p.read_bytes() == before


def test_corrupt_and_bomb_compressed_inputs_are_one_error(tmp_path):
    good = lzma.compress((PREBUILT / "demo.o").read_bytes())
    cases = {"truncated.ko.xz": good[:len(good) // 2],
             "bomb.ko.gz": gzip.compress(b"\0" * (200 << 20))}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        r = run_cli("scan", p, timeout=60)
        assert r.rc == 2 and "Traceback" not in r.stderr
        assert r.stderr.count("scall-objtool: error: ") == 1, r.stderr
    assert "truncated" in run_cli("scan", tmp_path / "truncated.ko.xz").stderr
    assert "expands to more than" in run_cli("scan", tmp_path / "bomb.ko.gz").stderr


# -------------------------------------------------- 2. kernel build trees
def _ld_r(out: Path, *objs: Path) -> Path:
    subprocess.run(["ld", "-r", "-o", str(out), *map(str, objs)], check=True)
    return out


@pytest.fixture
def kernel_tree(tmp_path) -> tuple[Path, int]:
    """A small tree shaped like a kernel build: kernel/ parts in a thin
    built-in.a, a composite module drivers/foo.o linked from two parts and listed
    by foo.mod, its foo.ko, vmlinux.o, and a 32-bit boot object.  Returns the
    tree and the number of distinct sites under --policy kernel."""
    t = tmp_path / "build"
    (t / "kernel").mkdir(parents=True)
    (t / "drivers").mkdir()
    (t / "arch/x86/boot").mkdir(parents=True)
    # a name longer than an ar header holds: a long-name reference
    k1 = build_source("staticcall.c", t / "kernel" / "scheduler_core_long_name.o", "-O2")
    k2 = build_source("crossing.S", t / "kernel" / "sched.o")
    subprocess.run(["ar", "cDPrST", "built-in.a", k1.name, "sched.o"], cwd=t / "kernel",
                   check=True)
    p1 = build_source("lint.c", t / "drivers" / "foo-main.o", "-O2")
    p2 = build_source("demo.c", t / "drivers" / "foo-hooks.o", "-O2")
    _ld_r(t / "drivers" / "foo.o", p1, p2)
    (t / "drivers" / "foo.mod").write_text("drivers/foo-main.o\ndrivers/foo-hooks.o\n")
    _ld_r(t / "drivers" / "foo.ko", t / "drivers" / "foo.o")
    _ld_r(t / "vmlinux.o", k1, k2)
    boot = t / "arch/x86/boot" / "setup.S"          # realmode code: ELF32
    boot.write_text(".code16\n.text\n.globl setup\nsetup: call __SCT__x\n ret\n")
    subprocess.run(["as", "--32", "-o", str(boot.with_suffix(".o")), str(boot)], check=True)
    distinct = 0
    for part in (k1, k2, p1, p2):
        distinct += len(run_cli("scan", "--format", "json", "--policy", "kernel", part)
                        .json()["objects"][0]["sites"])
    return t, distinct


def test_check_counts_every_site_of_a_kernel_tree_once(kernel_tree):
    tree, distinct = kernel_tree
    r = run_cli("check", "--policy", "kernel", "--format", "json", tree)
    assert r.rc == 0, r.stderr
    doc = r.json()
    assert doc["summary"]["sites"] == distinct
    # check (and scan, whose report is check's baseline) reads the module
    # foo.ko, linked from the parts foo.mod lists (and the composite foo.o),
    # instead of them: its sites are judged where it was linked (write writes
    # the parts)
    assert doc["summary"]["skipped"] == {"foreign": 1, "repeated": 3, "linked": 3}
    objects = sorted(Path(o["path"]).name for o in doc["summary"]["by_object"])
    assert objects == ["foo.ko", "sched.o", "scheduler_core_long_name.o"]
    text = run_cli("check", "--policy", "kernel", tree).stdout
    assert ("skipped 1 of another ELF class or machine, 3 repeats of other objects (Kbuild), "
            "3 parts of vmlinux or modules (judged there)") in text
    scan = run_cli("scan", "--policy", "kernel", "--format", "json", tree).json()
    assert scan["summary"]["sites"] == distinct
    assert scan["summary"]["skipped"] == doc["summary"]["skipped"]


def test_a_foreign_object_named_explicitly_stays_an_error(kernel_tree):
    tree, _ = kernel_tree
    r = run_cli("scan", tree / "arch/x86/boot/setup.o")
    assert r.rc == 2 and "32-bit ELF" in r.stderr


def test_write_over_a_build_tree_writes_the_parts_once(kernel_tree):
    tree, _ = kernel_tree
    before = (tree / "drivers" / "foo.ko").read_bytes()
    r = run_cli("write", "-q", "--policy", "kernel", tree)
    assert r.rc == 0, r.stderr
    assert read_table(tree / "kernel" / "sched.o") and read_table(tree / "drivers" / "foo-main.o")
    assert (tree / "drivers" / "foo.ko").read_bytes() == before     # a repeat: untouched


# ------------------------------------------------------ 3. kernel defaults
def test_a_correct_kernel_table_verifies_with_no_options(corpus):
    [ko] = _corpus_modules(corpus, ["mptcp_diag.ko"])
    r = run_cli("verify", ko)
    assert r.rc == 0, r.stdout + r.stderr


def test_a_kernel_table_is_judged_by_the_kernel_policy_unless_asked(corpus):
    """Without --policy each table is judged by its own: objtool's table lists
    tail calls and crossing calls, which are no findings; --policy seed asks
    for them (and --strict fails on them)."""
    kos = _corpus_modules(corpus, ["tipc.ko"])
    r = run_cli("verify", "--format", "json", *kos)
    assert r.rc == 0, r.stderr
    [obj] = r.json()["objects"]
    assert obj["ok"] and obj["policy_findings"] == [] and obj["table_policy"] == "kernel"
    text = run_cli("verify", *kos)
    assert text.rc == 0 and "policy:" not in text.stdout, text.stdout
    assert text.stdout.splitlines()[-1].endswith(
        "0 failed, 0 with policy findings (policy of each table: 1 kernel)"), text.stdout
    assert run_cli("verify", "--strict", *kos).rc == 0
    seed = run_cli("verify", "--format", "json", "--policy", "seed", *kos).json()
    assert seed["objects"][0]["policy_findings"]
    assert run_cli("verify", "--strict", "--policy", "seed", *kos).rc == 1
    assert run_cli("verify", "--strict", "--policy", "kernel", *kos).rc == 0


def test_an_incomplete_kernel_table_fails(tmp_path):
    obj = assemble(SRC / "kinds.S", tmp_path / "k.o")
    assert run_cli("write", "-q", "--policy", "kernel", obj).rc == 0
    # drop the table: objcopy removes it; then write a seed table (a subset)
    assert run_cli("verify", obj).rc == 0
    subprocess.run(["objcopy", "--remove-section", ".static_call_sites", "--remove-section",
                    ".rela.static_call_sites", str(obj)], check=True)
    assert run_cli("write", "-q", obj).rc == 0          # seed: fewer entries
    r = run_cli("verify", "--policy", "kernel", obj)
    assert r.rc == 1 and "missing" in r.stdout


def test_a_module_gets_module_mode_without_the_option(tmp_path):
    """A .ko (it has .gnu.linkonce.this_module) whose key is not in the object
    points the entry at the trampoline, as objtool --module does; a plain .o
    gets the key added as an undefined global."""
    plain = build_source("lint.c", tmp_path / "p.o", "-O2", "-DSCALL_MOD")
    mod = tmp_path / "m.ko"
    (tmp_path / "this_module").write_bytes(bytes(64))
    subprocess.run(["objcopy", "--add-section",
                    f".gnu.linkonce.this_module={tmp_path / 'this_module'}",
                    "--set-section-flags", ".gnu.linkonce.this_module=alloc,data",
                    str(plain), str(mod)], check=True)
    r = run_cli("write", "-q", "--policy", "kernel", mod, plain)
    assert r.rc == 0, r.stderr
    assert symbol(mod, "__SCK__lint_hook") is None
    assert [k for _, _, k, _ in read_table(mod)] == ["__SCT__lint_hook"] * 4
    assert symbol(plain, "__SCK__lint_hook")["shndx"] == "SHN_UNDEF"


# ----------------------------------------------------- 4. readable batches
def test_scan_text_names_only_objects_with_something_to_say(tmp_path):
    shutil.copy(PREBUILT / "demo.o", tmp_path / "demo.o")
    shutil.copy(PREBUILT / "nostatic-O2.o", tmp_path / "nostatic.o")
    out = run_cli("scan", tmp_path).stdout.splitlines()
    assert not any("nostatic" in line for line in out)
    assert out[-1].startswith("summary: 2 objects")
    quiet = run_cli("scan", "-q", tmp_path).stdout.splitlines()
    assert quiet == [out[-1]]
    stats = run_cli("scan", "--stats", tmp_path).stdout
    assert "nostatic" not in stats.split("by object:")[1]


def test_group_by_gives_one_table_and_json_stays_complete(tmp_path):
    for name in ("demo.o", "kinds.o", "crossing.o"):
        shutil.copy(PREBUILT / name, tmp_path / name)
    text = run_cli("scan", "--group-by", "trampoline", tmp_path).stdout
    assert text.startswith("by trampoline:") and "__SCT__demo_hook" in text
    assert ".text+0x" not in text
    j = run_cli("scan", "--format", "json", tmp_path).json()
    assert sum(len(o["sites"]) for o in j["objects"]) == j["summary"]["sites"] > 0
    # --group-by changes the text only: with JSON it is an error, not ignored
    r = run_cli("scan", "--format", "json", "--group-by", "reason", tmp_path)
    assert r.rc == 2 and r.stdout == "" and r.stderr == (
        "scall-objtool: error: --group-by applies to the text format only, not to "
        "--format json\n")
    check = run_cli("check", "--group-by", "reason", tmp_path)
    assert check.rc == 1 and "by reason:" in check.stdout


def test_verify_prints_failures_and_a_summary_only(tmp_path):
    a = tmp_path / "a.o"
    assert run_cli("write", "-q", "-o", a, PREBUILT / "demo.o").rc == 0
    shutil.copy(PREBUILT / "demo.o", tmp_path / "b.o")      # no table: incomplete
    r = run_cli("verify", tmp_path)
    lines = r.stdout.splitlines()
    assert r.rc == 1 and not any("OK" in line for line in lines)
    assert any(line.startswith(f"{tmp_path / 'b.o'}: FAILED") for line in lines)
    assert lines[-1].startswith("verify: 2 objects")
    assert run_cli("verify", "-q", tmp_path).stdout.splitlines()[-1] == lines[-1]


def test_one_warning_for_keys_added_over_a_batch(tmp_path):
    for i in range(5):
        build_source("lint.c", tmp_path / f"m{i}.o", "-O2", "-DSCALL_MOD")
    r = run_cli("write", "--policy", "kernel", tmp_path)
    assert r.rc == 0
    warnings = [l for l in r.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 1 and "5 objects" in warnings[0], r.stderr
    assert run_cli("write", "-q", "--force", "--policy", "kernel", tmp_path).stderr == ""


# ------------------------------------------------------------ 6. baselines
def test_a_baseline_recorded_in_a_subdirectory_works_from_its_parent(tmp_path):
    mk = tmp_path / "mk"
    mk.mkdir()
    build_source("lint.c", mk / "lint.o", "-O2", "-g")
    assert run_cli("scan", "--format", "json", "--source-root", ROOT, "-o", "base.json",
                   "lint.o", cwd=mk).rc == 0
    doc = json.loads((mk / "base.json").read_text())
    assert doc["paths_relative_to"] == "."
    r = run_cli("check", "--baseline", "mk/base.json", "mk/lint.o", cwd=tmp_path)
    assert r.rc == 0 and "1 known, 0 new" in r.stdout, r.stdout + r.stderr
    assert "warning" not in r.stderr
    # sources are recorded relative to the source root, not as this machine's paths
    files = {s["source"]["file"] for o in doc["objects"] for s in o["sites"] if s["source"]}
    assert files and not any(os.path.isabs(f) for f in files), files


def test_a_baseline_that_matches_no_input_is_a_warning(tmp_path):
    mk = tmp_path / "mk"
    mk.mkdir()
    build_source("lint.c", mk / "lint.o", "-O2")
    (tmp_path / "stdout.json").write_text(
        run_cli("scan", "--format", "json", "lint.o", cwd=mk).stdout)
    r = run_cli("check", "--baseline", "stdout.json", "mk/lint.o", cwd=tmp_path)
    assert r.rc == 1 and "no object of the baseline is among the inputs" in r.stderr


# ------------------------------------- 7, 8. linked programs and addresses
PROG_C = r"""
struct static_call_key { void *func; };
int target_a(int x) { return x + 1; }
int target_b(int x, int y) { return x + y; }
struct static_call_key __SCK__a = { (void *)target_a }, __SCK__b = { (void *)target_b };
extern int __SCT__a(int x);
extern int __SCT__b(int x, int y);
int main(int argc, char **argv) { return __SCT__a(argc) + __SCT__b(argc, 1) == 2 * argc + 2 ? 0 : 1; }
"""


def test_a_program_linked_without_the_script_verifies(tmp_path):
    """GNU ld defines __start_/__stop_ only for sections named like C
    identifiers: a program linked without static_call_sites.ld has its table
    as an orphan section, which verify and scan find by name."""
    src = tmp_path / "prog.c"
    src.write_text(PROG_C)
    objs = [tmp_path / "prog.o", assemble(SRC / "linktramp.S", tmp_path / "tramp.o")]
    subprocess.run(["gcc", "-O2", "-c", "-o", str(objs[0]), str(src)], check=True)
    for o in objs:
        assert run_cli("write", "-q", "--policy", "kernel", o).rc == 0
    prog = tmp_path / "prog"
    subprocess.run(["gcc", "-no-pie", "-o", str(prog), *map(str, objs)], check=True)
    assert symbol(prog, "__start_static_call_sites") is None
    assert subprocess.run([str(prog)]).returncode == 0
    r = run_cli("verify", "--policy", "kernel", prog)
    assert r.rc == 0 and "0 failed" in r.stdout and "0 entries" not in r.stdout, r.stdout
    # linked images show the address of each site
    text = run_cli("scan", "--policy", "kernel", prog).stdout
    assert re.search(r"^  0x[0-9a-f]+ +\S+ +call ", text, re.M), text


# ------------------------------------------------------------- 10. recipes
def _shim(tmp_path: Path) -> dict:
    """An environment whose `scall-objtool` is this checkout's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "scall-objtool"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m scall_objtool \"$@\"\n")
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["SCALL_OBJTOOL_NO_PROGRESS"] = "1"
    return env


def test_makefile_recipe_builds_gates_and_deletes_a_failed_object(tmp_path):
    ex = tmp_path / "examples"
    shutil.copytree(EXAMPLES / "makefile", ex / "makefile")
    shutil.copytree(EXAMPLES / "userspace-static-call", ex / "userspace-static-call")
    env = _shim(tmp_path)
    mk = ex / "makefile"

    def make(*args):
        return subprocess.run(["make", *args], cwd=mk, env=env, capture_output=True, text=True)

    r = make()
    assert r.returncode == 0, r.stderr
    for o in ("demo.o", "hooks.o"):                 # static_call.o has no site
        assert read_table(mk / o) is not None, o
    assert (mk / "prog").exists()
    # the gate bootstraps its baseline on a fresh checkout, then passes
    r = make("static-call-check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (mk / "static-calls.json").exists() and "0 new" in r.stdout
    # a failed write deletes its object (.DELETE_ON_ERROR): nothing table-less to link
    (mk / "demo.o").unlink()
    r = make("SCALL_FLAGS=--cache-line 3", "demo.o")
    assert r.returncode != 0 and not (mk / "demo.o").exists()


@pytest.mark.slow
def test_kbuild_recipe_against_debian_headers(tmp_path):
    kdir = Path("/usr/src/linux-headers-6.1.0-50-cloud-amd64")
    if not kdir.is_dir():
        pytest.fail(missing_tool_message("linux-headers-6.1.0-50-cloud-amd64"), pytrace=False)
    work = tmp_path / "kbuild"
    shutil.copytree(EXAMPLES / "kbuild", work)
    r = subprocess.run(["make", f"KDIR={kdir}"], cwd=work, env=_shim(tmp_path),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "verify: 1 object, " in r.stdout and "0 failed" in r.stdout
    assert "check passed" in r.stdout
    assert read_table(work / "hello.ko", check_entsize=False)     # objtool's


def _ci_commands(path: Path) -> list[str]:
    import yaml
    doc = yaml.safe_load(path.read_text())
    out = []
    for job in doc.values() if "jobs" not in doc else doc["jobs"].values():
        steps = job.get("script") or [s.get("run") for s in job.get("steps", []) if "run" in s]
        out.extend(c for c in steps if c and "scall-objtool" in c and "pip install" not in c)
    return out


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_snippets_run_as_written(tmp_path, name):
    """The snippet's scall-objtool steps, run by the shell in a tree with
    build/ and a committed baseline, succeed (a report-only step tolerates
    exit 1, never 2)."""
    work = tmp_path / "repo"
    (work / "build").mkdir(parents=True)
    (work / "ci").mkdir()
    build_source("lint.c", work / "build" / "lint.o", "-O2", "-g")
    shutil.copy(PREBUILT / "kinds.o", work / "build" / "kinds.o")
    env = _shim(tmp_path)
    r = subprocess.run(["scall-objtool", "scan", "--format", "json", "-o",
                        "ci/static-calls.json", "build/"], cwd=work, env=env)
    assert r.returncode == 0
    commands = _ci_commands(EXAMPLES / "ci" / name)
    assert len(commands) >= 2
    for c in commands:
        r = subprocess.run(["bash", "-c", c], cwd=work, env=env, capture_output=True,
                           text=True)
        assert r.returncode == 0, (c, r.stdout, r.stderr)


def test_scan_text_names_what_a_module_verdict_rests_on(corpus):
    """A modelled module's sites say where the loader puts them, not an alignment."""
    [ko] = _corpus_modules(corpus, ["mptcp_diag.ko"])
    out = run_cli("scan", ko).stdout
    assert re.search(r"crossing never \(module text\+0x[0-9a-f]+, model 6\.1\)", out), out
    assert "(align " not in out


# ------------------------------------- exact by default on a build tree (#21)
def _as(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.with_suffix(".S")
    src.write_text(text)
    subprocess.run(["as", "--64", "-g", "-o", str(path), str(src)], check=True)
    return path


def _calls(tramp: str, name: str, pads: list[int]) -> str:
    """A function ``name`` (16-aligned .text) with a call to ``tramp`` after
    each run of ``pads`` nops."""
    body = "".join(f" .skip {n}, 0x90\n call {tramp}\n" for n in pads)
    return (f'.text\n.p2align 4\n.globl {name}\n.type {name},@function\n{name}:\n{body}'
            f" ret\n.size {name}, .-{name}\n")


@pytest.fixture
def linked_tree(tmp_path) -> Path:
    """A build tree with what was linked: kernel/a.o and kernel/b.o linked into
    a stand-in vmlinux (listed by the thin vmlinux.a, also in built-in.a and
    vmlinux.o), a module drivers/foo.ko linked (ld -r, with .modinfo and
    .gnu.linkonce.this_module) from the two parts foo.mod lists, and other/c.o
    linked into nothing."""
    t = tmp_path / "build"
    tramp = ('.section .text.tramp,"ax",@progbits\n.p2align 3\n.globl __SCT__k\n'
             ".type __SCT__k,@function\n__SCT__k:\n jmp k_target\n .byte 0x0f, 0xb9, 0xcc\n"
             ".size __SCT__k, 8\n.globl k_target\nk_target:\n ret\n")
    a = _as(t / "kernel" / "a.o", tramp + _calls("__SCT__k", "a_fn", [3, 14, 1]))
    b = _as(t / "kernel" / "b.o", _calls("__SCT__k", "b_fn", [12, 40]) +
            '.section .text.b2,"ax",@progbits\n.globl b_tail\nb_tail:\n jmp __SCT__k\n')
    subprocess.run(["ld", "-o", "vmlinux", "-e", "0", "kernel/a.o", "kernel/b.o"], cwd=t,
                   check=True)
    subprocess.run(["ar", "cDPrST", "kernel/built-in.a", "kernel/a.o", "kernel/b.o"], cwd=t,
                   check=True)
    subprocess.run(["ar", "cDPrST", "vmlinux.a", "kernel/a.o", "kernel/b.o"], cwd=t,
                   check=True)
    _ld_r(t / "vmlinux.o", a, b)
    p1 = _as(t / "drivers" / "foo-main.o", _calls("__SCT__foo", "foo_main", [2, 13, 30]))
    p2 = _as(t / "drivers" / "foo-hooks.o", _calls("__SCT__foo", "foo_hooks", [14]))
    mod = _as(t / "drivers" / "foo.mod.o",
              '.section .modinfo,"a",@progbits\n.asciz "license=GPL"\n'
              '.asciz "vermagic=6.1.0-50-cloud-amd64 SMP preempt mod_unload modversions "\n'
              '.section .gnu.linkonce.this_module,"aw",@progbits\n.p2align 6\n.skip 0x380\n')
    _ld_r(t / "drivers" / "foo.o", p1, p2)
    (t / "drivers" / "foo.mod").write_text("drivers/foo-main.o\ndrivers/foo-hooks.o\n")
    _ld_r(t / "drivers" / "foo.ko", t / "drivers" / "foo.o", mod)
    _as(t / "other" / "c.o", _calls("__SCT__foo", "c_fn", [13, 1]))
    return t


def test_a_build_tree_is_judged_where_it_was_linked(linked_tree):
    """vmlinux's sites at their final addresses, foo.ko's by the loader model,
    each counted once (the parts they were linked from are passed over); c.o
    keeps its provisional verdicts, and the output says so."""
    t = linked_tree
    r = run_cli("check", "--format", "json", "--layout-gate", "strict", t)
    doc = r.json()
    by_obj = {Path(o["path"]).relative_to(t).as_posix(): o["sites"]
              for o in doc["summary"]["by_object"] if o["sites"]}
    assert by_obj == {"vmlinux": 6, "drivers/foo.ko": 4, "other/c.o": 2}, by_obj
    assert doc["summary"]["sites"] == 12
    assert doc["summary"]["placement"]["exact"] == 10
    assert doc["summary"]["placement"]["provisional"] == 2
    assert [Path(o["path"]).name for o in doc["summary"]["placement"]["provisional_objects"]] \
        == ["c.o"]
    # a.o, b.o (vmlinux), foo-main.o, foo-hooks.o and the composite foo.o (foo.ko)
    assert doc["summary"]["skipped"]["linked"] == 5
    # every verdict on vmlinux and foo.ko is exact: never 'depends'
    assert all(f["crossing"] != "depends" for f in doc["findings"]
               if Path(f["object"]).name != "c.o")
    # findings are reported at the source line (the .S here, built with -g)
    vml = [f for f in doc["findings"] if Path(f["object"]).name == "vmlinux"]
    assert vml and all(f["source"] and f["source"]["file"].endswith(".S") for f in vml)
    text = run_cli("check", "--layout-gate", "strict", t).stdout
    assert "provisional: " in text and "other/c.o: 2 sites (not linked into vmlinux" in text
    last = text.splitlines()[-1]
    assert "10 sites judged exactly, 2 provisional" in last
    assert "5 parts of vmlinux or modules (judged there)" in last


def test_write_still_writes_the_parts(linked_tree):
    """write works on objects before the link: the parts, not the artifacts."""
    t = linked_tree
    before = (t / "drivers" / "foo.ko").read_bytes()
    r = run_cli("write", "-q", "--policy", "kernel", "--module", t / "drivers")
    assert r.rc == 0, r.stderr
    assert (t / "drivers" / "foo.ko").read_bytes() == before


def test_an_edit_before_a_static_call_moves_it_and_nothing_is_new(linked_tree, tmp_path):
    """The issue's must-show on the small tree: record a baseline (scan reads
    the tree as check does), edit code before a static call in a part of
    vmlinux, rebuild and relink: 0 new structural findings, and the site that
    only moved is 'moved' in diff, not added."""
    t = linked_tree
    base = tmp_path / "base.json"
    assert run_cli("scan", "--format", "json", "-o", base, t).rc == 0
    src = (t / "kernel" / "a.S").read_text()
    # the edit: two instructions before the first call of a_fn
    edited = src.replace("a_fn:\n", "a_fn:\n cmp $100, %edi\n jle 1f\n1:\n", 1)
    assert edited != src
    (t / "kernel" / "a.S").write_text(edited)
    subprocess.run(["as", "--64", "-g", "-o", "kernel/a.o", "kernel/a.S"], cwd=t, check=True)
    subprocess.run(["ld", "-o", "vmlinux", "-e", "0", "kernel/a.o", "kernel/b.o"], cwd=t,
                   check=True)
    r = run_cli("check", "--format", "json", "--baseline", base, t)
    doc = r.json()
    new = [f for f in doc["findings"] if f["baseline_state"] == "new"]
    assert [f for f in new if f["gate"] == "structural"] == []
    assert r.rc == 0, r.stdout
    after = tmp_path / "after.json"
    run_cli("scan", "--format", "json", "-o", after, t)
    d = run_cli("diff", "--format", "json", base, after).json()
    assert d["summary"]["added"] == d["summary"]["removed"] == 0
    assert d["summary"]["moved"] >= 3          # a_fn's three calls moved in vmlinux


def test_a_module_checked_from_its_own_directory(linked_tree):
    """NAME.mod lists parts relative to the build's top; a walk that starts
    below it still finds them, and counts each site once."""
    t = linked_tree
    r = run_cli("check", "--format", "json", "--layout-gate", "strict", t / "drivers")
    doc = r.json()
    assert doc["summary"]["sites"] == 4
    assert doc["summary"]["skipped"]["linked"] == 3


def test_lib_a_members_count_once(linked_tree):
    """lib.a is linked only where referenced: the member vmlinux pulled in is
    judged in vmlinux, the other keeps its own (provisional) verdicts."""
    t = linked_tree
    _as(t / "lib" / "l1.o", _calls("__SCT__k", "l1_fn", [5]))
    _as(t / "lib" / "l2.o", _calls("__SCT__k", "l2_fn", [7]))
    subprocess.run(["ar", "cDPrsT", "lib/lib.a", "lib/l1.o", "lib/l2.o"], cwd=t, check=True)
    _as(t / "kernel" / "ref.o", ".text\n.globl ref_fn\nref_fn:\n call l1_fn\n ret\n")
    subprocess.run(["ar", "cDPrST", "vmlinux.a", "kernel/ref.o"], cwd=t, check=True)
    subprocess.run(["ld", "-o", "vmlinux", "-e", "0", "kernel/a.o", "kernel/b.o", "kernel/ref.o",
                    "lib/lib.a"], cwd=t, check=True)
    doc = run_cli("check", "--format", "json", t).json()
    by_obj = {Path(o["path"]).relative_to(t).as_posix(): o["sites"]
              for o in doc["summary"]["by_object"] if o["sites"]}
    assert by_obj == {"vmlinux": 7, "drivers/foo.ko": 4, "other/c.o": 2, "lib/l2.o": 1}, by_obj
