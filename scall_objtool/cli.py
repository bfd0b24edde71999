"""The typer command line, built from the option table in ``options.py``.

    scall-objtool scan   PATH... [--format text|json] [-o FILE] [--stats]
    scall-objtool write  PATH... [-o OUT] [--dry-run] [--backup] [--force]
    scall-objtool verify PATH... [--format text|json] [-o FILE]
    scall-objtool check  PATH... [--format text|json|sarif] [--baseline R.json]
    scall-objtool diff   OLD.json NEW.json

Well-formed command lines never reach this module: ``fastcli`` parses them
from the same table and calls the same ``commands.run``.  typer handles the
rest: help, completion and the messages for malformed command lines.

Exit status: 0 success, 1 when check finds fallback sites or verify a
mismatch, 2 input or usage errors.  Each bad input gives one line
``scall-objtool: error: PATH: problem`` on stderr; the others are still
processed.
"""
from __future__ import annotations

import errno
import inspect
import sys
from enum import Enum
from typing import Optional

import typer

from . import __version__, commands
from .errors import PROG, ScallError
from .options import COMMANDS, Command, Opt, all_options
from .streams import EXIT_CLOSED_PIPE, OutputError, failed, silence

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Find, classify and record static-call sites in x86-64 ELF objects.",
                  context_settings={"help_option_names": ["-h", "--help"]})

_ANNOTATION = {"flag": bool, "str": str, "int": int, "list": list[str]}


def _parameter(opt: Opt) -> inspect.Parameter:
    """A typer option parameter for one entry of the table."""
    default = False if opt.kind == "flag" else opt.default
    if opt.kind == "choice":
        annotation = Enum(opt.dest.title().replace("_", ""), {c: c for c in opt.choices},
                          type=str)
    else:
        annotation = _ANNOTATION[opt.kind]
    if default is None:
        annotation = Optional[annotation]
    info = typer.Option(default, *opt.flags, help=opt.help, metavar=opt.metavar,
                        min=opt.minimum)
    return inspect.Parameter(opt.dest, inspect.Parameter.KEYWORD_ONLY, default=info,
                             annotation=annotation)


def _register(cmd: Command) -> None:
    params = [inspect.Parameter(a.dest, inspect.Parameter.KEYWORD_ONLY,
                                default=typer.Argument(..., metavar=a.metavar, help=a.help),
                                annotation=list[str] if a.many else str)
              for a in cmd.args]
    params += [_parameter(o) for o in all_options(cmd)]

    def command(**values):
        values = {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}
        raise typer.Exit(commands.run(cmd.name, values))

    command.__signature__ = inspect.Signature(params)
    command.__name__ = cmd.name
    command.__doc__ = cmd.help
    app.command(name=cmd.name)(command)


for _cmd in COMMANDS.values():
    _register(_cmd)


def _version(value: bool):
    if value:
        from .streams import out
        out(f"{PROG} {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def main_callback(version: bool = typer.Option(False, "--version", callback=_version,
                                               is_eager=True, help="print the version")):
    """Find, classify and record static-call sites in x86-64 ELF objects."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name=PROG, standalone_mode=True)
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        if code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
            # click's (typer's copy of click's) own answer to a closed pipe (help)
            return EXIT_CLOSED_PIPE
        return code if isinstance(code, int) else 2
    except ScallError as e:
        return failed(e)
    except OSError as e:
        if e.filename is not None:
            raise
        # typer's own output (help, a usage message) could not be written: the
        # commands' output goes through ``streams``, which says which stream
        silence(sys.stdout)
        return failed(OutputError(f"cannot write the help or usage message: {e.strerror}",
                                  closed_pipe=e.errno == errno.EPIPE))
    return 0
