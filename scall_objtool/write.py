"""Write one object: scan it, plan the table, render and replace atomically."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import InputError, UsageError
from .model import ObjectResult, Options
from .scan import open_elf, scan_elf


@dataclass
class WriteOutcome:
    path: str
    output: str
    result: ObjectResult
    action: str          # written | unchanged | skipped-existing | dry-run | copied
    entries: int = 0
    added_keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def write_path(path: str, options: Options, output: str | None = None, force: bool = False,
               dry_run: bool = False, backup: bool = False) -> WriteOutcome:
    """Add (or with ``force`` replace) the static-call table of ``path``.

    The input is never modified unless the new object is complete; with
    ``output`` the input is not modified at all."""
    from .emit import Plan, render
    from .fileio import atomic_write, remove_stale_temporaries

    elf = open_elf(path)
    result = scan_elf(elf, options)
    dest = output or path
    out = WriteOutcome(path, dest, result, "unchanged")
    if result.existing_table is not None and not force:
        out.action = "skipped-existing"
        out.warnings.append("already has a .static_call_sites table; left untouched "
                            "(use --force to replace it)")
        data = None
    else:
        plan = Plan(elf, result, options)
        out.entries = len(plan.entries)
        out.added_keys = [k.decode("utf-8", "backslashreplace") for k in plan.new_keys]
        out.warnings.extend(plan.warnings)
        if not plan.entries and result.existing_table is None:
            data = None                  # nothing to add: leave the object as it is
        else:
            data = render(elf, plan, force)
            out.action = "written"
    if dry_run:
        out.action = "dry-run" if data is not None else out.action
        return out
    if output is not None and os.path.lexists(output) and os.path.islink(output):
        out.warnings.append(f"-o {output} is a symlink: replacing the link itself, "
                            "not the file it points to")
    if data is None:
        if output is not None and os.path.abspath(output) != os.path.abspath(path):
            remove_stale_temporaries(output)
            atomic_write(output, elf.data, mode_from=path)
            out.action = "copied"
        return out
    if backup and output is None:
        atomic_write(path + ".orig", elf.data, mode_from=path)
    remove_stale_temporaries(dest)
    try:
        atomic_write(dest, data, mode_from=path)
    except OSError as e:
        raise InputError(f"cannot write {dest}: {e.strerror}", path) from None
    return out


def check_output_option(paths: list[str], output: str | None) -> None:
    if output is not None and len(paths) != 1:
        raise UsageError("-o/--output takes exactly one input file")
