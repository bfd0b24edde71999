"""Write one object: scan it, plan the table, render and replace atomically."""
from __future__ import annotations

import os

from ._record import LIST, record
from .errors import InputError
from .elf import ElfFile
from .model import ObjectResult, Options
from .scan import scan_elf


@record
class WriteOutcome:
    path: str
    output: str
    result: ObjectResult
    action: str          # written | unchanged | skipped-existing | dry-run | copied
    entries: int = 0
    added_keys: list[str] = LIST
    warnings: list[str] = LIST


def write_path(path: str, options: Options, output: str | None = None, force: bool = False,
               dry_run: bool = False, backup: bool = False) -> WriteOutcome:
    """Add (or with ``force`` replace) the static-call table of ``path``.

    The input is never modified unless the new object is complete; with
    ``output`` the input is not modified at all.  What is written is
    described in the README's "Safety" section: archives are refused; a
    symlink is written through; a hard-linked file is written through its
    inode (or refused); owner, group, mode and xattrs are kept; a file that
    changed on disk meanwhile is not replaced; ``output`` "-" is stdout and a
    device or FIFO is written into, never replaced."""
    from .elf import printable
    from .errors import UsageError
    from .fileio import (UnsafeWrite, atomic_write, clean_directory, replace_in_place,
                         same_file, write_output)
    from .inputs import AR_MAGIC, THIN_MAGIC, show
    from .scan import TABLE, read_file, table_sections

    if output == "":
        raise UsageError("-o/--output must not be empty (use - for standard output)")

    def put(target: str, fn, *args, **kw) -> None:
        try:
            fn(*args, **kw)
        except UnsafeWrite as e:
            raise InputError(str(e) if target == path else f"{show(target)}: {e}",
                             path) from None
        except OSError as e:
            raise InputError(f"cannot write {show(target)}: {e.strerror}", path) from None

    try:
        before = os.stat(path)
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror}", path) from None
    on_disk = read_file(path)           # the bytes a backup keeps, whatever is rewritten
    if on_disk[:8] in (AR_MAGIC, THIN_MAGIC):
        raise InputError("is an ar archive: archive members are scanned, not rewritten, and "
                         "write never rewrites an archive (run write on the objects before "
                         "archiving them)", path)
    if output is not None and output != "-" and same_file(output, path):
        raise InputError(f"-o {show(output)} is the input itself: refusing to overwrite it "
                         "(omit -o to write in place)", path)
    elf = ElfFile(on_disk, path)
    if elf.linked:
        raise InputError(f"write adds tables to relocatable objects; this is a linked image "
                         f"(ELF type {elf.elf_type}): use scan or verify", path)
    if table_sections(elf)[1]:
        raise InputError(f"has a section named {TABLE} that is not a static-call table (its "
                         "type, flags, size or relocations do not fit); left untouched", path)
    result = scan_elf(elf, options, sources=False)
    recovered = False
    up_to_date = False
    plan = None
    if force and result.existing_table is not None:
        from .emit import Plan, recover_original, table_up_to_date
        plan = Plan(elf, result, options)
        up_to_date = table_up_to_date(elf, plan)
        original = None if up_to_date else recover_original(elf)
        if original is not None:
            # a table we appended: rewrite from the original, so that --force
            # gives exactly the bytes a first write would
            elf = ElfFile(original, path)
            result = scan_elf(elf, options, sources=False)
            recovered = True
            plan = None
    dest = output or path
    out = WriteOutcome(path, dest, result, "unchanged")
    if up_to_date:
        data = None                      # --force, and the table is already this one
    elif result.existing_table is not None and not force:
        out.action = "skipped-existing"
        out.warnings.append("already has a .static_call_sites table; left untouched "
                            "(use --force to replace it)")
        data = None
    elif not result.sites and not recovered and result.existing_table is None:
        data = None                      # nothing to write: the common case
    else:
        from .emit import Plan, render
        if plan is None:
            plan = Plan(elf, result, options)
        out.entries = len(plan.entries)
        out.added_keys = [printable(k) for k in plan.new_keys]
        out.warnings.extend(plan.warnings)
        if not plan.entries and result.existing_table is None:
            # nothing to add: leave the object as it is (or, when a table we
            # had appended is being replaced by none, as it was before)
            data = elf.data if recovered else None
            if recovered:
                out.action = "written"
        else:
            data = render(elf, plan, force)
            out.action = "written"
    if dry_run:
        out.action = "dry-run" if data is not None else out.action
        return out
    if dest != "-":                     # left by an earlier run that was killed
        clean_directory(os.path.dirname(os.path.realpath(dest)))
    if output is not None:
        if os.path.islink(output) and (os.path.isfile(output) or not os.path.exists(output)):
            out.warnings.append(f"-o {show(output)} is a symlink: replacing the link itself "
                                "(as objcopy does), not the file it points to")
        if data is None:
            data = on_disk
            out.action = "copied"
        put(output, write_output, output, data, meta_from=path)
        return out
    if data is None:
        return out
    if backup:                          # exactly the bytes that were on disk
        put(path + ".orig", atomic_write, path + ".orig", on_disk, meta_from=path, clone=True)
    put(path, replace_in_place, path, data, on_disk, expect=before)
    return out
