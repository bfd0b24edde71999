"""Safe output: atomic replacement of regular files, direct writes elsewhere.

``atomic_write`` puts new content in a temporary file in the destination's
directory, flushes and fsyncs it, gives it the owner, group, mode and extended
attributes (ACLs included) of the file it replaces, checks that the file did
not change since it was read (``expect``), and renames it over the file; the
directory is synced after the rename -- or, while a batch defers it
(``deferred_sync``), once after the last rename into it, before the batch
ends: a crash leaves each file old or new as before, and what the batch
renamed is on disk when it is done.  A crash at any point leaves either the
old file or the complete new one, plus at worst a temporary file named
``.scall-PID-XXXXXXXX.tmp`` that a later run removes.

What is not a regular file is never replaced: a character or block device, a
FIFO or a terminal is written into directly, and ``-`` is standard output.
A file with several hard links is written in place through its inode (as
binutils' objcopy and strip do), and only when the new content is the old one
with its first bytes changed and data appended -- what a first ``write``
produces -- so that a crash leaves the old object, and a failure (a full
file system, an I/O error) truncates it back to the old one; otherwise it is
refused.
"""
from __future__ import annotations

import os
import stat

TMP_PREFIX = ".scall-"
TMP_SUFFIX = ".tmp"
#: temporaries of earlier versions: ``.NAME.PID-XXXXXXXX.scall-tmp``
OLD_TMP_SUFFIX = ".scall-tmp"
#: temporary names (ours, and the older naming), matched only when a directory
#: is cleaned: compiled then, not on every start
_TMP = r"\.scall-(\d+)-[A-Za-z0-9_]+\.tmp\Z"
_OLD_TMP = r"\..*\.(\d+)-[A-Za-z0-9_]+\.scall-tmp\Z"
#: the first bytes a first ``write`` changes (the ELF header)
HEADER = 64


class UnsafeWrite(Exception):
    """The write was refused to protect data (a message for the user)."""


#: while a batch defers directory syncs (``deferred_sync``): (the process that
#: defers, the directories renamed into and not yet synced)
_unsynced: tuple[int, set[str]] | None = None


class deferred_sync:
    """Context: each directory a replacement renames into is synced once, when
    the outermost one ends (normally or not), not after every rename.

    In a process forked while its parent defers (a pool's worker, around each
    chunk of the batch) the directories are not synced but handed back
    (``handed``, after a normal end) for the parent to ``adopt``: a directory
    that several workers write into is still synced once, by the parent."""

    def __enter__(self):
        global _unsynced
        me = os.getpid()
        self.outer = _unsynced is None or _unsynced[0] != me
        self.forked_from = _unsynced if self.outer else None
        self.handed: list[str] | None = None
        if self.outer:
            _unsynced = (me, set())
        return self

    def __exit__(self, exc_type, *exc):
        global _unsynced
        if self.outer:
            pending, _unsynced = _unsynced[1], self.forked_from
            if self.forked_from is not None and exc_type is None:
                self.handed = sorted(pending)
            else:
                for d in sorted(pending):
                    _fsync_dir(d)
        return False

    @staticmethod
    def adopt(directories) -> None:
        """Directories a worker renamed into: synced with this process's own."""
        for d in directories:
            _sync_directory(d)


def _sync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable: now, or when the batch that
    defers it ends."""
    if _unsynced is not None and _unsynced[0] == os.getpid():
        _unsynced[1].add(directory)
    else:
        _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------- stale temporaries
_cleaned: set[str] = set()


def stale_temporaries(directory: str) -> list[str]:
    """Temporaries in ``directory`` whose writer is gone (one listing)."""
    out = []
    try:
        entries = list(os.scandir(directory or "."))
    except OSError:
        return out
    for e in entries:
        name = e.name
        if not name.startswith("."):
            continue
        import re                       # off the start-up path: only for a candidate
        m = re.match(_TMP, name) if name.endswith(TMP_SUFFIX) else (
            re.match(_OLD_TMP, name, re.DOTALL) if name.endswith(OLD_TMP_SUFFIX) else None)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid != os.getpid() and _alive(pid):
            continue                    # another process is writing right now
        out.append(os.path.join(directory, name))
    return sorted(out)


def clean_directory(directory: str) -> None:
    """Remove temporaries an interrupted earlier run left in ``directory``;
    done once per directory per process (a batch lists each directory once)."""
    directory = os.path.abspath(directory)
    if directory in _cleaned:
        return
    _cleaned.add(directory)
    for tmp in stale_temporaries(directory):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def remove_stale_temporaries(path: str) -> None:
    """Clean the directory ``path`` is in (see ``clean_directory``)."""
    clean_directory(os.path.dirname(os.path.abspath(path)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    try:                                # a zombie is dead, only not reaped yet
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return True


# ---------------------------------------------------------------- identity
def identity(st: os.stat_result) -> tuple:
    """What must not change between reading a file and replacing it."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def same_file(a: str, b: str) -> bool:
    """Are ``a`` and ``b`` the same file (device and inode)?"""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _check_unchanged(path: str, expect: os.stat_result | None, st=None) -> None:
    if expect is None:
        return
    try:
        now = st if st is not None else os.stat(path)
    except OSError:
        now = None
    if now is None or identity(now) != identity(expect):
        raise UnsafeWrite("changed on disk while it was being processed (a parallel build?); "
                          "left as it is now, not replaced")


# ---------------------------------------------------------------- metadata
def _copy_metadata(fd: int, tmp: str, src: os.stat_result | None, src_path: str | None,
                   full: bool) -> None:
    """Give the temporary ``src``'s mode and, if ``full``, its owner, group
    and extended attributes.  A set-id bit is kept only with the owner
    (group) it was set for."""
    if src is None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        return
    mode = stat.S_IMODE(src.st_mode)
    mine = os.fstat(fd)
    if full and (mine.st_uid, mine.st_gid) != (src.st_uid, src.st_gid):
        try:
            os.fchown(fd, src.st_uid, src.st_gid)
        except OSError:
            try:
                os.fchown(fd, -1, src.st_gid)       # a member of the group keeps it
            except OSError:
                pass
        mine = os.fstat(fd)
    if mine.st_uid != src.st_uid:
        mode &= ~stat.S_ISUID
    if mine.st_gid != src.st_gid:
        mode &= ~stat.S_ISGID
    if full and src_path is not None:
        _copy_xattrs(src_path, fd, keep_caps=mine.st_uid == src.st_uid)
    os.chmod(tmp, mode)                 # after chown, which may clear set-id bits


def _copy_xattrs(src_path: str, fd: int, keep_caps: bool) -> None:
    """Extended attributes, ACLs (system.posix_acl_*) included, as ``cp -a``
    does; those the file system or our privileges refuse are dropped."""
    try:
        names = os.listxattr(src_path)
    except OSError:
        return
    for name in names:
        if name == "security.capability" and not keep_caps:
            continue                    # like a set-id bit: not for another owner
        try:
            os.setxattr(fd, name, os.getxattr(src_path, name))
        except OSError:
            pass


# ------------------------------------------------------------------ writes
def _parts(data) -> tuple:
    """The buffers ``data`` is written as: itself, or (new content made of
    pieces, ``table.render.Assembled``) its pieces, in order: a rewritten
    object is written without first joining its pieces into one more copy
    of the whole file."""
    parts = getattr(data, "parts", None)
    return (data,) if parts is None else parts


def _write_all(fd: int, data: bytes, offset: int | None = None) -> None:
    for part in _parts(data):
        view = memoryview(part)
        while view:
            n = os.write(fd, view) if offset is None else os.pwrite(fd, view, offset)
            if offset is not None:
                offset += n
            view = view[n:]


def _write_direct(path: str, data: bytes) -> None:
    """Into a device, FIFO or terminal: opened for writing, never created,
    never replaced."""
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _std_stream(st: os.stat_result) -> int | None:
    """1 or 2 when ``st`` is the file our stdout or stderr writes to."""
    for fd in (1, 2):
        try:
            s = os.fstat(fd)
        except OSError:
            continue
        if (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino):
            return fd
    return None


def write_output(path: str, data: bytes, meta_from: str | None = None) -> None:
    """Write an output the user named (``-o``).  ``-`` is stdout; a device,
    FIFO or terminal (``/dev/null``, ``/dev/stdout``) is written into; the
    file our stdout or stderr is redirected to is written through that
    stream; anything else is replaced atomically (the name itself, as
    objcopy does, even if it is a symlink)."""
    if path == "-":
        _write_all(1, data)
        return
    if path == "":
        raise UnsafeWrite("an empty output path")
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None:
        fd = _std_stream(st)
        if fd is not None:
            _write_all(fd, data)
            return
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, os.strerror(21), path)
        if not stat.S_ISREG(st.st_mode):
            _write_direct(path, data)
            return
    atomic_write(path, data, meta_from=meta_from)


def stream_of(path: str) -> int | None:
    """1 or 2 when ``path`` is the file our stdout or stderr writes to (``-``
    is stdout; else the same device and inode: ``/dev/stdout``,
    ``/proc/self/fd/2``, the file a stream is redirected to)."""
    if path == "-":
        return 1
    try:
        return _std_stream(os.stat(path))
    except (OSError, ValueError):
        return None


def replace_in_place(path: str, data: bytes, old: bytes,
                     expect: os.stat_result | None = None, follow: bool = True) -> None:
    """Replace the object ``path`` (read as ``old``) with ``data``, as
    objcopy does in place: through a symlink to its target (unless not
    ``follow``: a file found by a directory walk must not have become one);
    a file with several hard links through its inode, so that every name
    sees it."""
    if os.path.islink(path) and not follow:
        raise UnsafeWrite("became a symlink after the directory was walked: not followed, "
                          "left as it is")
    target = os.path.realpath(path) if os.path.islink(path) else path
    st = os.stat(target)
    if st.st_nlink > 1:
        _write_through_inode(target, data, old, expect)
    else:
        atomic_write(target, data, expect=expect)


def _write_through_inode(path: str, data: bytes, old: bytes,
                         expect: os.stat_result | None) -> None:
    data = bytes(data)      # pieces joined (bytes: the same object), compared and cut below
    if not (len(data) >= len(old) and data[HEADER:len(old)] == old[HEADER:]
            and len(old) >= HEADER):
        raise UnsafeWrite("has several hard links and this rewrite is not an append: "
                          "refusing to split the links or to rewrite it in place "
                          "(use -o, then move the result)")
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        _check_unchanged(path, expect, st)
        try:
            # the appended data first; a crash before the header is written
            # leaves the old object (with unreferenced bytes at its end)
            _write_all(fd, data[len(old):], len(old))
            os.fsync(fd)
            _write_all(fd, data[:HEADER], 0)
            os.fsync(fd)
        except BaseException:
            # a full file system (ENOSPC, EFBIG), an I/O error, a signal: the
            # file goes back to the old object, header and size
            _restore(fd, old, st.st_size)
            raise
    finally:
        os.close(fd)


def _restore(fd: int, old: bytes, size: int) -> None:
    """Undo a partial write through the inode: the old size first (freeing what
    was appended needs no space), then the old header, each tried."""
    for undo in (lambda: os.ftruncate(fd, size), lambda: _write_all(fd, old[:HEADER], 0),
                 lambda: os.fsync(fd)):
        try:
            undo()
        except OSError:
            pass


def create_temporary(directory: str) -> tuple[int, str]:
    """(descriptor, path) of a new file ``.scall-PID-XXXXXXXX.tmp`` in
    ``directory``, created exclusively (``O_EXCL``, never through a symlink,
    mode 0600), as ``tempfile.mkstemp`` makes one -- without importing
    ``tempfile``, which brings in shutil, random, re, bz2 and lzma: more than
    the rest of a write of one object."""
    prefix = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-")
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(10000):                  # tempfile's TMP_MAX
        tmp = f"{prefix}{os.urandom(4).hex()}{TMP_SUFFIX}"
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(17, "no usable temporary file name", directory)


def atomic_write(path: str, data: bytes, meta_from: str | None = None,
                 expect: os.stat_result | None = None, clone: bool = False) -> None:
    """Replace the regular file (or create the new path) ``path`` with
    ``data`` atomically; the name itself is replaced (a symlink is not
    followed).  The new file keeps the owner, group, mode and extended
    attributes of the file it replaces; a new file gets ``meta_from``'s mode
    and the caller's owner (set-id bits only if the owner/group are the
    same); with ``clone``, all of ``meta_from``'s metadata (``cp -a``, for a
    backup; its directory is synced at once, so that the backup is on disk
    before the file it keeps is replaced).  With ``expect``, the file must
    still be the one described (inode, size, mtime, ctime) just before the
    rename."""
    d = os.path.dirname(os.path.abspath(path))
    try:
        old = os.lstat(path)
    except OSError:
        old = None
    if old is not None and stat.S_ISREG(old.st_mode) and not clone:
        src, src_path, full = old, path, True
    else:
        src_path, full = meta_from, clone
        try:
            src = os.stat(meta_from) if meta_from else None
        except OSError:
            src = None
    fd, tmp = create_temporary(d)
    try:
        with os.fdopen(fd, "wb") as f:
            for part in _parts(data):
                f.write(part)
            f.flush()
            _copy_metadata(f.fileno(), tmp, src, src_path, full)
            os.fsync(f.fileno())
        _check_unchanged(path, expect)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if clone:
        _fsync_dir(d)
    else:
        _sync_directory(d)
