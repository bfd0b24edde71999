"""Expand command-line paths into the objects to process.

A path may be a file, a directory (walked recursively, in sorted order,
keeping files that match ``--include`` globs), or an ``ar`` archive (``.a``;
its members, regular or thin, are scanned, never rewritten; ``write`` does
not expand archives at all).  The order of the result is the
order of the arguments, then sorted order within a directory, then member
order within an archive: deterministic whatever the file system returns.
"""
from __future__ import annotations

import os

from .errors import InputError
from .records import record

AR_MAGIC = b"!<arch>\n"
THIN_MAGIC = b"!<thin>\n"
DEFAULT_INCLUDE = ("*.o", "*.ko", "*.ko.xz", "*.ko.zst", "*.ko.gz", "*.a")
MAX_MEMBERS = 1 << 20


@record(frozen=True)
class Input:
    """One object: a file, or a member of an archive."""
    display: str                    # the name used in reports and messages
    path: str                       # the file on disk (the archive for a member)
    member_offset: int | None = None
    member_size: int | None = None
    archive: str | None = None      # the archive a member (regular or thin) belongs to

    @property
    def is_member(self) -> bool:
        """A member of an archive: read, never written (a thin archive's
        members are files elsewhere, but still not the archive's to rewrite)."""
        return self.member_offset is not None or self.archive is not None

    def read(self) -> bytes:
        """The object's bytes: a member's slice of its archive, a compressed
        module (.ko.xz/.zst/.gz) expanded."""
        from .elf import load_file
        if self.member_offset is None:
            return load_file(self.path, self.display)
        from .elf import read_file
        return read_file(self.path)[self.member_offset:self.member_offset + self.member_size]


def show(path: str) -> str:
    """A path as it may appear in a report: control characters and bytes that
    are not UTF-8 escaped (file names are bytes; terminals and JSON are not)."""
    from .elf import printable
    return printable(os.fsencode(path))


def is_archive(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(8) in (AR_MAGIC, THIN_MAGIC)
    except OSError:
        return False


def archive_members(path: str, data: bytes) -> list[Input]:
    """The object members of an ar archive (GNU, BSD and thin formats)."""
    thin = data.startswith(THIN_MAGIC)
    if not (thin or data.startswith(AR_MAGIC)):
        raise InputError("not an ar archive", path)
    pos, size = 8, len(data)
    longnames = b""
    out: list[Input] = []
    while pos < size:
        if pos + 60 > size:
            raise InputError(f"truncated archive member header at offset {pos}", path)
        hdr = data[pos:pos + 60]
        if hdr[58:60] != b"`\n":
            raise InputError(f"corrupt archive member header at offset {pos}", path)
        name = hdr[0:16].rstrip(b" ")
        try:
            msize = int(hdr[48:58].strip() or b"0")
        except ValueError:
            raise InputError(f"bad archive member size at offset {pos}", path) from None
        if msize < 0:
            raise InputError(f"bad archive member size at offset {pos}", path)
        body = pos + 60
        special = name in (b"/", b"/SYM64/", b"//", b"__.SYMDEF", b"__.SYMDEF SORTED")
        stored = 0 if (thin and not special) else msize   # thin: members live outside
        if body + stored > size:
            raise InputError(f"archive member at offset {pos} extends past the end", path)
        if name == b"//":
            longnames = data[body:body + msize]
        elif not special:
            display = name
            payload = body
            length = msize
            if name.startswith(b"/") and name[1:].isdigit():
                off = int(name[1:])
                if off >= len(longnames):
                    raise InputError(f"bad long member name reference {name!r}", path)
                end = longnames.find(b"\n", off)
                display = longnames[off:end if end >= 0 else len(longnames)].rstrip(b"/")
            elif name.startswith(b"#1/"):                    # BSD: name follows header
                try:
                    nlen = int(name[3:])
                except ValueError:
                    raise InputError(f"bad BSD member name {name!r}", path) from None
                if nlen > msize:
                    raise InputError(f"bad BSD member name length {nlen}", path)
                display = data[body:body + nlen].rstrip(b"\0")
                payload, length = body + nlen, msize - nlen
            else:
                display = name.rstrip(b"/")
            from .elf import printable
            text = printable(display)
            if thin:
                member = os.path.join(os.path.dirname(path), os.fsdecode(display))
                out.append(Input(f"{show(path)}({text})", member, archive=path))
            else:
                out.append(Input(f"{show(path)}({text})", path, payload, length, archive=path))
            if len(out) > MAX_MEMBERS:
                raise InputError("archive has too many members", path)
        pos = body + stored
        pos += pos & 1                                        # members are 2-aligned
    return out


def expand(paths: list[str], include: list[str] | None = None,
           archives: bool = True) -> tuple[list[Input], list[InputError]]:
    """The inputs named by ``paths``, and the errors met while expanding them."""
    patterns = tuple(include) if include else DEFAULT_INCLUDE
    out: list[Input] = []
    errors: list[InputError] = []

    def add_file(p: str) -> None:
        if archives and is_archive(p):
            try:
                from .elf import read_file
                out.extend(archive_members(p, read_file(p)))
            except InputError as e:
                errors.append(e)
        else:
            out.append(Input(show(p), p))

    for p in paths:
        if os.path.isdir(p):
            import fnmatch
            found = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in files:
                    if any(fnmatch.fnmatchcase(f, pat) for pat in patterns):
                        full = os.path.join(root, f)
                        if os.path.isfile(full):
                            found.append(full)
            if not found:
                errors.append(InputError("no objects found in this directory (include: "
                                         f"{' '.join(patterns)})", show(p)))
            for full in sorted(found):
                add_file(full)
        elif os.path.isfile(p):
            add_file(p)
        else:
            out.append(Input(show(p), p))   # reported when read: "cannot open"
    return out, errors
