"""`python -m scall_objtool ARGS` for the tests, without starting Python each time.

A test run starts the command line about 1,400 times; each start (the
interpreter and the package's imports) cost about 0.1 s of CPU, over half of
the everyday run.  A server process started once per test session (and per
start-up environment, see below) imports the package and waits; for each
command it forks a process that sets the command's argv, working directory,
environment and standard streams and runs the package's ``__main__`` as
``python -m`` does, through the interpreter's own exit (atexit handlers,
buffered output, uncaught exceptions and their traceback, exit status, a
death by signal).  So each command is still a process of its own, started
from a pristine import of the package that no test has touched.

What a fork cannot reproduce is what Python reads when it starts: variables
such as PYTHONPATH, PYTHONHASHSEED, PYTHONIOENCODING, LANG or LC_ALL.  The
server is keyed by those; a command whose start-up environment differs gets a
server of its own.  A command with a ``preexec_fn`` (resource limits, a
deleted working directory) runs as a real ``python -m``, and so does every
command when SCALL_TESTS_CLI=exec (.ci/run sets it: the full run starts the
real interpreter for every command, the everyday run saves the starts).
"""
from __future__ import annotations

import atexit
import locale
import os
import pickle
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = str(Path(__file__).resolve().parent)

#: what the interpreter reads once, when it starts (a fork inherits it)
_STARTUP_NAMES = ("LANG", "LANGUAGE", "TZ", "HOME", "LIBCAPSTONE_PATH", "LD_PRELOAD",
                  "LD_LIBRARY_PATH", "MALLOC_ARENA_MAX")
_STARTUP_PREFIXES = ("PYTHON", "LC_")
_HEADER = struct.Struct("!Q")
_STATUS = struct.Struct("!q")


def _startup_key(env: dict) -> tuple:
    items = []
    for k in sorted(env):
        if k in _STARTUP_NAMES or k.startswith(_STARTUP_PREFIXES):
            v = env[k]
            if k == "PYTHONPATH":        # the same sys.path, however it is spelled
                v = os.pathsep.join(dict.fromkeys(os.path.realpath(p)
                                                  for p in v.split(os.pathsep) if p))
            items.append((k, v))
    return tuple(items)


# ------------------------------------------------------------------ client
class _Server:
    def __init__(self, env: dict):
        self.dir = tempfile.mkdtemp(prefix="scall-cliserver-")
        self.path = os.path.join(self.dir, "s")
        code = f"import sys; sys.path.insert(0, {TESTS!r}); import cliserver; cliserver.serve()"
        log = os.path.join(self.dir, "log")
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-c", code, self.path], env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, cwd="/")
        deadline = time.monotonic() + 120
        while not os.path.exists(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the CLI server did not start (exit {self.proc.poll()}): "
                                   + Path(log).read_text(errors="replace")[-2000:])
            time.sleep(0.01)

    def close(self):
        self.proc.terminate()          # it reaps its processes (their CPU time counts) and ends
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)


_servers: dict[tuple, _Server] = {}


@atexit.register
def _close_servers():
    while _servers:
        _servers.popitem()[1].close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("the CLI server closed the connection")
        buf += chunk
    return buf


def _stream(spec, mode: str):
    """(fd for the child, our read end or None, fd to close after sending)."""
    if spec == subprocess.PIPE:
        r, w = os.pipe()
        return w, r, w
    if spec == subprocess.DEVNULL:
        fd = os.open(os.devnull, os.O_RDWR)
        return fd, None, fd
    if spec is None:
        return {"stdin": 0, "stdout": 1, "stderr": 2}[mode], None, None
    fd = spec if isinstance(spec, int) else spec.fileno()
    return fd, None, None


def run(argv, *, cwd=None, env=None, stdin=None, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, timeout=120, preexec_fn=None,
        text=False) -> subprocess.CompletedProcess:
    """subprocess.run([sys.executable, "-m", "scall_objtool", *argv], ...);
    forked from a server unless that would differ (see above)."""
    argv = [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in argv]
    full_env = dict(os.environ if env is None else env)
    cmd = [sys.executable, "-m", "scall_objtool", *argv]
    if preexec_fn is not None or os.environ.get("SCALL_TESTS_CLI") == "exec":
        return subprocess.run(cmd, cwd=cwd, env=full_env, stdin=stdin, stdout=stdout,
                              stderr=stderr, timeout=timeout, preexec_fn=preexec_fn, text=text)
    key = _startup_key(full_env)
    if key not in _servers:
        _servers[key] = _Server(full_env)
    server = _servers[key]
    streams = [_stream(s, m) for s, m in ((stdin, "stdin"), (stdout, "stdout"),
                                          (stderr, "stderr"))]
    request = pickle.dumps({"argv": argv, "env": full_env,
                            "cwd": os.fspath(cwd) if cwd is not None else os.getcwd()})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(server.path)
        try:
            message = _HEADER.pack(len(request)) + request
            sent = socket.send_fds(sock, [message[:4096]], [s[0] for s in streams])
            if sent < len(message):   # (a send of nothing fails once a quick command has ended)
                sock.sendall(message[sent:])
        finally:
            for _, _, close in streams:
                if close is not None:
                    os.close(close)
        pid = _STATUS.unpack(_recv_exact(sock, _STATUS.size))[0]
        out = _collect([s[1] for s in streams[1:]], pid, cmd, timeout)
        rc = _STATUS.unpack(_recv_exact(sock, _STATUS.size))[0]
    if text:                                  # as subprocess decodes text=True
        encoding = locale.getpreferredencoding(False)
        out = [None if b is None else
               b.decode(encoding).replace("\r\n", "\n").replace("\r", "\n") for b in out]
    return subprocess.CompletedProcess(cmd, rc, *out)


def _collect(fds, pid, cmd, timeout):
    """Read the pipes among FDS to their end (bytes, or None for no pipe)."""
    chunks = {fd: [] for fd in fds if fd is not None}
    deadline = time.monotonic() + timeout if timeout else None
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        try:
            while sel.get_map():
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(cmd, timeout)
                for key, _ in sel.select(wait):
                    data = os.read(key.fd, 1 << 16)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        sel.unregister(key.fd)
        finally:
            for fd in chunks:
                os.close(fd)
    return [b"".join(chunks[fd]) if fd is not None else None for fd in fds]


# ------------------------------------------------------------------ server
def _preload():
    """Import every module of the package (the commands import them lazily)."""
    import importlib
    import pkgutil
    import scall_objtool
    for m in pkgutil.walk_packages(scall_objtool.__path__, "scall_objtool."):
        if not m.name.endswith("__main__"):
            importlib.import_module(m.name)


def serve():
    """The server (run as `python -c ... SOCKET`).  No try/finally on the way
    up: a command's process leaves through here as the interpreter would."""
    import gc
    path = sys.argv[1]
    _preload()
    gc.freeze()                 # the children's collections leave these pages shared
    signal.signal(signal.SIGTERM, _stop)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(64)
    os.rename(path + ".tmp", path)
    while True:
        _reap(os.WNOHANG)
        conn, _ = listener.accept()
        message, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        size = _HEADER.unpack(message[:_HEADER.size])[0]
        body = message[_HEADER.size:]
        if len(body) < size:
            body += _recv_exact(conn, size - len(body))
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            listener.close()
            _wait_for_command(conn, fds, pickle.loads(body))
            return                       # only the command's process gets here
        conn.close()
        for fd in fds:
            os.close(fd)


def _reap(options):
    while True:
        try:
            pid, _ = os.waitpid(-1, options)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _stop(signum, frame):
    _reap(0)
    os._exit(0)


def _wait_for_command(conn, fds, request):
    """In a waiter process: fork the command, tell the client its process id
    and then its exit status (a death by signal -N, as subprocess says)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        conn.close()
        _become_command(fds, request)
        return
    for fd in fds:
        os.close(fd)
    conn.sendall(_STATUS.pack(pid))
    _, status = os.waitpid(pid, 0)
    conn.sendall(_STATUS.pack(os.waitstatus_to_exitcode(status)))
    os._exit(0)


def _become_command(fds, request):
    import runpy
    for target, fd in enumerate(fds):
        if fd != target:
            os.dup2(fd, target)
    for fd in set(fds):
        if fd > 2:
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # sys.path as `python -m` makes it: the working directory first, no tests/
    sys.path[:] = [os.getcwd()] + [p for p in sys.path if p not in (TESTS, "")]
    sys.argv = ["-m", *request["argv"]]
    try:
        runpy.run_module("scall_objtool", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException as e:             # noqa: BLE001 - as the interpreter reports it
        sys.excepthook(type(e), e, e.__traceback__)
        code = 1
        if isinstance(e, KeyboardInterrupt):
            code = -signal.SIGINT
    _exit(code)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _exit(code: int):
    """The interpreter's exit (threads joined, atexit handlers, streams
    flushed: a failed flush of stdout is status 120) without tearing down the
    modules the server imported, which would touch every page it shares."""
    import atexit
    import threading
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:                  # noqa: BLE001
            if stream is sys.stdout and code == 0:
                code = 120
    if code < 0:                           # KeyboardInterrupt: die by SIGINT, as Python does
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)
