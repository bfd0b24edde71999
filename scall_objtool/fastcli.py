"""The fast path of the command line.

Kbuild starts its object tool once per object, tens of thousands of times per
build.  Importing typer (and what it pulls in) costs more than scanning a
typical object, so well-formed ``scan`` and ``write`` invocations are parsed
here with a few lines of code and handed to the same functions the typer
commands call (``commands.py``).  Anything this parser does not recognise --
help, an unknown option, a malformed value -- returns None and typer handles
the whole command line, with its usual messages.

Set SCALL_OBJTOOL_NO_FASTPATH=1 to always go through typer (the tests run
both ways and compare).
"""
from __future__ import annotations

import os

SHARED_FLAGS = {"--allow-tail": "allow_tail", "--module": "module",
                "--strict-keys": "strict_keys"}
SHARED_VALUES = {"--policy": "policy", "--cache-line": "cache_line",
                 "--assume-align": "assume_align", "--tramp-prefix": "tramp_prefix",
                 "--key-prefix": "key_prefix", "--include": "include", "--jobs": "jobs",
                 "-j": "jobs"}
COMMANDS = {
    "scan": ({"--stats": "stats"},
             {"--format": "format", "-f": "format", "-o": "output", "--output": "output"}),
    "write": ({"--dry-run": "dry_run", "--backup": "backup", "--force": "force",
               "--quiet": "quiet", "-q": "quiet"},
              {"-o": "output", "--output": "output"}),
}
INTS = {"cache_line", "assume_align", "jobs"}


def parse(argv: list[str]):
    """(command, values, paths), or None when typer should parse instead."""
    if not argv or argv[0] not in COMMANDS:
        return None
    cmd = argv[0]
    flags, values = COMMANDS[cmd]
    flags = {**SHARED_FLAGS, **flags}
    values = {**SHARED_VALUES, **values}
    got: dict = {}
    paths: list[str] = []
    i, n = 1, len(argv)
    only_paths = False
    while i < n:
        a = argv[i]
        i += 1
        if only_paths or not a.startswith("-") or a == "-":
            paths.append(a)
            continue
        if a == "--":
            only_paths = True
            continue
        name, eq, val = a.partition("=") if a.startswith("--") else (a, "", "")
        if name in flags and not eq:
            got[flags[name]] = True
            continue
        if name not in values:
            return None
        if not eq:
            if i >= n:
                return None
            val = argv[i]
            i += 1
        key = values[name]
        if key in INTS:
            try:
                num = int(val, 10)
            except ValueError:
                return None
            if key == "jobs" and num < 1:
                return None
            got[key] = num
        elif key == "include":
            got.setdefault("include", []).append(val)
        else:
            got[key] = val
    if not paths:
        return None
    if got.get("policy", "seed") not in ("seed", "kernel"):
        return None
    if got.get("format", "text") not in ("text", "json"):
        return None
    return cmd, got, paths


def try_fast(argv: list[str]) -> int | None:
    if os.environ.get("SCALL_OBJTOOL_NO_FASTPATH"):
        return None
    parsed = parse(argv)
    if parsed is None:
        return None
    cmd, v, paths = parsed
    from . import commands
    from .model import Options

    def run():
        options = Options(policy=v.get("policy", "seed"), allow_tail=v.get("allow_tail", False),
                          cache_line=v.get("cache_line", 64),
                          assume_align=v.get("assume_align"),
                          tramp_prefix=v.get("tramp_prefix", "__SCT__"),
                          key_prefix=v.get("key_prefix", "__SCK__"),
                          module=v.get("module", False),
                          strict_keys=v.get("strict_keys", False))
        if cmd == "scan":
            return commands.cmd_scan(paths, options, v.get("format", "text"), v.get("output"),
                                     v.get("include"), v.get("jobs"), v.get("stats", False))
        params = commands.WriteParams(output=v.get("output"), force=v.get("force", False),
                                      dry_run=v.get("dry_run", False),
                                      backup=v.get("backup", False),
                                      quiet=v.get("quiet", False))
        return commands.cmd_write(paths, options, params, v.get("include"), v.get("jobs"))
    return commands.run_guarded(run)


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
    return run(go, "scall-objtool")
