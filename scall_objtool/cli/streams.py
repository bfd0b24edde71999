"""The standard streams: the report to stdout, messages to stderr.

Everything the command line prints goes through here, so that:

* a message never carries a name from a file or report raw: every stderr line
  goes through ``report.esc`` (terminal escapes, bidi controls and forged
  newlines escaped), whatever produced it;
* stdout is written as bytes: a machine format (JSON, SARIF, OpenMetrics, the
  dashboard's HTML) as the same UTF-8 bytes as ``-o FILE``, whatever the
  locale; text for people in stdout's encoding, with the characters it cannot
  represent (``PYTHONIOENCODING=ascii``, ``LC_ALL=C`` without UTF-8 mode) as
  backslash escapes;
* a failed write is one :class:`OutputError`: one line on stderr and exit 2
  (``> /dev/full``, a full disk, an I/O error), or, for a reader that closed
  the pipe (``| head``), exit 141 without a message, as a C tool killed by
  SIGPIPE.  The stream is then pointed at /dev/null, so that the interpreter's
  final flush does not fail again (a traceback-like "Exception ignored"
  message and exit 120).
"""
from __future__ import annotations

import errno
import os
import sys

from ..errors import ScallError, error_line

#: the status of a closed pipe: 128 + SIGPIPE, what the shell shows for a
#: C tool that SIGPIPE killed (``set -o pipefail`` still sees a failure)
EXIT_CLOSED_PIPE = 141


class OutputError(ScallError):
    """Standard output or standard error could not be written."""

    def __init__(self, message: str, closed_pipe: bool = False):
        super().__init__(message)
        self.closed_pipe = closed_pipe


def encode(text: str) -> bytes:
    """A report as the bytes of a file: UTF-8 (a lone surrogate, from a file
    name that is not UTF-8, as a backslash escape)."""
    return text.encode("utf-8", "backslashreplace")


def silence(stream) -> None:
    """Point the stream's file descriptor at /dev/null (after a failure)."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    except (AttributeError, OSError, ValueError):
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


def _failed(which: str, stream, e: OSError) -> OutputError:
    silence(stream)
    return OutputError(f"standard {which}: cannot write: {e.strerror or e}",
                       closed_pipe=e.errno == errno.EPIPE)


def out(text: str | bytes, machine: bool = False) -> None:
    """Write a report to stdout: ``machine`` formats as UTF-8, text in stdout's
    encoding (escaping what it cannot represent), bytes as they are.
    OutputError on failure."""
    stream = sys.stdout
    if stream is None:                  # started with descriptor 1 closed
        raise OutputError("standard output: cannot write: Bad file descriptor")
    buf = getattr(stream, "buffer", None)
    try:
        if buf is None:                 # a text-only replacement (an embedding program)
            stream.write(text if isinstance(text, str) else os.fsdecode(text))
            stream.flush()
            return
        if isinstance(text, str):
            encoding = "utf-8" if machine else (stream.encoding or "utf-8")
            text = text.encode(encoding, "backslashreplace")
        stream.flush()                  # whatever the text layer holds goes first
        buf.write(text)
        buf.flush()
    except OSError as e:
        raise _failed("output", stream, e) from None
    except ValueError:                  # closed (an embedding program's doing)
        raise OutputError("standard output: cannot write: it is closed") from None


def err(lines: list[str]) -> None:
    """Write messages to stderr, one line each, escaped.  OutputError on failure
    (which the caller cannot report: stderr is what failed)."""
    if not lines:
        return
    from ..report import esc
    stream = sys.stderr
    if stream is None:
        raise OutputError("standard error: cannot write: Bad file descriptor")
    try:
        stream.write("".join(esc(m) + "\n" for m in lines))
        stream.flush()
    except OSError as e:
        raise _failed("error", stream, e) from None
    except ValueError:
        raise OutputError("standard error: cannot write: it is closed") from None


def failed(e: ScallError) -> int:
    """The exit status of a command that stopped on ``e``, after its one line on
    stderr (none for a closed pipe; none either when stderr itself is broken)."""
    if isinstance(e, OutputError) and e.closed_pipe:
        return EXIT_CLOSED_PIPE
    try:
        err([error_line(str(e))])
    except OutputError as again:
        if again.closed_pipe:
            return EXIT_CLOSED_PIPE
    return 2


def note(line: str) -> None:
    """One last line on stderr, if stderr can still take it (an interrupt)."""
    try:
        err([line])
    except OutputError:
        pass
