"""Exceptions shared by every stage.

Every problem with an input file is an :class:`InputError`; the CLI turns it
into one line on stderr and exit status 2.  Nothing else is expected to
escape the library for any input, however malformed.
"""
from __future__ import annotations

PROG = "scall-objtool"


def error_line(msg: str) -> str:
    """The one stderr line of an error."""
    return f"{PROG}: error: {msg}"


def warning_line(display: str, msg: str) -> str:
    """The stderr line of a warning about one input."""
    return f"{PROG}: warning: {display}: {msg}"


class ScallError(Exception):
    """Base class of the tool's own errors."""


class InputError(ScallError):
    """The input cannot be processed (not ELF, foreign, truncated, corrupt)."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class UsageError(ScallError):
    """The command line or the options are inconsistent."""


class ForeignObject(InputError):
    """A well-formed ELF object of another class, byte order or machine (an x86
    kernel's 32-bit realmode and boot objects): skipped in directory walks."""


class KeyMissingError(InputError):
    """A key symbol is missing and the options make that an error."""
