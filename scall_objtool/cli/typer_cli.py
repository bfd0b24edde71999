"""The typer command line, built from the option table in ``options.py``.

    scall-objtool scan   PATH... [--format text|json] [-o FILE] [--stats]
    scall-objtool write  PATH... [-o OUT] [--dry-run] [--backup] [--force]
    scall-objtool verify PATH... [--format text|json] [-o FILE]
    scall-objtool check  PATH... [--format text|json|sarif] [--baseline R.json]
    scall-objtool diff   OLD.json NEW.json

Command lines are parsed by ``fastcli`` (the same table, no typer), which
also reports every malformed one; typer renders the help, and runs
well-formed commands when SCALL_OBJTOOL_NO_FASTPATH is set.  Its parameters
are plain strings: the values are converted and checked by the option table
(``options.value``), never by typer, so the messages are the tool's own.

Exit status: 0 success, 1 when check finds fallback sites or verify a
mismatch, 2 input or usage errors.  Each bad input gives one line
``scall-objtool: error: PATH: problem`` on stderr; the others are still
processed.
"""
from __future__ import annotations

import errno
import inspect
import sys
from typing import Optional

import typer
import typer.core

from .. import __version__
from ..errors import PROG, ScallError
from ..options import COMMANDS, Command, Opt, all_options, check_together, value
from . import commands
from .streams import EXIT_CLOSED_PIPE, OutputError, failed, silence

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Find, classify and record static-call sites in x86-64 ELF objects.",
                  context_settings={"help_option_names": ["-h", "--help"]})


def _metavar(opt: Opt) -> str | None:
    if opt.kind == "choice":
        return "<" + "|".join(opt.choices) + ">"
    return opt.metavar


def _parameter(opt: Opt) -> inspect.Parameter:
    """A typer option parameter for one entry of the table: a flag, else a
    string (a list of them) that the table converts and checks."""
    if opt.kind == "flag":
        info = typer.Option(False, *opt.flags, help=opt.help)
        annotation = bool
    else:
        default = None if opt.default in (None, []) else str(opt.default)
        info = typer.Option(default, *opt.flags, help=opt.help, metavar=_metavar(opt))
        annotation = Optional[list[str]] if opt.kind == "list" else Optional[str]
    return inspect.Parameter(opt.dest, inspect.Parameter.KEYWORD_ONLY, default=info,
                             annotation=annotation)


class _TableCommand(typer.core.TyperCommand):
    """Arguments shown by their names only (``PATH...``), not typer's types."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        for p in self.params:
            if isinstance(p, typer.core.TyperArgument):
                shown = p.metavar + ("..." if p.nargs != 1 else "")
                p.display_type_rich = lambda ctx: None
                p._rich_display_name = lambda shown=shown: shown
                p._usage_display_name = lambda shown=shown: shown


def _register(cmd: Command) -> None:
    params = [inspect.Parameter(a.dest, inspect.Parameter.KEYWORD_ONLY,
                                default=typer.Argument(..., metavar=a.metavar.rstrip("."),
                                                       help=a.help),
                                annotation=list[str] if a.many else str)
              for a in cmd.args]
    params += [_parameter(o) for o in all_options(cmd)]
    table = {o.dest: o for o in all_options(cmd)}

    def command(**given):
        values = {}
        for dest, v in given.items():
            o = table.get(dest)
            if o is None or o.kind == "flag":
                values[dest] = v
            elif v is None or v == []:
                values[dest] = o.default
            elif o.kind == "list":
                values[dest] = [value(o, x) for x in v]
            else:
                values[dest] = value(o, v)
        check_together(cmd, values)
        raise typer.Exit(commands.run(cmd.name, values))

    command.__signature__ = inspect.Signature(params)
    command.__name__ = cmd.name
    command.__doc__ = cmd.help
    app.command(name=cmd.name, cls=_TableCommand)(command)


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
