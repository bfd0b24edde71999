"""Determinism and idempotence.

* the same input gives the same bytes (and the same report) whatever the
  hash seed, the working directory, relative or absolute paths, the fast
  path or typer, and --jobs;
* a second `write` leaves a written object byte-identical, with a warning;
* `write --force` on a written object gives the bytes of the first write.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import cliserver
import robust_harness as H
from scall_testlib import PREBUILT, ROOT, read_table_raw, run_cli, write_lib

OBJECTS = ["kinds.o", "crossing.o", "staticcall-O2.o", "demo.o", "nostatic-O2.o"]


def _run(args, cwd=None, env=None):
    full = dict(os.environ, SCALL_OBJTOOL_NO_PROGRESS="1")
    full.pop("SCALL_OBJTOOL_DEBUG", None)
    full.pop("SRCARCH", None)
    full["PYTHONPATH"] = str(ROOT) + os.pathsep + full.get("PYTHONPATH", "")
    full.update(env or {})
    return cliserver.run(args, cwd=cwd, env=full, text=True, timeout=300)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture(scope="module")
def corpus_set(corpus, tmp_path_factory):
    """About 40 stripped corpus modules: with and without sites, kvm.ko."""
    d = tmp_path_factory.mktemp("corpusset")
    mods = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*.ko"))
    picked = mods[::30] + ["arch/x86/kvm/kvm.ko", H.CORPUS_MODULE]
    for m in dict.fromkeys(picked):
        H.strip_table(str(corpus / m), str(d / m.replace("/", "_")))
    return d


# ----------------------------------------------------------- same bytes
VARIANTS = [
    ({"PYTHONHASHSEED": "0"}, False),
    ({"PYTHONHASHSEED": "1"}, True),
    ({"PYTHONHASHSEED": "12345", "SCALL_OBJTOOL_NO_FASTPATH": "1"}, False),
    ({"PYTHONHASHSEED": "random"}, True),
]


@pytest.mark.slow
@pytest.mark.parametrize("policy", [["--policy", "seed"], ["--policy", "kernel", "--module"]])
def test_write_is_deterministic_across_environments(tmp_path, policy, corpus_set):
    """Hash seed, cwd, relative/absolute path, fast path or typer: same bytes."""
    objs = [PREBUILT / o for o in OBJECTS] + [corpus_set / "arch_x86_kvm_kvm.ko",
                                              corpus_set / H.CORPUS_MODULE.replace("/", "_")]
    _same_across_environments(tmp_path, policy, objs, VARIANTS)


def test_write_is_deterministic_across_environments_sample(tmp_path):
    """The everyday run's sample of the test above: the gas and gcc objects,
    kernel policy, two environments (hash seed, cwd and relative paths, fast
    path or typer all differ between them)."""
    objs = [PREBUILT / o for o in OBJECTS]
    _same_across_environments(tmp_path, ["--policy", "kernel"], objs,
                              [VARIANTS[0], ({**VARIANTS[2][0], **VARIANTS[3][0]}, True)])


def _same_across_environments(tmp_path, policy, objs, variants):
    results: dict[str, set] = {}
    reports: dict[str, set] = {}
    for k, (env, relative) in enumerate(variants):
        d = tmp_path / f"v{k}"
        d.mkdir()
        for o in objs:
            shutil.copy(o, d / o.name)
        names = [o.name for o in objs]
        if relative:
            r = _run(["write", "-q", *policy, *names], cwd=d, env=env)
        else:
            r = _run(["write", "-q", *policy, *[d / n for n in names]], cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        for n in names:
            results.setdefault(n, set()).add(_digest((d / n).read_bytes()))
        rep = _run(["scan", "--format", "json", *policy, *names], cwd=d, env=env)
        reports.setdefault("scan", set()).add(_digest(rep.stdout.encode()))
    varying = {n: v for n, v in results.items() if len(v) != 1}
    assert not varying, f"bytes depend on the environment: {varying}"
    assert len(reports["scan"]) == 1, "the JSON report depends on the environment"


def test_repeated_in_process_writes_are_identical(tmp_path, corpus_set):
    from scall_objtool.core import Options
    from scall_objtool.table.write import write_path
    for src in [PREBUILT / o for o in OBJECTS] + sorted(corpus_set.iterdir())[:10]:
        outs = set()
        for i in range(3):
            out = tmp_path / f"{src.name}.{i}"
            write_path(str(src), Options(policy="kernel", module=True), output=str(out))
            outs.add(out.read_bytes())
            out.unlink()
        assert len(outs) == 1, src.name


@pytest.mark.slow
@pytest.mark.parametrize("command", ["write", "scan"])
def test_same_result_across_jobs(tmp_path, corpus_set, command):
    """--jobs 1, 2, 3: byte-identical objects, identical stdout and stderr."""
    help_text = _run([command, "--help"]).stdout
    if "--jobs" not in help_text:
        pytest.skip("--jobs is not implemented yet")
    seen = {}
    for jobs in (1, 2, 3):
        d = tmp_path / f"j{jobs}"
        shutil.copytree(corpus_set, d)
        bad = d / "zz-bad.ko"
        bad.write_bytes(b"\x7fELF garbage")        # an error line must keep its place too
        args = ([command, "--policy", "kernel", "--module", "--jobs", jobs]
                + (["--format", "json"] if command == "scan" else []) + [d])
        r = _run(args, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        out = r.stdout.replace(str(d), "DIR")
        err = r.stderr.replace(str(d), "DIR")
        files = {p.name: _digest(p.read_bytes()) for p in sorted(d.iterdir())}
        seen[jobs] = (out, err, files)
        assert err.count("scall-objtool: error: ") == 1, err
    assert seen[1] == seen[2] == seen[3]


# ----------------------------------------------------------- idempotence
@pytest.mark.parametrize("name", ["kinds.o", "crossing.o", "staticcall-O2.o", "demo.o",
                                  "ko-stripped"])
def test_second_write_is_byte_identical_with_a_warning(tmp_path, name, corpus_set):
    src = corpus_set / H.CORPUS_MODULE.replace("/", "_") if name == "ko-stripped" \
        else PREBUILT / name
    obj = tmp_path / "obj.o"
    shutil.copy(src, obj)
    args = ["--policy", "kernel", "--module"]
    r1 = run_cli("write", *args, obj)
    assert r1.rc == 0 and "wrote" in r1.stdout, r1.stdout + r1.stderr
    first = obj.read_bytes()
    assert first != src.read_bytes()
    for _ in range(2):
        r2 = run_cli("write", *args, obj)
        assert r2.rc == 0, r2.stderr
        assert obj.read_bytes() == first
        warn = [ln for ln in r2.stderr.splitlines() if ln.startswith("scall-objtool: warning: ")]
        assert len(warn) == 1 and ".static_call_sites" in warn[0] and "--force" in warn[0], \
            r2.stderr
        assert "table exists, unchanged" in r2.stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["obj.o"]


def test_object_without_sites_is_left_byte_identical(tmp_path):
    obj = tmp_path / "n.o"
    shutil.copy(PREBUILT / "nostatic-O2.o", obj)
    before = obj.stat()
    for _ in range(2):
        r = run_cli("write", obj)
        assert r.rc == 0 and not r.stderr, r.stderr
        assert obj.read_bytes() == (PREBUILT / "nostatic-O2.o").read_bytes()
    assert obj.stat().st_ino == before.st_ino, "an unchanged object was replaced anyway"


@pytest.mark.parametrize("name", ["kinds.o", "staticcall-O2.o", "ko-stripped"])
def test_force_rewrites_the_same_table(tmp_path, name, corpus_set):
    """The table --force writes on a written object has the same entries."""
    src = corpus_set / H.CORPUS_MODULE.replace("/", "_") if name == "ko-stripped" \
        else PREBUILT / name
    obj = tmp_path / "obj.o"
    shutil.copy(src, obj)
    write_lib("--policy", "kernel", "--module", obj)
    first = read_table_raw(obj)
    r = run_cli("write", "--force", "--policy", "kernel", "--module", obj)
    assert r.rc == 0 and not r.stderr, r.stderr
    assert read_table_raw(obj) == first
    lint = subprocess.run(["readelf", "-a", "-W", str(obj)], capture_output=True, text=True)
    assert lint.returncode == 0 and "Warning" not in lint.stderr, lint.stderr


@pytest.mark.parametrize("name", ["kinds.o", "ko-stripped"])
def test_force_gives_the_bytes_of_the_first_write(tmp_path, name, corpus_set):
    """--force on a written object: the bytes of the first write, every time
    (it used to append a second table, growing the file on every --force)."""
    src = corpus_set / H.CORPUS_MODULE.replace("/", "_") if name == "ko-stripped" \
        else PREBUILT / name
    obj = tmp_path / "obj.o"
    shutil.copy(src, obj)
    write_lib(obj)
    first = obj.read_bytes()
    for _ in range(3):
        write_lib("--force", obj)
        assert len(obj.read_bytes()) == len(first), "the file grew"
        assert obj.read_bytes() == first


def test_dry_run_writes_nothing(tmp_path):
    obj = tmp_path / "k.o"
    shutil.copy(PREBUILT / "kinds.o", obj)
    r = run_cli("write", "--dry-run", obj)
    assert r.rc == 0 and "would write" in r.stdout
    assert obj.read_bytes() == (PREBUILT / "kinds.o").read_bytes()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["k.o"]


@pytest.mark.parametrize("case", ["objtool-table", "null-section-size"])
def test_force_is_byte_stable(tmp_path, case, corpus):
    """Found by the sweep: --force was not byte-stable when the table had not
    been appended by a first write of ours -- a module with objtool's table
    grew by ~2.5 KB on every --force (async_memcpy.ko 9561 -> 12112 -> 14656
    -> 17200), and so did an object whose NULL section header has a nonzero
    sh_size (fuzz_repro/null-section-size.o: 3624 -> 4696 -> 5768)."""
    obj = tmp_path / "obj.o"
    if case == "objtool-table":
        # as objtool wrote it: Debian's signature, appended after, makes write refuse it
        obj.write_bytes(H.unsigned((corpus / H.CORPUS_MODULE).read_bytes()))
        args = ["--policy", "kernel", "--module"]
        write_lib("--force", *args, obj)     # replaces objtool's table
    else:
        shutil.copy(Path(__file__).resolve().parent / "fuzz_repro" / "null-section-size.o", obj)
        args = []
        write_lib(*args, obj)
    first = obj.read_bytes()
    sizes = [len(first)]
    for _ in range(2):
        write_lib("--force", *args, obj)
        sizes.append(len(obj.read_bytes()))
    assert obj.read_bytes() == first, f"sizes after each --force: {sizes}"


REPRO = Path(__file__).resolve().parent / "fuzz_repro"


@pytest.mark.parametrize("case,first_write,args", [
    ("extended-shnum-small.o", True, []),
    ("written-rela-info-to-table.ko", False, ["--policy", "kernel", "--module"]),
    ("written-text-offset.o", False, ["--policy", "kernel", "--module"]),
])
def test_force_is_byte_stable_on_hostile_input(tmp_path, case, first_write, args):
    obj = tmp_path / case
    shutil.copy(REPRO / case, obj)
    if first_write:
        write_lib(*args, obj)
    else:
        write_lib("--force", *args, obj)
    first = obj.read_bytes()
    sizes = [len(first)]
    for _ in range(2):
        write_lib("--force", *args, obj)
        sizes.append(len(obj.read_bytes()))
        assert obj.read_bytes() == first, f"sizes: {sizes}"
