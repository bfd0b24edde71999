"""The command line: a thin layer over the library.

    scall-objtool scan  PATH... [--format text|json] [-o FILE]
    scall-objtool write PATH... [-o OUT] [--dry-run] [--backup] [--force]

Exit status: 0 success, 2 input or usage errors.  Each bad input gives one
line ``scall-objtool: error: PATH: problem`` on stderr; the others are still
processed.
"""
from __future__ import annotations

import os
import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import InputError, ScallError, UsageError
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


def _err(msg: str) -> None:
    sys.stderr.write(f"{PROG}: error: {msg}\n")


def _warn(path: str, msg: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {path}: {msg}\n")


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


def _options(policy, allow_tail, cache_line, assume_align, tramp_prefix, key_prefix, module,
             strict_keys) -> Options:
    return Options(policy=policy.value, allow_tail=allow_tail, cache_line=cache_line,
                   assume_align=assume_align, tramp_prefix=tramp_prefix,
                   key_prefix=key_prefix, module=module, strict_keys=strict_keys)


def _debug() -> bool:
    return bool(os.environ.get("SCALL_OBJTOOL_DEBUG"))


def _guard(path: str, fn):
    """Run ``fn``; turn any failure into one error line.  Returns (ok, value)."""
    try:
        return True, fn()
    except InputError as e:
        _err(str(e) if e.path else f"{path}: {e}")
    except UsageError as e:
        _err(str(e))
    except MemoryError:
        _err(f"{path}: out of memory")
    except RecursionError:
        _err(f"{path}: input too deeply nested")
    except Exception as e:  # never a traceback for a user; SCALL_OBJTOOL_DEBUG shows it
        if _debug():
            raise
        _err(f"{path}: internal error: {type(e).__name__}: {e}")
    return False, None


def _emit(text: str, output: Optional[str]) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    from .fileio import atomic_write
    atomic_write(output, text.encode())


@app.command()
def scan(paths: PathsArg,
         format: Annotated[Format, typer.Option("--format", "-f", help="report format")]
         = Format.text,
         output: Annotated[Optional[str], typer.Option("-o", "--output", metavar="FILE",
                                                       help="write the report to FILE")] = None,
         policy: PolicyOpt = Policy.seed, allow_tail: AllowTailOpt = False,
         cache_line: CacheLineOpt = 64, assume_align: AssumeAlignOpt = None,
         tramp_prefix: TrampOpt = "__SCT__", key_prefix: KeyOpt = "__SCK__",
         module: ModuleOpt = False, strict_keys: StrictOpt = False):
    """Report every static-call site and how it is classified."""
    ok, options = _guard("options", lambda: _options(policy, allow_tail, cache_line,
                                                    assume_align, tramp_prefix, key_prefix,
                                                    module, strict_keys))
    if not ok:
        raise typer.Exit(2)
    from .scan import scan_path
    results, failed = [], False
    for path in paths:
        ok, res = _guard(path, lambda: scan_path(path, options))
        if ok:
            results.append(res)
        else:
            failed = True
    from .report import render_json, render_text
    text = render_json(results, options) if format is Format.json else render_text(results,
                                                                                   options)
    ok, _ = _guard(output or "-", lambda: _emit(text, output))
    raise typer.Exit(2 if failed or not ok else 0)


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
          module: ModuleOpt = False, strict_keys: StrictOpt = False):
    """Write the .static_call_sites table of each object (in place by default)."""
    def make():
        from .write import check_output_option
        check_output_option(paths, output)
        return _options(policy, allow_tail, cache_line, assume_align, tramp_prefix,
                        key_prefix, module, strict_keys)
    ok, options = _guard("options", make)
    if not ok:
        raise typer.Exit(2)
    from .write import write_path
    failed = False
    lines = []
    for path in paths:
        ok, res = _guard(path, lambda: write_path(path, options, output, force, dry_run,
                                                  backup))
        if not ok:
            failed = True
            continue
        for w in res.warnings:
            _warn(path, w)
        if quiet:
            continue
        s = res.result.summary()
        counts = f"{s['sites']} sites, {s['patchable']} patchable, {s['fallback']} fallback"
        verb = {"written": f"wrote {res.entries} entries",
                "dry-run": f"would write {res.entries} entries",
                "unchanged": "unchanged",
                "copied": "copied unchanged",
                "skipped-existing": "table exists, unchanged"}[res.action]
        target = f" -> {res.output}" if res.output != path else ""
        lines.append(f"{path}{target}: {verb} ({counts}; policy {options.policy})\n")
        if res.action in ("written", "dry-run") and len(paths) == 1:
            for site in res.result.sites:
                tag = "entry" if site.patchable else f"fallback: {site.reason}"
                func = f"{site.function}+{site.function_offset:#x}" if site.function else "?"
                lines.append(f"  {site.section}+{site.offset:#x} {func} {site.kind} "
                             f"{site.trampoline} crossing {site.crossing or '-'}: {tag}\n")
    sys.stdout.write("".join(lines))
    raise typer.Exit(2 if failed else 0)


def _version(value: bool):
    if value:
        sys.stdout.write(f"{PROG} {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def main_callback(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version")] = False):
    """Find, classify and record static-call sites in x86-64 ELF objects."""


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name=PROG, standalone_mode=True)
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 2
    except ScallError as e:
        _err(str(e))
        return 2
    return 0
