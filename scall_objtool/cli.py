"""The command line: a thin layer over the library (typer).

    scall-objtool scan   PATH... [--format text|json] [-o FILE] [--stats]
    scall-objtool write  PATH... [-o OUT] [--dry-run] [--backup] [--force]
    scall-objtool verify PATH... [--format text|json] [-o FILE]
    scall-objtool check  PATH... [--format text|json|sarif] [--baseline R.json]
    scall-objtool diff   OLD.json NEW.json

``check`` and ``diff`` are registered by ``cli_lint``.  Well-formed ``scan``
and ``write`` command lines never reach this module: ``fastcli`` parses them
and calls the same functions in ``commands``.

Exit status: 0 success, 1 when check finds fallback sites or verify a
mismatch, 2 input or usage errors.  Each bad input gives one line
``scall-objtool: error: PATH: problem`` on stderr; the others are still
processed.
"""
from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from . import __version__, commands
from .errors import ScallError
from .model import Options

PROG = "scall-objtool"

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Find, classify and record static-call sites in x86-64 ELF objects.",
                  context_settings={"help_option_names": ["-h", "--help"]})


class Policy(str, Enum):
    seed = "seed"
    kernel = "kernel"


class Format(str, Enum):
    text = "text"
    json = "json"


PathsArg = Annotated[list[str], typer.Argument(metavar="PATH...", help="objects to process")]
PolicyOpt = Annotated[Policy, typer.Option(
    "--policy", help="seed: patch only direct calls that never cross a cache line; "
                     "kernel: list every call and tail call, as objtool does")]
AllowTailOpt = Annotated[bool, typer.Option(
    "--allow-tail", help="seed policy: tail calls (jmp) are patchable too")]
CacheLineOpt = Annotated[int, typer.Option("--cache-line", metavar="N",
                                           help="cache-line size in bytes")]
AssumeAlignOpt = Annotated[Optional[int], typer.Option(
    "--assume-align", metavar="N",
    help="the object's sections are placed at least N-aligned (beyond sh_addralign)")]
TrampOpt = Annotated[str, typer.Option("--tramp-prefix", help="trampoline symbol prefix")]
KeyOpt = Annotated[str, typer.Option("--key-prefix", help="key symbol prefix")]
ModuleOpt = Annotated[bool, typer.Option(
    "--module", help="kernel module: the trampoline stands in for a missing key")]
StrictOpt = Annotated[bool, typer.Option(
    "--strict-keys", help="a missing key is an error (as in objtool), not added")]


IncludeOpt = Annotated[Optional[list[str]], typer.Option(
    "--include", metavar="GLOB",
    help="in directories, process files matching GLOB (repeatable; default *.o *.ko *.a)")]


class Candidates(str, Enum):
    auto = "auto"
    relocs = "relocs"
    code = "code"


CandOpt = Annotated[Candidates, typer.Option(
    "--candidates", help="linked images: find candidates through the relocations the image "
                         "keeps (relocs), by scanning its code for branches (code), or "
                         "relocations when present (auto)")]
JobsOpt = Annotated[Optional[int], typer.Option(
    "--jobs", "-j", metavar="N", min=1,
    help="worker processes over files (default: the number of CPUs)")]


def _options(policy, allow_tail, cache_line, assume_align, tramp_prefix, key_prefix, module,
             strict_keys) -> Options:
    return Options(policy=policy.value, allow_tail=allow_tail, cache_line=cache_line,
                   assume_align=assume_align, tramp_prefix=tramp_prefix,
                   key_prefix=key_prefix, module=module, strict_keys=strict_keys)


def _finish(code: int):
    raise typer.Exit(code)


@app.command()
def scan(paths: PathsArg,
         format: Annotated[Format, typer.Option("--format", "-f", help="report format")]
         = Format.text,
         output: Annotated[Optional[str], typer.Option("-o", "--output", metavar="FILE",
                                                       help="write the report to FILE")] = None,
         policy: PolicyOpt = Policy.seed, allow_tail: AllowTailOpt = False,
         cache_line: CacheLineOpt = 64, assume_align: AssumeAlignOpt = None,
         tramp_prefix: TrampOpt = "__SCT__", key_prefix: KeyOpt = "__SCK__",
         module: ModuleOpt = False, strict_keys: StrictOpt = False,
         include: IncludeOpt = None, jobs: JobsOpt = None,
         stats: Annotated[bool, typer.Option(
             "--stats", help="text format: add tables of sites per trampoline, kind, reason "
                             "and object (the JSON summary always has them)")] = False,
         candidates: CandOpt = Candidates.auto):
    """Report every static-call site and how it is classified."""
    _finish(commands.run_guarded(lambda: commands.cmd_scan(
        paths, _options(policy, allow_tail, cache_line, assume_align, tramp_prefix,
                        key_prefix, module, strict_keys),
        format.value, output, include, jobs, stats, candidates_from=candidates.value)))


@app.command()
def verify(paths: PathsArg,
           format: Annotated[Format, typer.Option("--format", "-f", help="report format")]
           = Format.text,
           output: Annotated[Optional[str], typer.Option(
               "-o", "--output", metavar="FILE", help="write the report to FILE")] = None,
           policy: PolicyOpt = Policy.seed, allow_tail: AllowTailOpt = False,
           cache_line: CacheLineOpt = 64, assume_align: AssumeAlignOpt = None,
           tramp_prefix: TrampOpt = "__SCT__", key_prefix: KeyOpt = "__SCK__",
           module: ModuleOpt = False, strict_keys: StrictOpt = False,
           include: IncludeOpt = None, jobs: JobsOpt = None,
           candidates: CandOpt = Candidates.auto):
    """Check existing tables: every entry must point at an instruction that calls or
    jumps to its key's trampoline, with the right tail flag; report sites the table
    misses.  Exit 1 on any mismatch."""
    _finish(commands.run_guarded(lambda: commands.cmd_verify(
        paths, _options(policy, allow_tail, cache_line, assume_align, tramp_prefix,
                        key_prefix, module, strict_keys),
        format.value, output, include, jobs, candidates.value)))


@app.command()
def write(paths: PathsArg,
          output: Annotated[Optional[str], typer.Option(
              "-o", "--output", metavar="OUT",
              help="write the result to OUT instead of in place (one input only)")] = None,
          dry_run: Annotated[bool, typer.Option("--dry-run",
                                                help="report what would be written")] = False,
          backup: Annotated[bool, typer.Option("--backup",
                                               help="keep the original as FILE.orig")] = False,
          force: Annotated[bool, typer.Option("--force",
                                              help="replace an existing table")] = False,
          quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                              help="print only warnings and errors")] = False,
          policy: PolicyOpt = Policy.seed, allow_tail: AllowTailOpt = False,
          cache_line: CacheLineOpt = 64, assume_align: AssumeAlignOpt = None,
          tramp_prefix: TrampOpt = "__SCT__", key_prefix: KeyOpt = "__SCK__",
          module: ModuleOpt = False, strict_keys: StrictOpt = False,
          include: IncludeOpt = None, jobs: JobsOpt = None):
    """Write the .static_call_sites table of each object (in place by default)."""
    params = commands.WriteParams(output=output, force=force, dry_run=dry_run, backup=backup,
                                  quiet=quiet)
    _finish(commands.run_guarded(lambda: commands.cmd_write(
        paths, _options(policy, allow_tail, cache_line, assume_align, tramp_prefix,
                        key_prefix, module, strict_keys),
        params, include, jobs)))


def _version(value: bool):
    if value:
        sys.stdout.write(f"{PROG} {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def main_callback(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version")] = False):
    """Find, classify and record static-call sites in x86-64 ELF objects."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name=PROG, standalone_mode=True)
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 2
    except ScallError as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2
    return 0


from . import cli_lint  # noqa: E402,F401  (registers check/diff)
