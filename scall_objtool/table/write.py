"""Write one object's table: ``decide`` what to write, then ``apply`` it.

``decide`` is pure: from the parsed object and the options it returns a
:class:`WriteOutcome` that holds the complete new object (or none, when there
is nothing to write) and what the report says about it.  ``apply`` puts the
bytes on disk under the rules of the README's "Safety" section: a symlink is
written through, a hard-linked file through its inode (or refused), owner,
group, mode and xattrs are kept, a file that changed on disk meanwhile is not
replaced, ``-`` is stdout and a device or FIFO is written into, never
replaced.  ``write_path`` is the two together, for one file.
"""
from __future__ import annotations

import os

from ..core import ObjectResult, Options
from ..core.elf import ElfFile, compression, printable, read_file, signed
from ..core.pipeline import scan_elf
from ..errors import InputError, UsageError
from ..inputs import AR_MAGIC, THIN_MAGIC, show
from ..records import LIST, later, record
from . import TABLE, table_sections

#: the writer's plan (an object with sites) and the file replacement (not a
#: dry run)
_render, _fileio = later("scall_objtool.table.render"), later("scall_objtool.inputs.fileio")


@record
class WriteOutcome:
    """One object's write, from the decision to the disk.

    ``decide`` (pure) fills ``result``, the counts, the warnings and ``data``:
    the complete new object (bytes; from ``write_path``, its pieces, a
    ``render.Assembled``), or None when the object stays as it is;
    ``action`` is then ``written`` (data to put on disk), ``unchanged``
    (nothing to add, or --force and the table is already this one) or
    ``skipped-existing`` (it has a table and no --force).  ``apply`` (or a dry
    run) records what was done: ``path`` and ``output``, ``action`` written,
    unchanged, skipped-existing, dry-run or copied (``-o`` given and nothing
    to add), and drops ``data`` (the outcome travels back from a worker)."""
    result: ObjectResult
    data: bytes | None = None     # write_path's: a render.Assembled
    action: str = "unchanged"
    entries: int = 0
    added_keys: list[str] = LIST
    warnings: list[str] = LIST
    path: str | None = None
    output: str | None = None


def _decided(result: ObjectResult, data: bytes | None = None, state: str = "unchanged",
             **counts) -> WriteOutcome:
    return WriteOutcome(result, data, "written" if data is not None else state, **counts)


def decide(elf: ElfFile, options: Options, force: bool = False,
           joined: bool = True) -> WriteOutcome:
    """What to write to a relocatable object (pure; InputError when it cannot be:
    a linked image, a signed module, a section that only has the table's name).
    Not ``joined``: the new object's ``data`` is its pieces
    (``render.Assembled``), which ``apply`` writes without joining them."""
    if signed(elf.data):
        raise InputError("is a signed module (it ends with '~Module signature appended~'): "
                         "rewriting it would break the signature, and it would not load "
                         "under module.sig_enforce; never rewritten (write before signing)",
                         elf.path)
    if elf.linked:
        raise InputError(f"write adds tables to relocatable objects; this is a linked image "
                         f"(ELF type {elf.elf_type}): use scan or verify", elf.path)
    if table_sections(elf)[1]:
        raise InputError(f"has a section named {TABLE} that is not a static-call table (its "
                         "type, flags, size or relocations do not fit); left untouched",
                         elf.path)
    result = scan_elf(elf, options, sources=False)
    if result.existing_table is None:
        return _fresh(elf, result, options, recovered=False, joined=joined)
    if not force:
        return _decided(result, state="skipped-existing", warnings=[
            f"already has a {TABLE} table; left untouched (use --force to replace it)"])
    from .render import Plan, recover_original, render, table_up_to_date
    plan = Plan(elf, result, options)
    if table_up_to_date(plan):
        return _decided(result)
    original = recover_original(elf)
    if original is not None:
        # a table we appended: rewrite from the original, so that --force gives
        # exactly the bytes a first write would
        base = ElfFile(original, elf.path)
        return _fresh(base, scan_elf(base, options, sources=False), options, recovered=True,
                      joined=joined)
    # another tool's table (objtool's): replaced in place
    return _planned(plan, render(plan, joined), result)


def _fresh(elf: ElfFile, result: ObjectResult, options: Options,
           recovered: bool, joined: bool = True) -> WriteOutcome:
    """The decision for an object without a table (``recovered``: the original of
    one whose appended table --force replaces)."""
    if not result.sites:
        # nothing to add: the common case (or the original, restored)
        return _decided(result, elf.data if recovered else None)
    render = _render()
    plan = render.Plan(elf, result, options)
    if not plan.count:
        return _planned(plan, elf.data if recovered else None, result)
    return _planned(plan, render.render(plan, joined), result)


def _planned(plan, data: bytes | None, result: ObjectResult) -> WriteOutcome:
    return _decided(result, data, entries=plan.count,
                    added_keys=[printable(k) for k in plan.new_keys],
                    warnings=list(plan.warnings))


def apply(path: str, out: WriteOutcome, on_disk: bytes, before: os.stat_result,
          output: str | None = None, backup: bool = False,
          follow: bool = True) -> WriteOutcome:
    """Put what ``decide`` gave on disk: in place (with ``backup``, ``PATH.orig``
    first) or at ``output``; returns ``out``, done.  ``on_disk`` and ``before``
    are the bytes and the stat of ``path`` as read: a file that changed since is
    not replaced; without ``follow``, nor one that became a symlink."""
    fileio = _fileio()
    UnsafeWrite, atomic_write, write_output = (fileio.UnsafeWrite, fileio.atomic_write,
                                               fileio.write_output)

    def put(target: str, fn, *args, **kw) -> None:
        try:
            fn(*args, **kw)
        except UnsafeWrite as e:
            raise InputError(str(e) if target == path else f"{show(target)}: {e}",
                             path) from None
        except OSError as e:
            raise InputError(f"cannot write {show(target)}: {e.strerror}", path) from None

    data = _done(out, path, output)
    if out.output != "-":                   # left by an earlier run that was killed
        put(out.output, lambda: fileio.clean_directory(os.path.dirname(_target(out.output))))
    if output is not None:
        if os.path.islink(output) and (os.path.isfile(output) or not os.path.exists(output)) \
                and fileio.stream_of(output) is None:      # /dev/stdout > FILE: written through
            out.warnings.append(f"-o {show(output)} is a symlink: replacing the link itself "
                                "(as objcopy does), not the file it points to")
        if data is None:
            out.action = "copied"
        put(output, write_output, output, data or on_disk, meta_from=path)
        return out
    if data is None:
        return out
    if backup:                              # exactly the bytes that were on disk
        put(path + ".orig", atomic_write, path + ".orig", on_disk, meta_from=path, clone=True)
    put(path, fileio.replace_in_place, path, data, on_disk, expect=before, follow=follow)
    return out


def _done(out: WriteOutcome, path: str, output: str | None) -> bytes | None:
    """Record where ``out`` goes and take its new bytes off it."""
    out.path, out.output = path, output or path
    data, out.data = out.data, None
    return data


def _target(path: str) -> str:
    """The absolute path of the file a replacement of ``path`` creates its
    temporary beside (``fileio.atomic_write``): through a symlink, its target.
    One lstat, where realpath would take one a component.  OSError for a
    relative path whose current directory is gone."""
    return os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)


def write_path(path: str, options: Options, output: str | None = None, force: bool = False,
               dry_run: bool = False, backup: bool = False,
               follow: bool = True) -> WriteOutcome:
    """Add (or with ``force`` replace) the static-call table of ``path``.

    The input is never modified unless the new object is complete; with
    ``output`` the input is not modified at all; an archive, a compressed or
    a signed module is never written.  Without ``follow`` (a file a directory
    walk found) ``path`` must not be a symlink."""
    if output == "":
        raise UsageError("-o/--output must not be empty (use - for standard output)")
    if not follow and os.path.islink(path):
        raise InputError("became a symlink after the directory was walked: not followed, "
                         "left as it is", path)
    try:
        before = os.stat(path)
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror}", path) from None
    on_disk = read_file(path, before)   # the bytes a backup keeps, whatever is rewritten
    if on_disk[:8] in (AR_MAGIC, THIN_MAGIC):
        raise InputError("is an ar archive: archive members are scanned, not rewritten, and "
                         "write never rewrites an archive (run write on the objects before "
                         "archiving them)", path)
    packed = compression(on_disk)
    if packed:
        raise InputError(f"is a {packed}-compressed module: a packaged artifact, never "
                         "rewritten (write the .ko before it is compressed)", path)
    if output is not None and output != "-":
        from ..inputs.fileio import same_file
        if same_file(output, path):
            raise InputError(f"-o {show(output)} is the input itself: refusing to overwrite "
                             "it (omit -o to write in place)", path)
    out = decide(ElfFile(on_disk, path), options, force, joined=False)
    if dry_run:
        if _done(out, path, output) is not None:
            out.action = "dry-run"
        return out
    return apply(path, out, on_disk, before, output, backup, follow)
