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
import stat

from ..errors import InputError
from ..records import LIST, later, record

#: a command that reads reports only never needs it
_elf = later("scall_objtool.core.elf")

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
    walked: bool = False            # found by a directory walk, not named

    @property
    def is_member(self) -> bool:
        """A member of an archive: read, never written (a thin archive's
        members are files elsewhere, but still not the archive's to rewrite)."""
        return self.member_offset is not None or self.archive is not None

    def read(self) -> bytes:
        """The object's bytes: a member's own bytes (read alone, not with its
        archive), a compressed module (.ko.xz/.zst/.gz) expanded."""
        if self.member_offset is None:
            return _elf().load_file(self.path, self.display)
        from ..core.elf import read_range
        return read_range(self.path, self.member_offset, self.member_size)


def show(path: str) -> str:
    """A path as it may appear in a report: control characters and bytes that
    are not UTF-8 escaped (file names are bytes; terminals and JSON are not)."""
    return _elf().printable(os.fsencode(path))


def is_archive(path: str) -> bool:
    """Does ``path`` start with an ar archive's magic?  (Read with the system
    calls alone: a walk of a build tree asks it of every object.)"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, ValueError):
        return False
    try:
        head = b""
        while len(head) < 8:
            more = os.read(fd, 8 - len(head))
            if not more:
                break
            head += more
        return head in (AR_MAGIC, THIN_MAGIC)
    except OSError:
        return False
    finally:
        os.close(fd)


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
            # a long name: "/OFFSET" into the "//" table (binutils' thin archives
            # of full paths write "/OFFSET      /", a slash closing the field)
            ref = name[1:].rstrip(b" /") if name.startswith(b"/") else b""
            if ref.isdigit():
                off = int(ref)
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
            from ..core.elf import display_name
            text = display_name(display)
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


@record(frozen=True)
class Expansion:
    """The inputs named on a command line, the errors met expanding them, the
    files a directory walk passed over as repeats of others (display, why),
    the symlinks it did not follow out of its tree (display, target), and the
    inputs left out as the same file as another (display, display kept);
    ``linked``: how many of the repeats are parts of a linked artifact the
    walk reads instead (``expand(linked=True)``)."""
    inputs: list
    errors: list
    repeats: list
    outside: list = LIST
    duplicates: list = LIST
    linked: int = 0


class _Realpaths(dict):
    """``os.path.realpath`` of the files of a walk, each directory resolved
    once (a realpath costs an lstat per component of the path: a kernel tree
    of 800 objects asked 22,000)."""

    def __call__(self, path: str) -> str:
        head, tail = os.path.split(path)
        if tail in ("", ".", ".."):
            return os.path.realpath(path)
        base = self.get(head)
        if base is None:
            base = self[head] = os.path.realpath(head)
        full = os.path.join(base, tail)
        return os.path.realpath(full) if os.path.islink(full) else full


def expand(paths: list[str], include: list[str] | None = None,
           archives: bool = True, linked: bool = False) -> Expansion:
    """The inputs named by ``paths``.

    A directory walk stays in its tree: a symlink that resolves outside the
    directory named is neither read nor written (listed in ``outside``); one
    that stays inside is read (and written) as its target, and a link to a
    directory is not descended (its files are walked where they are).  Every
    file counts once: inputs that are the same file (device and inode: a
    symlink, a hard link, a name given twice; an archive member by its
    offset) are processed once, the first in order (within a walk, the name
    that is not a link), the others listed in ``duplicates``.

    In a directory walk (never for a file named explicitly) every call site
    counts once in a kernel build tree, where Kbuild leaves objects that repeat
    others: ``vmlinux.o`` (every built-in object, when the walk finds others
    too), a thin archive's members that the walk finds as files themselves
    (``built-in.a``, ``vmlinux.a``), and, beside a ``NAME.mod`` (the list of a
    module's parts), ``NAME.ko`` and a composite ``NAME.o`` linked from other
    parts.  Those are passed over and listed in ``repeats``.  Objects of
    another ELF class or machine found by a walk are marked ``walked`` and
    skipped when read (x86 kernels hold 32-bit realmode and boot objects).

    With ``linked`` (``check``: verdicts, not tables) a walk prefers what was
    linked: ``vmlinux`` at the top of the walk is read and the objects linked
    into it (the members of ``vmlinux.a``) are passed over; a ``NAME.ko``
    beside ``NAME.mod`` is read and the parts ``NAME.mod`` lists (and a
    composite ``NAME.o``) are passed over.  Their sites are then judged at
    final addresses or by the module loader's layout, each counted once."""
    patterns = tuple(include) if include else DEFAULT_INCLUDE
    resolve = _Realpaths()
    out: list[Input] = []
    errors: list[InputError] = []
    repeats: list[tuple[str, str]] = []
    linked_parts = 0
    outside: list[tuple[str, str]] = []

    def add_file(p: str, walked: frozenset = frozenset(), real: str | None = None) -> None:
        if archives and is_archive(real or p):
            try:
                from ..core.elf import read_file
                members = archive_members(real or p, read_file(real or p))
            except InputError as e:
                errors.append(e)
                return
            for m in members:
                if m.member_offset is None and resolve(m.path) in walked:
                    repeats.append((m.display, "a thin archive's member the walk reads itself"))
                else:
                    out.append(Input(m.display, m.path, m.member_offset, m.member_size,
                                     m.archive, bool(walked)))
        else:
            out.append(Input(show(p), real or p, walked=bool(walked)))

    known: dict[str, tuple] = {}        # a named file's (device, inode), for _once
    for p in paths:
        try:
            st = os.stat(p)                 # one stat a name: isdir, isfile, its identity
        except (OSError, ValueError):
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            walk = _walk(p, patterns)
            errors.extend(walk.errors)
            outside.extend((show(f), show(t)) for f, t in walk.outside)
            found = walk.found
            if not found and not walk.outside and not walk.errors:
                errors.append(InputError("no objects found in this directory (include: "
                                         f"{' '.join(patterns)})", show(p)))
            if linked:
                keep, skipped, held = _kbuild_linked(p, found, resolve)
                linked_parts += held
            else:
                keep, skipped = _kbuild_repeats(found)
            repeats.extend((show(f), why) for f, why in skipped)
            # every file the walk found (read, or passed over as held by another)
            walked = frozenset(map(resolve, found))
            for full in keep:
                add_file(full, walked, walk.links.get(full))
        elif st is not None and stat.S_ISREG(st.st_mode):
            known[p] = (st.st_dev, st.st_ino)
            add_file(p)
        else:
            out.append(Input(show(p), p))   # reported when read: "cannot open"
    inputs, duplicates = _once(out, known)
    return Expansion(inputs, errors, repeats, outside, duplicates, linked_parts)


def _once(inputs: list[Input], known: dict[str, tuple] | None = None
          ) -> tuple[list[Input], list[tuple[str, str]]]:
    """Each file once (device, inode; and offset for a member of a regular
    archive): (the inputs kept, in order; [(display, display kept)] the
    others).  Of the names of one file the first is kept, but a name that
    is not a symlink wins over an earlier one that is (``a-link.o`` and
    ``a.o`` in one directory: ``a.o`` is processed).  ``known``: the
    (device, inode) of paths already stat'ed."""
    stats: dict[str, tuple | None] = dict(known or {})

    def key(inp: Input):
        if inp.path not in stats:
            try:
                st = os.stat(inp.path)
                stats[inp.path] = (st.st_dev, st.st_ino)
            except (OSError, ValueError):
                stats[inp.path] = None
        ident = stats[inp.path]
        return None if ident is None else (*ident, inp.member_offset)

    def direct(inp: Input) -> bool:
        return inp.display == show(inp.path) and not os.path.islink(inp.path)

    keys = [key(i) for i in inputs]
    chosen: dict[tuple, int] = {}
    for n, (inp, k) in enumerate(zip(inputs, keys)):
        if k is None:
            continue
        if k not in chosen or (not direct(inputs[chosen[k]]) and direct(inp)
                               and inp.walked and inputs[chosen[k]].walked):
            chosen[k] = n
    kept, dropped = [], []
    for n, (inp, k) in enumerate(zip(inputs, keys)):
        if k is None or chosen[k] == n:
            kept.append(inp)
        else:
            dropped.append((inp.display, inputs[chosen[k]].display))
    return kept, dropped


@record(frozen=True)
class Walk:
    """What a directory walk found: matching files (sorted; the name in the
    tree), symlinks among them to their target in the tree (name -> real
    path), symlinks out of the tree (name, target), directories it could not
    list (InputError)."""
    found: list
    links: dict
    outside: list
    errors: list


def _walk(top: str, patterns: tuple) -> Walk:
    """Walk ``top`` without recursion (a tree may be any depth) and without
    leaving it: directory symlinks are not descended, file symlinks are kept
    only when their target is inside ``top`` (resolved)."""
    import fnmatch
    real_top = os.path.realpath(top)
    found: list[str] = []
    links: dict[str, str] = {}
    outside: list[tuple[str, str]] = []
    errors: list[InputError] = []
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as e:
            errors.append(InputError(f"cannot list this directory: {e.strerror}", show(d)))
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                    continue
                if not any(fnmatch.fnmatchcase(e.name, pat) for pat in patterns):
                    continue
                link = e.is_symlink()
                if not e.is_file():
                    continue            # a device, FIFO, dangling link or link to a directory
            except OSError:
                continue
            if link:
                target = os.path.realpath(e.path)
                if not _inside(target, real_top):
                    outside.append((e.path, target))
                    continue
                links[e.path] = target
            found.append(e.path)
    return Walk(sorted(found), links, sorted(outside), sorted(errors, key=lambda e: e.path))


def _inside(path: str, top: str) -> bool:
    """Is the resolved ``path`` ``top`` or below it (both absolute and real)?"""
    try:
        return os.path.commonpath([path, top]) == top
    except ValueError:
        return False


def _kbuild_repeats(found: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(the walked files to read, [(file, why)] those that repeat others)."""
    skipped = []
    objects = [f for f in found if f.endswith(".o")]
    if len(objects) > 1:
        for f in objects:
            if os.path.basename(f) == "vmlinux.o":
                skipped.append((f, "vmlinux.o repeats every built-in object"))
    for f in found:
        stem = _module_stem(f)
        mod = None if stem is None else stem + ".mod"
        # Kbuild writes NAME.mod as a file: a symlink (maybe out of the tree) is not one
        if mod is None or not os.path.isfile(mod) or os.path.islink(mod):
            continue
        if not f.endswith(".o"):
            skipped.append((f, f"the module {os.path.basename(stem)}.mod lists its parts"))
        elif _composite(stem):
            skipped.append((f, f"composite: linked from the parts {os.path.basename(stem)}"
                               ".mod lists"))
    gone = {f for f, _ in skipped}
    return [f for f in found if f not in gone], skipped


#: why a walk passed over an object that a linked artifact holds
LINKED_INTO = "linked into {}: judged there"


def _kbuild_linked(top: str, found: list[str], real=os.path.realpath
                   ) -> tuple[list[str], list[tuple[str, str]], int]:
    """``_kbuild_repeats`` preferring linked artifacts: (the files to read,
    [(file, why)] those passed over, how many of those a linked artifact
    holds).  ``vmlinux`` (top of the walk) replaces
    the members of ``vmlinux.a`` and ``vmlinux.o``; ``NAME.ko`` beside
    ``NAME.mod`` replaces the parts it lists and a composite ``NAME.o``."""
    skipped = []
    parts: dict[str, str] = {}          # realpath of a part -> the artifact holding it
    vmlinux = os.path.join(top, "vmlinux")
    has_vmlinux = os.path.isfile(vmlinux)
    if has_vmlinux:
        archive = os.path.join(top, "vmlinux.a")
        if os.path.isfile(archive):
            try:
                from ..core.elf import read_file
                members = archive_members(archive, read_file(archive))
            except (InputError, OSError):
                members = []            # read again by the walk, which reports it
            for m in members:
                if m.member_offset is None:
                    parts[os.path.realpath(m.path)] = "vmlinux"
        # lib.a archives: linked only where referenced
        parts.update(_lib_members_in(vmlinux, [f for f in found
                                               if os.path.basename(f) == "lib.a"]))
    kos = set()
    for f in found:
        stem = _module_stem(f)
        if stem is None or not os.path.isfile(stem + ".mod") or f.endswith(".o"):
            continue
        kos.add(f)
        name = os.path.basename(f)
        try:
            with open(stem + ".mod", encoding="utf-8", errors="replace") as fh:
                listed = fh.read().split()
        except OSError:
            listed = []
        # NAME.mod lists paths relative to the build's top (Kbuild), which may
        # be the walk's top or any directory above the module's
        bases = [top]
        d = os.path.dirname(os.path.abspath(stem))
        while True:
            bases.append(d)
            up = os.path.dirname(d)
            if up == d:
                break
            d = up
        for part in listed:
            for base in bases:
                cand = os.path.join(base, part)
                if os.path.isfile(cand):
                    parts.setdefault(real(cand), name)
                    break
        if _composite(stem):
            parts.setdefault(real(stem + ".o"), name)
    keep = []
    held = 0
    for f in found:
        holder = parts.get(real(f))
        if os.path.basename(f) == "vmlinux.o" and (has_vmlinux or len(found) > 1):
            skipped.append((f, "vmlinux.o repeats every built-in object"))
        elif holder is not None and f not in kos:
            skipped.append((f, LINKED_INTO.format(holder)))
            held += 1
        else:
            keep.append(f)
    if has_vmlinux:
        keep.insert(0, vmlinux)
    return keep, skipped, held


def _lib_members_in(vmlinux: str, archives: list[str]) -> dict[str, str]:
    """The thin members of ``lib.a`` archives that the link pulled into
    ``vmlinux`` (an archive member is linked only when referenced): those
    defining a global function that vmlinux's symbol table names.  By
    realpath; unreadable files are left to the walk, which reports them."""
    from ..core.elf import STB_GLOBAL, STT_FUNC, ElfFile, read_file
    out: dict[str, str] = {}
    if not archives:
        return out
    try:
        strtab = ElfFile(read_file(vmlinux), vmlinux).strtab
    except (InputError, OSError):
        return out
    for lib in archives:
        try:
            members = archive_members(lib, read_file(lib))
        except (InputError, OSError):
            continue
        for m in members:
            if m.member_offset is not None:
                continue
            try:
                elf = ElfFile(read_file(m.path), m.path)
                cols = elf.syms
                for i in range(elf.num_symbols):
                    info = cols.info[i]
                    if info >> 4 == STB_GLOBAL and info & 0xF == STT_FUNC and cols.shndx[i]:
                        if b"\0" + elf.symbol(i).name_bytes + b"\0" in strtab:
                            out[os.path.realpath(m.path)] = "vmlinux"
                            break
            except (InputError, OSError, ValueError):
                continue
    return out


def _module_stem(path: str) -> str | None:
    """``dir/NAME`` for ``dir/NAME.o``, ``dir/NAME.ko`` and ``dir/NAME.ko.*``."""
    base = path
    for ext in (".xz", ".zst", ".gz"):
        base = base.removesuffix(ext)
    for ext in (".ko", ".o"):
        if base.endswith(ext) and not base.endswith(".mod.o"):
            return base[:-len(ext)]
    return None


def _composite(stem: str) -> bool:
    """Does ``NAME.mod`` list parts other than ``NAME.o`` itself?"""
    try:
        with open(stem + ".mod", encoding="utf-8", errors="replace") as f:
            parts = f.read().split()
    except OSError:
        return False
    own = os.path.basename(stem) + ".o"
    return any(os.path.basename(x) != own for x in parts)
