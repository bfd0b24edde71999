"""The console entry point, and the fast path of the command line.

Kbuild starts its object tool once per object, tens of thousands of times per
build.  Importing typer (and what it pulls in) costs more than scanning a
typical object, so a well-formed command line is parsed here, from the same
option table (``options.py``) that typer's commands are built from, and handed
to the same functions (``commands.run``).  Anything this parser does not
accept -- help, an unknown option, a malformed or out-of-range value --
returns None, and typer parses the whole command line with its usual
messages.

Set SCALL_OBJTOOL_NO_FASTPATH=1 to always go through typer (the tests run
both ways and compare).
"""
from __future__ import annotations

import os


def parse(argv: list[str]):
    """(command name, values by dest), or None when typer should parse instead."""
    from .options import COMMANDS, all_options
    cmd = COMMANDS.get(argv[0]) if argv else None
    if cmd is None:
        return None
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
        name, eq, val = a.partition("=") if a.startswith("--") else (a, "", "")
        opt = by_flag.get(name)
        if opt is None:
            return None
        if opt.kind == "flag":
            if eq:
                return None
            values[opt.dest] = True
            continue
        if not eq:
            if i >= n:
                return None
            val = argv[i]
            i += 1
        if opt.kind == "int":
            try:
                num = int(val, 10)
            except ValueError:
                return None
            if opt.minimum is not None and num < opt.minimum:
                return None
            values[opt.dest] = num
        elif opt.kind == "choice":
            if val not in opt.choices:
                return None
            values[opt.dest] = val
        elif opt.kind == "list":
            values[opt.dest] = [*(values[opt.dest] or ()), val]
        else:
            values[opt.dest] = val
    args = cmd.args
    if len(args) == 1 and args[0].many:
        if not positional:
            return None
        values[args[0].dest] = positional
    elif len(positional) == len(args):
        values.update((a.dest, v) for a, v in zip(args, positional))
    else:
        return None
    return cmd.name, values


def try_fast(argv: list[str]) -> int | None:
    if os.environ.get("SCALL_OBJTOOL_NO_FASTPATH"):
        return None
    parsed = parse(argv)
    if parsed is None:
        return None
    from .commands import run
    return run(*parsed)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: the fast path, else the full typer CLI."""
    import sys

    from .interrupt import run
    args = sys.argv[1:] if argv is None else argv

    def go():
        code = try_fast(args)
        if code is not None:
            return code
        from .cli import main as full_main
        return full_main(args)
    return run(go)
