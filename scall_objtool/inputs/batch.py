"""Work on many inputs: the per-input workers, the process pool, progress.

A *worker* is a module-level function ``worker(inp, *args) -> Outcome`` that
never raises for a bad input: any failure becomes one error line on the
outcome (``guarded``).  ``run_batch(worker, inputs, args, jobs)`` runs it over
every input, in this process or spread over ``jobs`` forked processes, and
returns the outcomes in input order, so what is printed does not depend on
``jobs``.  A signal (see ``interrupt``) stops the batch: no new input is
started, and ``Interrupted`` propagates to the command line.

Outcomes carry data, never prose: the commands (``cli/commands.py``) and the
renderers (``report/``) turn them into text.
"""
from __future__ import annotations

import os
import sys

from ..core import Options
from ..errors import ForeignObject, InputError, UsageError, error_line, warning_line
from ..records import LIST, later, record
from . import Input, interrupt

# what a batch needs for every input is imported here (an import statement
# run in a function costs microseconds each time), the writer (which a scan
# does not need) when first used
_write = later("scall_objtool.table.write")

@record
class Outcome:
    """What processing one input produced (picklable, for worker processes)."""
    display: str
    ok: bool = True
    result: object = None         # ObjectResult, Verdict or WriteOutcome
    messages: list[str] = LIST    # stderr lines, in order
    skipped: str | None = None    # why a walked object of another class/machine was passed over


def guarded(display: str, fn, outcome: Outcome):
    """Run ``fn``; any failure becomes one error line on the outcome."""
    try:
        return fn()
    except InputError as e:
        # the input's display name, already escaped, rather than the raw path
        outcome.messages.append(error_line(f"{display}: {e.message}"))
    except UsageError as e:
        outcome.messages.append(error_line(str(e)))
    except MemoryError:
        outcome.messages.append(error_line(f"{display}: out of memory"))
    except RecursionError:
        outcome.messages.append(error_line(f"{display}: input too deeply nested"))
    except Exception as e:  # never a traceback for a user; SCALL_OBJTOOL_DEBUG shows it
        if os.environ.get("SCALL_OBJTOOL_DEBUG"):
            raise
        outcome.messages.append(error_line(f"{display}: internal error: "
                                           f"{type(e).__name__}: {e}"))
    outcome.ok = False
    return None


# ------------------------------------------------------------------ workers
def _run(inp: Input, work) -> Outcome:
    """An outcome for ``work()``, with the warnings of what it returns.  An object
    of another ELF class or machine found by a directory walk is passed over."""
    out = Outcome(inp.display)

    def walked_work():
        try:
            return work()
        except ForeignObject as e:
            if not inp.walked:
                raise
            out.skipped = e.message
            return None
    out.result = guarded(inp.display, walked_work, out)
    if out.result is not None:
        out.messages.extend(warning_line(inp.display, w)
                            for w in getattr(out.result, "warnings", ()))
    return out


def _scanned(inp: Input, options: Options, sources: bool | str = True):
    from ..core.elf import ElfFile
    from ..core.pipeline import scan_elf
    elf = ElfFile(inp.read(), inp.display)
    return elf, scan_elf(elf, options, sources=sources)


def scan_one(inp: Input, options: Options, sources: bool | str = True) -> Outcome:
    """Scan one input: the outcome's result is its ``ObjectResult`` (with the
    source lines ``sources`` asks for, see ``pipeline.scan_elf``; how a linked
    image's candidates are found is ``options.candidates``)."""
    return _run(inp, lambda: _scanned(inp, options, sources)[1])


def verify_one(inp: Input, options: Options) -> Outcome:
    """Verify the table of one input: the outcome's result is its ``Verdict``."""
    def work():
        from ..table.verify import verify
        elf, result = _scanned(inp, options, sources=False)
        return verify(elf, result, options)
    return _run(inp, work)


def write_one(inp: Input, options: Options, output: str | None = None, force: bool = False,
              dry_run: bool = False, backup: bool = False, keep: bool = True) -> Outcome:
    """Write the table of one input: the outcome's result is its ``WriteOutcome``
    (without ``keep``, None once its warnings are messages: a quiet write
    shows nothing else, and a worker then sends no site back)."""
    if inp.is_member:
        return Outcome(inp.display, ok=False, messages=[error_line(
            f"{inp.display}: archive members are scanned, not rewritten; run write on the "
            "objects before archiving")])
    write_path = _write().write_path
    # a walked file is written as the walk found it, never through a symlink
    # that appeared since (a walk's links inside its tree are already resolved)
    out = _run(inp, lambda: write_path(inp.path, options, output, force, dry_run, backup,
                                       follow=not inp.walked))
    if not keep:
        out.result = None
    return out


# ------------------------------------------------------------------ batches
def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def job_count(jobs: int | None) -> int:
    """The processes ``--jobs`` asks for: the CPUs this process may use when
    not given, at least one."""
    return default_jobs() if jobs is None else max(1, jobs)


def _worker_init() -> None:
    """Worker initializer: a worker must not outlive a killed parent (Linux), and
    takes the command line's signal handling."""
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)      # PR_SET_PDEATHSIG
        if os.getppid() == 1:                            # the parent is already gone
            os._exit(1)
    except (OSError, AttributeError):
        pass
    from .interrupt import install_worker
    install_worker()


class _Nothing:
    """The context ``around`` is by default: nothing."""
    handed = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _run_chunk(task) -> tuple[list[Outcome], list | None]:
    """Process a chunk of inputs inside the batch's ``around`` context: the
    outcomes, and what the context hands back to the parent (``handed``);
    after a signal no new input is started."""
    worker, inputs, args, around = task
    outs = []
    with around() as scope:
        for inp in inputs:
            with interrupt.busy():
                outs.append(worker(inp, *args))
    return outs, scope.handed


def run_batch(worker, inputs: list[Input], args: tuple = (),
              jobs: int | None = None, around=None) -> list[Outcome]:
    """``worker(inp, *args)`` for every input; outcomes come back in input order.
    ``around`` (a picklable context manager class, or None) is entered around
    the whole batch in this process, and around each chunk a worker process
    takes; what a chunk's context hands back (``handed``) the batch's
    ``adopt``s (write: ``fileio.deferred_sync``, one sync per directory).
    A signal (see ``interrupt``) stops the batch with ``Interrupted``."""
    from . import interrupt
    jobs = job_count(jobs)
    jobs = min(jobs, len(inputs))
    around = around or _Nothing
    progress = _progress(len(inputs)) if len(inputs) > 1 else None
    try:
        with around():
            if jobs <= 1:
                outs = []
                for inp in inputs:
                    outs.extend(_run_chunk((worker, [inp], args, around))[0])
                    interrupt.check()       # a signal deferred during a replacement
                    if progress:
                        progress(1)
                return outs
            return _run_pool(worker, inputs, args, jobs, progress, around)
    finally:
        if progress:
            progress(None)


def _run_pool(worker, inputs, args, jobs, progress, around) -> list[Outcome]:
    import concurrent.futures as cf
    import multiprocessing as mp
    import signal

    from . import interrupt
    # small chunks keep both workers busy; order is restored below
    size = max(1, min(32, len(inputs) // (jobs * 8) or 1))
    chunks = [inputs[i:i + size] for i in range(0, len(inputs), size)]
    results: list[list[Outcome] | None] = [None] * len(chunks)
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with interrupt.polling():           # the handler only records; we check below
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                      initializer=_worker_init)
        try:
            futs = {pool.submit(_run_chunk, (worker, c, args, around)): k
                    for k, c in enumerate(chunks)}
            pending = set(futs)
            while pending:
                interrupt.check()
                done, pending = cf.wait(pending, timeout=0.05,
                                        return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    k = futs[fut]
                    results[k], handed = fut.result()
                    if handed:
                        around.adopt(handed)
                    if progress:
                        progress(len(chunks[k]))
            interrupt.check()
        except BaseException:
            # stop the workers: each abandons (or, mid-replacement, completes) its
            # object and starts no other; then wait for them, so none outlives us
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except OSError:
                    pass
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return [o for chunk in results for o in chunk]


def _progress(total: int):
    """A rich progress bar on stderr when it is a terminal; else None."""
    if os.environ.get("SCALL_OBJTOOL_NO_PROGRESS") or not sys.stderr.isatty():
        return None
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    except ImportError:
        return None
    prog = Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
    prog.start()
    task = prog.add_task("objects", total=total)

    def step(n):
        try:
            if n is None:
                prog.stop()
            else:
                prog.advance(task, n)
        except OSError:             # the terminal is gone (a hangup), and the bar with it
            pass
    return step
