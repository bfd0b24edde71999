"""The console entry point, and the parser of every command line.

Kbuild starts its object tool once per object, tens of thousands of times per
build.  Importing typer (and what it pulls in) costs more than scanning a
typical object, so the command line is parsed here, from the option table
(``options.py``) that typer's commands are built from too, and handed to
``commands.run``.  A malformed command line -- an unknown command or option,
a missing or bad value, options that conflict -- is one line
``scall-objtool: error: ...`` and exit 2, whichever way the command runs.
Only help (``-h``, ``--help``, no arguments) and ``--version`` go to typer.

Set SCALL_OBJTOOL_NO_FASTPATH=1 to run well-formed commands through typer too
(the tests run both ways and compare).

``leave`` ends the process of the command line (``bin/scall-objtool``,
``python -m scall_objtool``) once the command is done and its output flushed,
without the interpreter's finalization when nothing could observe it.
"""
from __future__ import annotations

import os

HELP = ("-h", "--help")


def parse(argv: list[str]):
    """(command name, values by dest), or None when typer should render help;
    UsageError for a malformed command line."""
    from ..errors import UsageError
    from ..options import COMMANDS, all_options, check_together, value
    if not argv or argv[0] in HELP or argv[0] == "--version":
        return None
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        raise UsageError(f"unknown command {argv[0]!r} (choose from {', '.join(COMMANDS)})")
    opts = all_options(cmd)
    by_flag = {f: o for o in opts for f in o.flags}
    values: dict = {o.dest: (False if o.kind == "flag" else o.default) for o in opts}
    positional: list[str] = []
    i, n = 1, len(argv)
    only_positional = False
    while i < n:
        a = argv[i]
        i += 1
        if only_positional or not a.startswith("-") or a == "-":
            positional.append(a)
            continue
        if a == "--":
            only_positional = True
            continue
        if a in HELP:
            return None
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            pending = []
        else:                                   # -q, -j4, -qj 4: short options bundled
            name, eq, val, pending = a[:2], "", "", list(a[2:])
        while True:
            opt = by_flag.get(name)
            if opt is None:
                raise UsageError(f"{cmd.name}: no such option {name}")
            if opt.kind == "flag":
                if eq:
                    raise UsageError(f"{name} takes no value")
                values[opt.dest] = True
                if not pending:
                    break
                name = "-" + pending.pop(0)
                continue
            if pending:
                val, eq, pending = "".join(pending), "=", []
            if not eq:
                if i >= n:
                    raise UsageError(f"{name} needs a value")
                val = argv[i]
                i += 1
            v = value(opt, val)
            values[opt.dest] = [*(values[opt.dest] or ()), v] if opt.kind == "list" else v
            break
    args = cmd.args
    if len(args) == 1 and args[0].many:
        if not positional:
            raise UsageError(f"{cmd.name}: missing {args[0].metavar}")
        values[args[0].dest] = positional
    elif len(positional) < len(args):
        raise UsageError(f"{cmd.name}: missing {' '.join(a.metavar for a in args[len(positional):])}")
    elif len(positional) > len(args):
        raise UsageError(f"{cmd.name}: unexpected argument {positional[len(args)]!r}")
    else:
        values.update((a.dest, v) for a, v in zip(args, positional))
    check_together(cmd, values)
    return cmd.name, values


def main(argv: list[str] | None = None) -> int:
    """Console entry point: the table's parser, typer for help."""
    import sys

    from ..inputs.interrupt import run
    args = sys.argv[1:] if argv is None else argv

    def go():
        from ..errors import UsageError, error_line
        try:
            parsed = parse(args)
        except UsageError as e:
            sys.stderr.write(error_line(str(e)) + "\n")
            return 2
        if parsed is not None and not os.environ.get("SCALL_OBJTOOL_NO_FASTPATH"):
            from .commands import run as run_command
            return run_command(*parsed)
        from .typer_cli import main as full_main
        return full_main(args)
    return run(go)


def leave(code: int):
    """End the command-line process with status ``code``.

    Once the command is done, tearing the interpreter down (freeing every
    object and module one by one, a last garbage collection) changes nothing
    anybody sees, and costs about a quarter of the interpreter's own start-up
    (README "Speed").  So what finalization does that can be seen is done --
    the ``atexit`` handlers run (an installed package's, coverage's), the
    streams are flushed -- and the process ends at once (``os._exit``), as a
    C tool's would.  It ends through ``sys.exit``, with the full
    finalization, when something else may still have to run: another thread
    or a threading exit hook (a process pool's), a trace or profile function
    (a profiler prints its report after the script returns), ``python -i``;
    and when a flush fails (the interpreter's own handling of the error and
    status then apply)."""
    import sys
    if not isinstance(code, int) or not _quiet_exit():
        sys.exit(code)
    import atexit
    atexit._run_exitfuncs()             # as the interpreter would, in its order
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code & 0xFF)


def _quiet_exit() -> bool:
    """Would the interpreter's finalization, besides the ``atexit`` handlers and
    the final flush, do nothing but tear down?"""
    import atexit
    import sys
    if sys.flags.inspect or os.environ.get("PYTHONINSPECT") or sys.gettrace() is not None \
            or sys.getprofile() is not None or not hasattr(atexit, "_run_exitfuncs"):
        return False
    threading = sys.modules.get("threading")
    if threading is not None and (threading.active_count() > 1
                                  or getattr(threading, "_threading_atexits", True)):
        return False
    return True
