"""Linked images whose trampolines are LOCAL symbols (issue 21).

The shipped runtime gives trampolines hidden visibility; the linker makes a
hidden global LOCAL in a PIE or a shared object (GNU ld keeps it GLOBAL,
hidden, in a non-PIE or static executable).
Such an image used to look like it had no trampolines at all: `check` passed
on 0 sites and `verify` called every table entry a mismatch.  Here the
user-space example is built as examples/makefile does (the shipped runtime,
`write` after each compile, static_call_sites.ld) with gcc and clang, PIE,
non-PIE, static and with --emit-relocs, and a shared object with a static
call: every site of the objects is found in the image, and `verify` passes on
the table that `write` wrote."""
from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pytest
from elftools.elf.elffile import ELFFile

from scall_testlib import ROOT, SRC, run_cli, scan_lib

RUNTIME = ROOT / "scall_objtool" / "runtime"
EX = ROOT / "examples" / "userspace-static-call"
LDSCRIPT = RUNTIME / "static_call_sites.ld"
SITE_OBJECTS = ("demo", "hooks")
#: link -> (the objects it takes, its flags)
LINKS = {"pie": ("pie", ("-pie",)), "pie-relocs": ("pie", ("-pie", "-Wl,--emit-relocs")),
         "nopie": ("nopie", ("-no-pie",)), "static": ("nopie", ("-static",))}


def _tramp_bindings(path) -> dict[str, str]:
    with open(path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return {s.name: s["st_info"]["bind"] for s in symtab.iter_symbols()
                if s.name.startswith("__SCT__")}


def _identities(report) -> Counter:
    return Counter((s["function"], s["trampoline"], s["kind"])
                   for o in report["objects"] for s in o["sites"])


def _compile(cc: str, src, out, *flags: str):
    subprocess.run([cc, "-O2", "-g", *flags, f"-I{RUNTIME}", f"-I{EX}", "-c", "-o", str(out),
                    str(src)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """objects(cc, pic) -> (cc, pic, dir, [demo.o, hooks.o, static_call.o]), the
    first two with seed tables; built once per module."""
    built = {}

    def get(cc: str, pic: str):
        if (cc, pic) not in built:
            if not shutil.which(cc):
                pytest.fail(f"{cc} is not installed (scripts/install-debian-deps installs it)")
            d = tmp_path_factory.mktemp(f"{cc}-{pic}")
            flag = "-fpie" if pic == "pie" else "-fno-pie"
            objs = [_compile(cc, EX / "demo.c", d / "demo.o", flag),
                    _compile(cc, EX / "hooks.c", d / "hooks.o", flag),
                    _compile(cc, RUNTIME / "static_call.c", d / "static_call.o", flag)]
            assert run_cli("write", "-q", *objs[:2]).rc == 0           # seed tables
            built[cc, pic] = (cc, pic, d, objs)
        return built[cc, pic]
    return get


def _link(objects, cc: str, how: str):
    pic, flags = LINKS[how]
    cc, pic, d, objs = objects(cc, pic)
    out = d / f"prog-{how}"
    subprocess.run([cc, *flags, "-o", str(out), *map(str, objs), f"-Wl,-T,{LDSCRIPT}"],
                   check=True, capture_output=True)
    return out, pic, objs


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("how", list(LINKS))
def test_every_site_is_found_and_the_table_verifies(objects, cc, how):
    prog, pic, objs = _link(objects, cc, how)
    # the premise: a PIE link makes the hidden trampolines LOCAL (GNU ld keeps
    # them GLOBAL, hidden, in a non-PIE or static executable: found either way)
    binds = _tramp_bindings(prog)
    assert binds and set(binds.values()) == {"STB_LOCAL" if pic == "pie" else "STB_GLOBAL"}
    in_objects = scan_lib(*map(str, objs[:2]))
    in_image = scan_lib(str(prog))
    assert _identities(in_image) == _identities(in_objects)
    n = sum(o["summary"]["sites"] for o in in_objects["objects"])
    assert n >= 10
    res = run_cli("check", "--policy", "kernel", prog)
    assert res.rc == 0, res.stdout + res.stderr
    assert f"1 object, {n} sites, {n} patchable" in res.stdout
    # the seed gate sees the tail calls and (strictly) the crossing call at
    # final addresses
    res = run_cli("check", "--layout-gate", "strict", prog)
    assert res.rc == 1 and "tail-call" in res.stdout and "crosses-cache-line" in res.stdout
    res = run_cli("verify", prog)
    assert res.rc == 0, res.stdout + res.stderr
    entries = sum(o["existing_table"]["entries"] for o in in_objects["objects"])
    assert f"verify: 1 object, {entries} entries, 0 failed" in res.stdout


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_a_seed_site_proven_only_at_the_final_address_is_unlisted_not_missing(objects, cc):
    """cold_path() sits in .text.unlikely (alignment 1): its call is `depends`
    in demo.o, so the seed table leaves it out; at its final address it does
    not cross.  The table is right; verify lists the site apart, and still
    fails on a site a table must have (a kernel table with a call removed)."""
    prog, _, _ = _link(objects, cc, "pie")
    res = run_cli("verify", "--format", "json", prog)
    [obj] = res.json()["objects"]
    assert res.rc == 0 and obj["ok"] and obj["missing"] == []
    assert any("cold_path" in u for u in obj["unlisted"]), obj


def test_the_makefile_recipe(tmp_path):
    """examples/makefile as written: `check prog` finds every site, `verify prog`
    passes."""
    mk = tmp_path / "mk"
    shutil.copytree(ROOT / "examples" / "makefile", mk)
    import sys
    scall = f"{sys.executable} -m scall_objtool"
    subprocess.run(["make", "-s", f"SCALL={scall}", f"SRC={EX}", "prog"], cwd=mk, check=True,
                   capture_output=True)
    objs = scan_lib(str(mk / "demo.o"), str(mk / "hooks.o"))
    n = sum(o["summary"]["sites"] for o in objs["objects"])
    res = run_cli("check", "--policy", "kernel", "prog", cwd=mk)
    assert res.rc == 0 and f"{n} sites, {n} patchable" in res.stdout, res.stdout
    res = run_cli("verify", "prog", cwd=mk)
    assert res.rc == 0 and " 0 failed" in res.stdout, res.stdout


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_shared_object(cc, tmp_path):
    obj = tmp_path / "lib.o"
    subprocess.run([cc, "-O2", "-fPIC", f"-I{RUNTIME}", "-c", "-o", str(obj),
                    str(SRC / "sharedlib.c")], check=True, capture_output=True)
    assert run_cli("write", "-q", "--policy", "kernel", obj).rc == 0
    so = tmp_path / "lib.so"
    subprocess.run([cc, "-shared", "-o", str(so), str(obj), f"-Wl,-T,{LDSCRIPT}"], check=True,
                   capture_output=True)
    assert set(_tramp_bindings(so).values()) == {"STB_LOCAL"}
    image = scan_lib("--policy", "kernel", str(so))
    assert _identities(image) == _identities(scan_lib("--policy", "kernel", str(obj)))
    assert Counter(s["kind"] for s in image["objects"][0]["sites"]) == {"call": 1, "tail": 1}
    res = run_cli("verify", "--policy", "kernel", so)
    assert res.rc == 0 and "2 entries, 0 failed" in res.stdout, res.stdout


def test_a_local_trampoline_in_an_object_is_still_not_one(tmp_path):
    """In a relocatable object only a GLOBAL __SCT__ symbol is a trampoline, as
    objtool has it: a file-local helper of that name calls no static call."""
    src = tmp_path / "l.s"
    src.write_text(".text\n__SCT__x:\n ret\nf:\n call __SCT__x\n ret\n")
    obj = tmp_path / "l.o"
    subprocess.run(["as", "--64", "-o", str(obj), str(src)], check=True)
    assert scan_lib(str(obj))["objects"][0]["sites"] == []
