"""A clean stop on SIGINT, SIGTERM and SIGHUP.

The command line installs one handler for the three signals (``run``); SIGHUP
(a closed terminal or ssh session) is handled like the others unless it was
ignored when the tool started (``nohup``), and then stays ignored.  The first
signal is recorded; later ones are ignored, so cleanup is never cut short.

* In the main process the handler raises ``Interrupted`` at once, unless the
  process is inside ``fileio`` (an atomic replacement, which is then allowed
  to complete), inside a finalizer (``__del__``, where an exception is only
  printed) or waiting on worker processes (``polling``); then the next
  ``check()`` raises instead.
* In a worker (a process forked by ``run_batch``) the handler raises only while
  the worker is processing an object (``busy``) and not inside ``fileio``: the
  object in flight is abandoned (its temporary file is removed by
  ``atomic_write``) or, inside a replacement, completed.  ``check()`` before
  each object makes sure no new object is started after the signal.

``run`` turns ``Interrupted`` into one line on stderr (if stderr, perhaps the
closed terminal, can still take it) and the shell's exit code 128 + signal
number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
"""
from __future__ import annotations

import os

# the C module: ``signal`` itself imports enum, which costs milliseconds on
# every run of the command line (Kbuild starts it once per object)
import _signal

SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
#: signals left alone when they are ignored at start (``nohup``)
_IF_NOT_IGNORED = (_signal.SIGHUP,)
_DEFER_MODULES = ("scall_objtool.inputs.fileio",)


class Interrupted(BaseException):
    """A stop requested by a signal (not an Exception: ``guarded`` lets it pass)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_state: dict = {"signum": None, "main": None, "busy": False, "polling": False,
                "handled": SIGNALS}


def _in_deferred_code(frame) -> bool:
    """Is the process inside ``fileio`` or inside a finalizer (``__del__``:
    an exception raised there is only printed, "Exception ignored" and a
    traceback, and the stop would be lost on its way out)?"""
    while frame is not None:
        if frame.f_globals.get("__name__") in _DEFER_MODULES \
                or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def _handler(signum, frame):
    if _state["signum"] is not None:
        return                                  # already stopping
    _state["signum"] = signum
    in_main = os.getpid() == _state["main"]
    may_raise = (not _state["polling"]) if in_main else _state["busy"]
    if may_raise and not _in_deferred_code(frame):
        raise Interrupted(signum)


def install() -> None:
    """Install the handlers in the main process (the command line does this).

    With ``SCALL_OBJTOOL_READY_FILE`` set, the process id is then appended to
    the file it names: a test (or a supervisor) that interrupts the tool
    waits for that line, so that its signal never lands while the
    interpreter is still starting."""
    handled = tuple(s for s in SIGNALS if s not in _IF_NOT_IGNORED
                    or _signal.getsignal(s) != _signal.SIG_IGN)
    _state.update(signum=None, main=os.getpid(), busy=False, polling=False, handled=handled)
    for s in handled:
        _signal.signal(s, _handler)
    ready = os.environ.get("SCALL_OBJTOOL_READY_FILE")
    if ready:
        _report_ready(ready)


def _report_ready(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        return
    try:
        os.write(fd, b"%d\n" % os.getpid())
    except OSError:
        pass
    finally:
        os.close(fd)


def install_worker() -> None:
    """Worker initializer: the same handler, fresh state (a fork copies the parent's)."""
    if _state["main"] is None:
        return                                  # library use: leave signals alone
    _state.update(signum=None, busy=False, polling=False)
    for s in _state["handled"]:
        _signal.signal(s, _handler)


def stopping() -> bool:
    return _state["signum"] is not None


def check() -> None:
    """Raise ``Interrupted`` if a signal has arrived."""
    if _state["signum"] is not None:
        raise Interrupted(_state["signum"])


class busy:
    """Context: a worker is processing one object (a signal may abandon it)."""

    def __enter__(self):
        check()
        _state["busy"] = True

    def __exit__(self, *exc):
        _state["busy"] = False
        return False


class polling:
    """Context: the main process waits on workers and calls ``check()`` itself."""

    def __enter__(self):
        _state["polling"] = True

    def __exit__(self, *exc):
        _state["polling"] = False
        return False


def run(fn) -> int:
    """Run the command ``fn`` under the handlers; an interrupt is exit 128+N."""
    install()
    try:
        code = fn()
        check()
        return code
    except Interrupted as e:
        try:
            import signal
            name = signal.Signals(e.signum).name
        except ValueError:
            name = str(e.signum)
        from ..errors import error_line
        from ..cli.streams import note
        note(error_line(f"interrupted by {name}"))
        return 128 + e.signum
