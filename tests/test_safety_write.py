"""Data safety of `write` and of every `-o` (issue 10, items 1-10 and 18; issue 23,
items 1-3, 16, 17, 20).

Each test damages nothing outside its tmp_path: device nodes and FIFOs are
made there (os.mknod, os.mkfifo), never the real /dev/null.  Tests that need
root (chown, mknod) are skipped without it; CI runs as root.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from robust_harness import sign
from scall_testlib import read_table

ROOT = Path(__file__).resolve().parent.parent
PREBUILT = ROOT / "testdata" / "prebuilt"
SRC = ROOT / "testdata" / "src"
KINDS = PREBUILT / "kinds.o"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def obj(tmp_path: Path, name: str = "k.o", src: Path = KINDS) -> Path:
    p = tmp_path / name
    shutil.copy(src, p)
    return p


def one_error(res, *words: str) -> str:
    assert res.rc == 2, (res.rc, res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scall-objtool: error: "), lines
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def written_bytes(cli, tmp_path: Path, src: Path = KINDS, *args: str) -> bytes:
    """What `write` makes of ``src`` (in a scratch directory)."""
    d = tmp_path / "ref"
    d.mkdir(exist_ok=True)
    p = obj(d, src.name, src)
    assert cli("write", *args, p).rc == 0
    return p.read_bytes()


def ar(cwd: Path, flags: str, archive: str, *members) -> Path:
    subprocess.run(["ar", flags, archive, *map(str, members)], check=True, cwd=cwd)
    return cwd / archive


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and not p.is_symlink()}


# ------------------------------------------------------ 1. archives
@pytest.mark.parametrize("thin", [True, False])
def test_write_refuses_an_archive_and_touches_nothing(cli, tmp_path, thin):
    outside = tmp_path / "src"
    lib = tmp_path / "lib"
    outside.mkdir()
    lib.mkdir()
    obj(outside, "victim.o")
    absolute = obj(tmp_path, "abs.o")
    ar(lib, "rcT" if thin else "rc", "t.a", "../src/victim.o", absolute)
    before = tree(tmp_path)
    one_error(cli("write", lib / "t.a"), "t.a", "archive")
    one_error(cli("write", "--force", "--backup", lib / "t.a"), "archive")
    assert tree(tmp_path) == before
    # reading the members is fine: both have sites
    res = cli("scan", "-f", "json", lib / "t.a")
    assert res.rc == 0, res.stderr
    assert [len(o["sites"]) for o in res.json()["objects"]] == [10, 10]


def test_write_dir_does_not_follow_a_thin_archive_out_of_the_tree(cli, tmp_path):
    outside = tmp_path / "outside"
    build = tmp_path / "build"
    outside.mkdir()
    build.mkdir()
    victim = obj(outside, "victim.o")
    own = obj(build, "own.o")
    ar(build, "rcT", "built-in.a", "../outside/victim.o")
    before = victim.read_bytes()
    res = cli("write", build)
    assert res.rc == 0, res.stderr
    assert read_table(own), "the directory's own object is written"
    assert victim.read_bytes() == before, "a thin archive's member outside the tree was written"
    # asked for explicitly, an archive is an error, still nothing written through it
    one_error(cli("write", "--include", "*.a", build), "built-in.a", "archive")
    assert victim.read_bytes() == before


def test_archive_members_are_members_even_when_thin(tmp_path):
    from scall_objtool.inputs.batch import write_one
    from scall_objtool.inputs import archive_members
    from scall_objtool.core import Options
    victim = obj(tmp_path, "victim.o")
    t = ar(tmp_path, "rcT", "t.a", "victim.o")
    members = archive_members(str(t), t.read_bytes())
    assert [m.path for m in members] == [str(tmp_path / "victim.o")]
    assert all(m.is_member for m in members)
    before = victim.read_bytes()
    out = write_one(members[0], Options())
    assert not out.ok and victim.read_bytes() == before


# ------------------------------------------------------ 2. outputs that are not files
@root_only
def test_write_into_a_device_node_keeps_it_a_device(cli, tmp_path):
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    k = obj(tmp_path)
    before = k.read_bytes()
    for args in (["write", "-o", null, k], ["scan", "-o", null, k],
                 ["verify", "-o", null, k], ["check", "-f", "sarif", "-o", null, k]):
        res = cli(*args)
        assert res.rc in (0, 1), (args, res.stderr)
        assert stat.S_ISCHR(os.lstat(null).st_mode), f"{args}: the device node was replaced"
        assert os.lstat(null).st_rdev == os.makedev(1, 3)
    assert k.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.o", "null"]


def test_output_into_a_fifo_is_written_not_replaced(cli, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []

    def read():
        with open(fifo, "rb") as f:
            got.append(f.read())
    reader = threading.Thread(target=read)
    reader.start()
    res = cli("scan", "-f", "json", "-o", fifo, obj(tmp_path), timeout=120)
    reader.join(120)
    assert res.rc == 0, res.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert b'"sites"' in got[0]


def test_dash_and_dev_stdout_mean_stdout(cli, tmp_path):
    k = obj(tmp_path)
    plain = cli("scan", k).stdout
    assert cli("scan", "-o", "-", k).stdout == plain
    # a link to our stdout (what /dev/stdout is), whether stdout is a pipe or a file
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    res = cli("check", "-f", "sarif", "-o", link, k)
    assert res.rc in (0, 1) and '"runs"' in res.stdout, res.stderr
    assert link.is_symlink()
    with open(tmp_path / "captured", "wb") as f:
        p = subprocess.run([sys.executable, "-m", "scall_objtool", "scan", "-o", str(link),
                            str(k)], stdout=f, stderr=subprocess.PIPE, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "captured").read_text() == plain
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


def test_write_dash_puts_the_object_on_stdout(cli, tmp_path):
    k = obj(tmp_path)
    before = k.read_bytes()
    p = subprocess.run([sys.executable, "-m", "scall_objtool", "write", "-o", "-", str(k)],
                       capture_output=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout == written_bytes(cli, tmp_path)
    assert k.read_bytes() == before


# ------------------------------------------------------ 3. -o ""
@pytest.mark.parametrize("cmd", [["scan"], ["verify"], ["check"], ["write"],
                                 ["write", "--backup"], ["write", "--force", "--backup"]])
def test_empty_output_is_a_usage_error(cli, tmp_path, cmd):
    k = obj(tmp_path)
    before = tree(tmp_path)
    one_error(cli(*cmd, "-o", "", k), "empty")
    assert tree(tmp_path) == before


def test_empty_output_for_diff(cli, tmp_path):
    k = obj(tmp_path)
    rep = tmp_path / "r.json"
    rep.write_text(cli("scan", "-f", "json", k).stdout)
    one_error(cli("diff", "-o", "", rep, rep), "empty")


# ------------------------------------------------------ 4. output is an input
def test_output_that_is_an_input_is_refused(cli, tmp_path):
    k = obj(tmp_path)
    other = obj(tmp_path, "other.o")
    os.link(k, tmp_path / "hard.o")
    (tmp_path / "sym.o").symlink_to("k.o")
    before = tree(tmp_path)
    for args in (["scan", "-o", k, k], ["scan", "-o", tmp_path / "hard.o", other, k],
                 ["verify", "-o", tmp_path / "sym.o", k],
                 ["check", "-f", "sarif", "-o", k, k],
                 ["scan", "-o", k, tmp_path],          # found by walking the directory
                 ["write", "-o", k, k], ["write", "-o", tmp_path / "hard.o", k],
                 ["write", "-o", tmp_path / "sym.o", k]):
        one_error(cli(*args), "input")
        assert tree(tmp_path) == before, args
    rep = tmp_path / "r.json"
    rep.write_text(cli("scan", "-f", "json", k).stdout)
    saved = rep.read_bytes()
    one_error(cli("diff", "-o", rep, rep, rep), "input")
    assert rep.read_bytes() == saved


# ------------------------------------------------------ 5. a name is not a table
EH = struct.Struct("<16sHHIQQQIHHHHHH")
SH = struct.Struct("<IIQQQQIIQQ")


def _headers(data: bytes):
    h = EH.unpack_from(data, 0)
    shoff, shnum, shstrndx = h[6], h[12], h[13]
    secs = [list(SH.unpack_from(data, shoff + 64 * i)) for i in range(shnum)]
    strtab = secs[shstrndx]
    names = data[strtab[4]:strtab[4] + strtab[5]]
    return shoff, secs, names


def foreign(tmp_path: Path, victim: str) -> Path:
    """The test object with section ``victim`` renamed .static_call_sites."""
    base = tmp_path / "base.o"
    if not base.exists():
        subprocess.run(["as", "--64", "-o", str(base), str(SRC / "foreign_table_name.s")],
                       check=True)
    data = bytearray(base.read_bytes())
    shoff, secs, names = _headers(data)
    target = names.index(b".foo.static_call_sites\0") + len(".foo")
    index = next(i for i, s in enumerate(secs)
                 if names[s[0]:names.index(b"\0", s[0])].decode() == victim)
    secs[index][0] = target
    SH.pack_into(data, shoff + 64 * index, *secs[index])
    out = tmp_path / f"renamed{victim.replace('.', '_')}.o"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("victim", [".text", ".symtab", ".strtab", ".shstrtab",
                                    ".foo.static_call_sites", ".data"])
def test_a_section_named_like_the_table_is_not_taken_for_one(cli, tmp_path, victim):
    p = foreign(tmp_path, victim)
    before = p.read_bytes()
    for args in (["write"], ["write", "--force"], ["write", "--force", "--backup"]):
        res = cli(*args, p)
        one_error(res, "not a static-call table")
        assert "already has" not in res.stderr
        assert p.read_bytes() == before, f"{args} changed the object"
        assert not Path(str(p) + ".orig").exists()
    res = cli("scan", "-f", "json", p)
    if victim not in (".symtab", ".strtab", ".shstrtab"):   # those break the object itself
        assert res.rc == 0, res.stderr
        assert res.json()["objects"][0]["existing_table"] is None
        assert "not a static-call table" in res.stderr


def test_a_real_table_is_still_recognised_and_replaced(cli, tmp_path):
    from scall_objtool.core.elf import open_elf
    from scall_objtool.table import table_sections
    k = obj(tmp_path)
    assert cli("write", k).rc == 0
    table, others = table_sections(open_elf(str(k)))
    assert table is not None and others == []
    res = cli("write", "--force", "--allow-tail", k)
    assert res.rc == 0 and "wrote" in res.stdout, res.stderr
    assert len(read_table(k)) > 2


def test_a_table_with_the_wrong_relocation_count_is_not_replaced(cli, tmp_path):
    k = obj(tmp_path)
    assert cli("write", k).rc == 0
    data = bytearray(k.read_bytes())
    shoff, secs, names = _headers(data)
    rela = next(i for i, s in enumerate(secs)
                if names[s[0]:names.index(b"\0", s[0])] == b".rela.static_call_sites")
    secs[rela][5] -= 24                                  # one relocation fewer
    SH.pack_into(data, shoff + 64 * rela, *secs[rela])
    k.write_bytes(bytes(data))
    one_error(cli("write", "--force", k), "not a static-call table")
    assert k.read_bytes() == bytes(data)


# ------------------------------------------------------ 6. owner, set-id bits, xattrs
@root_only
def test_owner_group_and_setid_bits_are_kept(cli, tmp_path):
    import grp
    import pwd
    uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    k = obj(tmp_path)
    os.chown(k, uid, gid)
    os.chmod(k, 0o6755)
    assert cli("write", "--backup", k).rc == 0
    assert read_table(k)
    for p in (k, tmp_path / "k.o.orig"):
        st = p.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o6755), p


def test_setid_bits_are_cleared_when_the_owner_cannot_be_kept(tmp_path, monkeypatch):
    from scall_objtool.inputs import fileio
    from scall_objtool.core import Options
    from scall_objtool.table.write import write_path
    k = obj(tmp_path)
    os.chmod(k, 0o6755)
    st = k.stat()

    def refuse(*_a):
        raise PermissionError(1, "Operation not permitted")
    # pretend the file belongs to someone else whom we cannot give it to
    real_fstat = os.fstat
    monkeypatch.setattr(fileio.os, "fchown", refuse)
    monkeypatch.setattr(fileio.os, "lstat", lambda p: _as_other(os.stat(p, follow_symlinks=False)))
    monkeypatch.setattr(fileio.os, "fstat", real_fstat)
    write_path(str(k), Options())
    monkeypatch.undo()
    assert read_table(k)
    mode = stat.S_IMODE(k.stat().st_mode)
    assert mode == 0o755, oct(mode)
    assert k.stat().st_uid == st.st_uid


def _as_other(st: os.stat_result) -> os.stat_result:
    fields = list(st)
    fields[4] += 1          # st_uid
    fields[5] += 1          # st_gid
    return os.stat_result(fields)


def _acl() -> bytes:
    entries = [(1, 6, 0xFFFFFFFF), (2, 4, 65534), (4, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF),
               (0x20, 4, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_xattrs_and_acls_are_kept(cli, tmp_path):
    k = obj(tmp_path)
    try:
        os.setxattr(k, "user.origin", b"kbuild")
        os.setxattr(k, "system.posix_acl_access", _acl())
    except OSError as e:
        pytest.skip(f"no xattrs/ACLs here: {e}")
    mode = stat.S_IMODE(k.stat().st_mode)
    assert cli("write", "--backup", k).rc == 0
    assert read_table(k)
    for p in (k, tmp_path / "k.o.orig"):
        assert os.getxattr(p, "user.origin") == b"kbuild", p
        assert os.getxattr(p, "system.posix_acl_access") == _acl(), p
        assert stat.S_IMODE(p.stat().st_mode) == mode


# ------------------------------------------------------ 7. links
def test_symlink_is_written_through_like_objcopy(cli, tmp_path):
    real = obj(tmp_path, "real.o")
    link = tmp_path / "link.o"
    link.symlink_to("real.o")
    assert cli("write", link).rc == 0
    assert link.is_symlink() and os.readlink(link) == "real.o"
    assert real.read_bytes() == written_bytes(cli, tmp_path, KINDS)


def test_hard_link_is_written_through_the_inode(cli, tmp_path):
    a = obj(tmp_path, "a.o")
    b = tmp_path / "b.o"
    os.link(a, b)
    ino = a.stat().st_ino
    assert cli("write", b).rc == 0
    assert a.stat().st_ino == b.stat().st_ino == ino and a.stat().st_nlink == 2
    assert a.read_bytes() == written_bytes(cli, tmp_path, KINDS)


def test_hard_link_rewrite_that_is_not_an_append_is_refused(cli, tmp_path):
    a = obj(tmp_path, "a.o")
    assert cli("write", a).rc == 0
    os.link(a, tmp_path / "b.o")
    before = a.read_bytes()
    one_error(cli("write", "--force", "--allow-tail", a), "hard links")
    assert a.read_bytes() == before == (tmp_path / "b.o").read_bytes()
    assert a.stat().st_nlink == 2


# ------------------------------------------------------ 8. lost update
@pytest.mark.parametrize("links", [1, 2])
def test_a_file_changed_meanwhile_is_not_replaced(tmp_path, monkeypatch, links):
    from scall_objtool.table import render as emit
    from scall_objtool.errors import InputError
    from scall_objtool.core import Options
    from scall_objtool.table.write import write_path
    k = obj(tmp_path)
    if links == 2:
        os.link(k, tmp_path / "other.o")
    rebuilt = (PREBUILT / "nostatic-O2.o").read_bytes()
    real_render = emit.render

    def render_while_rebuilt(*a, **kw):
        out = real_render(*a, **kw)
        with open(k, "r+b") as f:           # a parallel build rewrites it in place
            f.write(rebuilt)
            f.truncate()
        return out
    monkeypatch.setattr(emit, "render", render_while_rebuilt)
    with pytest.raises(InputError, match="changed on disk"):
        write_path(str(k), Options())
    assert k.read_bytes() == rebuilt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.o", "other.o"][:links]


# ------------------------------------------------------ 9. long names, temporaries
def test_a_242_byte_name_can_be_written(cli, tmp_path):
    k = obj(tmp_path, "a" * 240 + ".o")
    assert len(k.name) == 242
    assert cli("write", "--backup", k).rc == 0
    assert read_table(k)
    assert (tmp_path / (k.name + ".orig")).read_bytes() == KINDS.read_bytes()
    longest = obj(tmp_path, "b" * 253 + ".o")
    assert cli("write", longest).rc == 0 and read_table(longest)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_are_short_and_stale_ones_are_removed(cli, tmp_path):
    from scall_objtool.inputs import fileio
    k = obj(tmp_path)
    dead = _dead_pid()
    stale = [tmp_path / f".scall-{dead}-abcdefgh.tmp",
             tmp_path / f".k.o.{dead}-abcdefgh.scall-tmp"]        # an earlier version's
    for s in stale:
        s.write_bytes(b"half an object")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".scall-{sleeper.pid}-abcdefgh.tmp"
        live.write_bytes(b"in progress")
        assert cli("write", k).rc == 0
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "k.o"])
    finally:
        sleeper.kill()
        sleeper.wait()
    name = f"{fileio.TMP_PREFIX}{4194304}-abcdefgh{fileio.TMP_SUFFIX}"
    assert len(name) <= 32 and re.match(fileio._TMP, name)


# ------------------------------------------------------ 10. the backup is the file
def test_force_backup_keeps_the_bytes_that_were_on_disk(cli, tmp_path):
    k = obj(tmp_path)
    assert cli("write", k).rc == 0
    with_table = k.read_bytes()
    assert cli("write", "--force", "--backup", "--allow-tail", k).rc == 0
    assert (tmp_path / "k.o.orig").read_bytes() == with_table
    assert k.read_bytes() != with_table


# ------------------------------------------------------ 18. stale temporaries cost
def _batch_dir(d: Path, n: int, side: int = 0) -> None:
    """n objects, each with ``side`` other files beside it (.cmd, .d, ... as
    in a kernel build directory)."""
    d.mkdir()
    data = KINDS.read_bytes()
    for i in range(n):
        (d / f"m{i:05d}.o").write_bytes(data)
        for j in range(side):
            (d / f".m{i:05d}.o.{j}.cmd").touch()


def test_a_batch_lists_each_directory_once(tmp_path, monkeypatch):
    from scall_objtool.cli import commands
    from scall_objtool.inputs import fileio
    from scall_objtool.core import Options
    for sub in ("a", "b"):
        _batch_dir(tmp_path / sub, 30)
    calls = []
    real = fileio.stale_temporaries
    monkeypatch.setattr(fileio, "stale_temporaries", lambda d: calls.append(d) or real(d))
    monkeypatch.setattr(fileio, "_cleaned", set())
    monkeypatch.setenv("SCALL_OBJTOOL_NO_PROGRESS", "1")
    rc = commands.write([str(tmp_path)], Options(), quiet=True, jobs=1)
    assert rc == 0
    assert sorted(calls) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert read_table(tmp_path / "a" / "m00029.o")


def _sync_log(monkeypatch, log: Path) -> None:
    """Log every fsync (of a directory or a file) and every rename, in this
    process and in the workers it forks, one line each to ``log`` (O_APPEND)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    real_fsync, real_replace = os.fsync, os.replace

    def note(*words):
        os.write(fd, (" ".join(map(str, words)) + "\n").encode())

    def fsync(f):
        st = os.fstat(f)
        note("fsync-dir" if stat.S_ISDIR(st.st_mode) else "fsync-file",
             os.readlink(f"/proc/self/fd/{f}"))
        return real_fsync(f)

    def replace(src, dst):
        real_replace(src, dst)
        note("rename", os.path.dirname(os.path.abspath(dst)))
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_batch_syncs_each_directory_once(tmp_path, monkeypatch, jobs):
    """A batch write fsyncs each new file before its rename (crash safety),
    and each directory once, after the last rename into it, before the
    command returns -- not once a file (9 files in 3 directories here: 9 file
    syncs and 3 directory syncs, where every file used to cost two)."""
    from scall_objtool.cli import commands
    from scall_objtool.core import Options
    from scall_objtool.inputs import fileio
    objs = []
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
        for i in range(3):
            objs.append(tmp_path / sub / f"k{i}.o")
            shutil.copy(KINDS, objs[-1])
    (tmp_path / "d").mkdir()                    # nothing to add: not written
    shutil.copy(PREBUILT / "nostatic-O2.o", tmp_path / "d" / "n.o")
    monkeypatch.setattr(fileio, "_cleaned", set())
    monkeypatch.setenv("SCALL_OBJTOOL_NO_PROGRESS", "1")
    log = tmp_path / "sync.log"
    _sync_log(monkeypatch, log)
    rc = commands.write([str(tmp_path / d) for d in "abcd"], Options(policy="kernel"),
                        quiet=True, jobs=jobs)
    monkeypatch.undo()
    assert rc == 0 and all(read_table(o) for o in objs)
    events = [line.split(" ", 1) for line in log.read_text().splitlines()]
    files = [p for what, p in events if what == "fsync-file"]
    dirs = [p for what, p in events if what == "fsync-dir"]
    assert len(files) == len(objs) and all(".scall-" in p for p in files)
    assert sorted(dirs) == [str(tmp_path / d) for d in "abc"]
    for d in dirs:          # after the last rename into it
        last = max(i for i, e in enumerate(events) if e == ["rename", d])
        assert events.index(["fsync-dir", d]) > last


def test_one_write_still_syncs_its_directory(tmp_path, monkeypatch):
    """The library's write_path (no batch) syncs the directory at once, and a
    --backup's directory before the object is replaced."""
    from scall_objtool.core import Options
    from scall_objtool.table.write import write_path
    obj = tmp_path / "k.o"
    shutil.copy(KINDS, obj)
    log = tmp_path / "sync.log"
    _sync_log(monkeypatch, log)
    write_path(str(obj), Options(), backup=True)
    monkeypatch.undo()
    events = [line.split(" ", 1)[0] for line in log.read_text().splitlines()]
    assert events == ["fsync-file", "rename", "fsync-dir"] * 2


def _write_lines(d: Path) -> int:
    """The Python lines a batch write of directory ``d`` executes (a count of
    work: a busy machine does not change it)."""
    from scall_objtool.cli import commands
    from scall_objtool.inputs import fileio
    from scall_objtool.core import Options
    from scall_testlib import python_lines
    getattr(fileio, "_cleaned", set()).clear()
    rc, lines = python_lines(commands.write, [str(d)], Options(), quiet=True, jobs=1)
    assert rc == 0
    return lines


def test_batch_write_cost_grows_linearly(tmp_path, monkeypatch):
    """100 and 400 objects in one directory, with 20 other files each: the
    write of 4x the objects costs about 4x the lines (a listing of the
    directory per object made this quadratic: over 10x at these sizes, 80x at 200
    and 800)."""
    monkeypatch.setenv("SCALL_OBJTOOL_NO_PROGRESS", "1")
    costs = {}
    for n in (100, 400):
        d = tmp_path / str(n)
        _batch_dir(d, n, 20)
        costs[n] = _write_lines(d)
    ratio = costs[400] / costs[100]
    assert ratio < 5, f"write of 4x the objects cost {ratio:.1f}x the lines ({costs})"


# ================================================== round 2 (issue 23)
# ------------------------------------------------------ 1. walks stay in their tree
def _stamp(p: Path) -> tuple:
    st = p.stat()
    return p.read_bytes(), st.st_mtime_ns, st.st_ino, stat.S_IMODE(st.st_mode)


def test_write_dir_never_writes_through_a_symlink_out_of_the_tree(cli, tmp_path):
    """issue 23 item 1: DIR/evil.ko -> ../sys/kvm.ko (an installed module, 0444)
    was rewritten by `write --force DIR`.  A walk skips a link out of its tree
    with one warning naming it (counted in the summary), does not descend a
    directory link, and still reads links that stay inside."""
    sysdir, build = tmp_path / "sys", tmp_path / "build"
    sysdir.mkdir()
    build.mkdir()
    victim = obj(sysdir, "kvm.ko")
    os.chmod(victim, 0o444)
    own = obj(build, "own.ko")
    (build / "evil.ko").symlink_to("../sys/kvm.ko")
    (build / "linked-dir").symlink_to("../sys")          # not descended
    (build / "inside.ko").symlink_to("own.ko")           # stays inside: the same file
    before = _stamp(victim)
    for args in (["write", "--force"], ["write", "--force", "--jobs", "2"],
                 ["write", "--force", "--backup", "--include", "*.ko"]):
        res = cli(*args, build)
        assert res.rc == 0, res.stderr
        outside = [ln for ln in res.stderr.splitlines() if "out of the directory" in ln]
        assert outside == [f"scall-objtool: warning: {build / 'evil.ko'}: a symlink out of "
                           f"the directory walked (to {victim}): skipped, neither read nor "
                           "written"], res.stderr
        assert _stamp(victim) == before, args
    assert read_table(own) and not (sysdir / "kvm.ko.orig").exists()
    # scan, check and verify do not read it either; the summary counts it
    res = cli("scan", "-f", "json", build)
    assert res.rc == 0, res.stderr
    doc = res.json()
    assert [o["path"] for o in doc["objects"]] == [str(build / "own.ko")]
    assert doc["summary"]["skipped"] == {"outside": 1, "duplicate": 1}
    for cmd in (["scan"], ["check", "--max-fallback", "99"], ["verify"]):
        res = cli(*cmd, build)
        assert res.rc == 0, res.stderr
        assert "1 symlink out of the tree" in res.stdout, res.stdout
    # named on the command line, a link is written through, as objcopy does
    assert cli("write", build / "evil.ko").rc == 0
    assert read_table(victim) and (build / "evil.ko").is_symlink()


def test_a_walked_file_that_becomes_a_symlink_is_not_followed(tmp_path):
    """Between the walk and the write, a file of the tree replaced by a link to
    a file outside: the write is refused, the outside file untouched."""
    from scall_objtool.inputs.batch import write_one
    from scall_objtool.inputs import expand
    from scall_objtool.core import Options
    sysdir, build = tmp_path / "sys", tmp_path / "build"
    sysdir.mkdir()
    build.mkdir()
    victim = obj(sysdir, "kvm.o")
    own = obj(build, "own.o")
    [inp] = expand([str(build)]).inputs
    assert inp.walked
    own.unlink()
    own.symlink_to(victim)
    before = _stamp(victim)
    out = write_one(inp, Options())
    assert not out.ok and "became a symlink" in out.messages[0], out.messages
    assert _stamp(victim) == before and own.is_symlink()


# ------------------------------------------------------ 2. -o is never an input
@pytest.mark.parametrize("fmt", ["json", "sarif", "text"])
def test_check_output_onto_its_baseline_is_refused(cli, tmp_path, fmt):
    """issue 23 item 2: `check --baseline B.json -o B.json` replaced the baseline
    (also through a link to it): exit 2, nothing written."""
    k = obj(tmp_path)
    base = tmp_path / "B.json"
    base.write_text(cli("scan", "-f", "json", k).stdout)
    (tmp_path / "link.json").symlink_to("B.json")
    before = tree(tmp_path)
    for out in (base, tmp_path / "link.json"):
        one_error(cli("check", "-f", fmt, "--baseline", base, "-o", out, k), "input", "B.json")
        assert tree(tmp_path) == before and (tmp_path / "link.json").is_symlink()


def test_output_named_like_a_missing_input_is_refused(cli, tmp_path):
    """An output that does not exist yet is compared by resolved path: `scan -o
    new.o new.o` used to report the missing input and create new.o."""
    before = tree(tmp_path)
    for args in (["scan", "-o", "new.o", "new.o"], ["verify", "-o", "./new.o", "new.o"],
                 ["check", "-o", "sub/../new.o", "new.o"],
                 ["diff", "-o", "new.json", "new.json", "old.json"],
                 ["dashboard", "-o", "new.json", "new.json"]):
        (tmp_path / "sub").mkdir(exist_ok=True)
        res = cli(*args, cwd=tmp_path)
        one_error(res, "is also an input")
        assert not (tmp_path / "new.o").exists() and not (tmp_path / "new.json").exists()
    assert {k: v for k, v in tree(tmp_path).items()} == before


# ------------------------------------------------------ 3. a failed append is undone
def _fill(mount: Path) -> None:
    """Fill the file system at ``mount`` up to its last byte."""
    fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 4096, 1):
            try:
                while True:
                    os.write(fd, bytes(size))
            except OSError:
                pass
    finally:
        os.close(fd)


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs (root with CAP_SYS_ADMIN), unmounted afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _hard_linked(d: Path) -> tuple[Path, Path]:
    a = obj(d, "a.o", PREBUILT / "staticcall-O2.o")
    os.link(a, d / "b.o")
    return a, d / "b.o"


def test_hard_linked_write_on_a_full_file_system_is_undone(cli, small_fs):
    """issue 23 item 3: a real ENOSPC while appending through the inode left
    the file grown under both names; it is truncated back, exit 2, one line."""
    a, b = _hard_linked(small_fs)
    before = _stamp(a)[:1] + (a.stat().st_size,)
    _fill(small_fs)
    one_error(cli("write", a), "No space left on device")
    assert (a.read_bytes(), a.stat().st_size) == before
    assert b.read_bytes() == before[0] and a.stat().st_nlink == 2
    assert sorted(p.name for p in small_fs.iterdir()) == ["a.o", "b.o", "filler"]


def test_hard_linked_write_over_the_file_size_limit_is_undone(tmp_path):
    """The same with a real EFBIG (RLIMIT_FSIZE a few bytes above the file:
    part of the append is written, then the write fails)."""
    import resource
    a, b = _hard_linked(tmp_path)
    before = a.read_bytes()
    limit = len(before) + 100

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    p = subprocess.run([sys.executable, "-m", "scall_objtool", "write", str(a)],
                       capture_output=True, text=True, timeout=60, preexec_fn=cap,
                       check=False)
    assert p.returncode == 2 and "File too large" in p.stderr, (p.returncode, p.stderr)
    assert len(p.stderr.splitlines()) == 1 and "Traceback" not in p.stderr
    assert a.read_bytes() == before == b.read_bytes()
    assert a.stat().st_size == len(before)


@pytest.mark.parametrize("fail", ["append", "fsync-after-header"])
def test_any_failure_after_a_partial_in_place_write_restores(tmp_path, monkeypatch, fail):
    """A failure after the header was written (the last fsync) restores the old
    header too; a failure mid-append truncates."""
    from scall_objtool.inputs import fileio
    from scall_objtool.errors import InputError
    from scall_objtool.core import Options
    from scall_objtool.table.write import write_path
    a, b = _hard_linked(tmp_path)
    before = a.read_bytes()
    real_pwrite, real_fsync = os.pwrite, os.fsync
    calls = {"fsync": 0}

    def pwrite(fd, data, off):
        if fail == "append" and off > 0:
            real_pwrite(fd, bytes(data[:len(data) // 2]), off)
            raise OSError(28, os.strerror(28))
        return real_pwrite(fd, data, off)

    def fsync(fd):
        calls["fsync"] += 1
        if fail == "fsync-after-header" and calls["fsync"] == 2:
            raise OSError(5, os.strerror(5))
        return real_fsync(fd)
    monkeypatch.setattr(fileio.os, "pwrite", pwrite)
    monkeypatch.setattr(fileio.os, "fsync", fsync)
    with pytest.raises(InputError, match="No space left|Input/output error"):
        write_path(str(a), Options())
    monkeypatch.undo()
    assert a.read_bytes() == before == b.read_bytes()


# ------------------------------------------------------ 16. one file twice
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_one_file_twice_in_a_batch_is_written_once(cli, tmp_path, jobs):
    """issue 23 item 16: a.o, a symlink and a hard link to it: exit 0 with
    --jobs 1 but "changed on disk" with --jobs 2.  Inputs are de-duplicated by
    device and inode before dispatch, for every command, and it is said."""
    a = obj(tmp_path, "a.o")
    (tmp_path / "s.o").symlink_to("a.o")
    os.link(a, tmp_path / "h.o")
    names = [a, tmp_path / "s.o", tmp_path / "h.o", a]
    res = cli("write", "--jobs", jobs, *names)
    assert res.rc == 0, res.stderr
    dup = [ln for ln in res.stderr.splitlines() if "the same file as" in ln]
    assert len(dup) == 3 and all(f"the same file as {a} " in ln for ln in dup), res.stderr
    assert res.stdout.count("wrote 2 entries") == 1
    assert a.read_bytes() == written_bytes(cli, tmp_path)
    for cmd in (["scan"], ["verify"], ["check", "--max-fallback", "99"]):
        r = cli(*cmd, "--jobs", jobs, "-f", "json", *names)
        assert r.rc == 0, (cmd, r.stderr)
        doc = r.json()
        assert doc["summary"]["objects"] == 1 and doc["summary"]["skipped"] == {"duplicate": 3}
    r = cli("scan", *names)
    assert "3 duplicates of other inputs (same file)" in r.stdout


def test_a_walk_keeps_the_real_name_of_a_linked_file(cli, tmp_path):
    """In a walk, of a file and a link to it the file is processed, whatever
    the sorted order; a hard-linked pair is one object."""
    d = tmp_path / "t"
    d.mkdir()
    obj(d, "m.o")
    (d / "a-link.o").symlink_to("m.o")
    res = cli("scan", "-f", "json", d)
    assert [o["path"] for o in res.json()["objects"]] == [str(d / "m.o")]
    res = cli("write", d)
    assert res.rc == 0 and res.stdout.startswith(f"{d / 'm.o'}: wrote"), res.stdout


# ------------------------------------------------------ 17. -o that is stdout
def test_write_to_dev_stdout_keeps_the_summary_out_of_the_object(cli, tmp_path):
    """issue 23 item 17: `write -o /dev/stdout X.o > Y.o` put the summary
    lines inside Y.o; any -o that is our stdout (device and inode) implies -q."""
    k = obj(tmp_path)
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    for out in ("/dev/stdout", str(link), str(tmp_path / "y.o")):
        with open(tmp_path / "y.o", "wb") as f:
            p = subprocess.run([sys.executable, "-m", "scall_objtool", "write", "-o", out,
                                str(k)], stdout=f, stderr=subprocess.PIPE, timeout=60,
                               check=False)
        assert p.returncode == 0 and p.stderr == b"", (out, p.stderr)
        assert (tmp_path / "y.o").read_bytes() == written_bytes(cli, tmp_path), out
    assert k.read_bytes() == KINDS.read_bytes()


# ------------------------------------------------------ 20. signed modules
def test_a_signed_module_is_never_rewritten(cli, tmp_path):
    """issue 23 item 20: a signed module was rewritten silently (the signature
    ended up mid-file; under module.sig_enforce it no longer loads).  write
    refuses it like a compressed one, whatever the options; scan, check and
    verify still read it."""
    ko = tmp_path / "m.ko"
    ko.write_bytes(sign(KINDS.read_bytes()))
    before = tree(tmp_path)
    for args in (["write"], ["write", "--force", "--backup"], ["write", "--dry-run"],
                 ["write", "-o", tmp_path / "out.ko"], ["write", "-o", "-"]):
        res = cli(*args, ko)
        one_error(res, str(ko), "signed module", "write before signing")
        assert tree(tmp_path) == before, args
    res = cli("write", tmp_path)                # found by a walk: the same error
    one_error(res, "signed module")
    assert tree(tmp_path) == before
    from scall_objtool.core.elf import ElfFile
    from scall_objtool.errors import InputError
    from scall_objtool.core import Options
    from scall_objtool.table.write import decide
    with pytest.raises(InputError, match="write before signing"):     # the library too
        decide(ElfFile(ko.read_bytes(), str(ko)), Options())
    s = cli("scan", "-f", "json", ko)
    assert s.rc == 0 and len(s.json()["objects"][0]["sites"]) == 10, s.stderr
    assert cli("check", "--max-fallback", "99", ko).rc == 0
    # signed after its table was written: verify reads the table
    w = obj(tmp_path, "w.o")
    assert cli("write", w).rc == 0
    w.write_bytes(sign(w.read_bytes()))
    v = cli("verify", w)
    assert v.rc == 0 and "2 entries, 0 failed" in v.stdout, (v.stdout, v.stderr)
