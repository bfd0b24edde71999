"""Write one object: scan it, plan the table, render and replace atomically."""
from __future__ import annotations

import os

from .elf import ElfFile, open_elf
from .errors import InputError
from .model import ObjectResult, Options
from .pipeline import scan_elf
from .records import LIST, record


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
    ``output`` the input is not modified at all."""
    from .elf import printable
    from .fileio import atomic_write, remove_stale_temporaries
    from .inputs import show

    def put(target: str, data: bytes) -> None:
        try:
            atomic_write(target, data, mode_from=path)
        except OSError as e:
            raise InputError(f"cannot write {show(target)}: {e.strerror}", path) from None

    elf = open_elf(path)
    if elf.linked:
        raise InputError(f"write adds tables to relocatable objects; this is a linked image "
                         f"(ELF type {elf.elf_type}): use scan or verify", path)
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
    if not dry_run:
        remove_stale_temporaries(dest)      # left by an earlier run that was killed
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
    if output is not None and os.path.islink(output):
        out.warnings.append(f"-o {show(output)} is a symlink: replacing the link itself, "
                            "not the file it points to")
    if data is not None and output is None and os.path.islink(path):
        out.warnings.append("is a symlink: replacing the link with the written object; "
                            "the file it points to is left as it was")
    if data is None:
        if output is not None and os.path.abspath(output) != os.path.abspath(path):
            put(output, elf.data)
            out.action = "copied"
        return out
    if backup and output is None:
        put(path + ".orig", elf.data)
    put(dest, data)
    return out

