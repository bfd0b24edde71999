"""Atomic, durable file replacement.

The new content goes to a temporary file in the destination's directory, is
flushed and fsync'ed, gets the mode of the file it replaces, and is renamed
over it; the directory is synced after the rename.  A crash at any point
leaves either the old file or the complete new one, plus at worst a
temporary file named ``.NAME.*.scall-tmp`` that a later run removes.
"""
from __future__ import annotations

import os
import stat

TMP_SUFFIX = ".scall-tmp"


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


def stale_temporaries(path: str) -> list[str]:
    import glob
    d, base = os.path.split(os.path.abspath(path))
    return glob.glob(os.path.join(glob.escape(d), f".{glob.escape(base)}.*{TMP_SUFFIX}"))


def remove_stale_temporaries(path: str) -> None:
    """Remove temporaries that an interrupted earlier run left beside ``path``."""
    for tmp in stale_temporaries(path):
        try:
            pid = int(tmp.rsplit(".", 2)[-2].split("-")[0])
        except (ValueError, IndexError):
            pid = None
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue        # another process is writing right now
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:                                # a zombie is dead, only not reaped yet
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return True


def atomic_write(path: str, data: bytes, mode_from: str | None = None) -> None:
    """Replace ``path`` with ``data`` atomically.  ``path`` itself is replaced
    even if it is a symlink (its target is never written through)."""
    import tempfile
    d, base = os.path.split(os.path.abspath(path))
    mode = None
    src = mode_from or path
    try:
        mode = stat.S_IMODE(os.stat(src).st_mode)
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{base}.{os.getpid()}-", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(d)
