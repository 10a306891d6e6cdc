"""Independent jobs side by side on forked worker processes (distilling students, playing evaluation episodes).

Forked workers inherit everything the parent has loaded (env factories, teachers, students, onnxruntime
sessions), so a job is any zero-argument callable and nothing is reloaded or pickled on the way in; only results
travel back. Each job seeds all it draws from its own arguments (a fresh generator per play, torch's seed per
student), so results do not depend on which worker ran a job or in what order: the same figures as one process
(tests/distillation/test_distill.py checks it). Jobs run one after another where ``fork`` does not exist or is unsafe:
Windows and macOS, and a parent whose torch runs more than one thread (torch's thread pool does not survive a
fork: the children would hang).
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from marl_distill.errors import RunFailed
from marl_distill.utils.disk_full import quiet_full_disk_threads

T = TypeVar("T")
PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal this process gets when the thread that forked it exits."""
_JOBS: Sequence[Callable[[], Any]] = ()
"""The jobs of the current ``run_jobs`` call, inherited by its forked workers (which receive only an index)."""


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Is forking this process safe: Linux, and torch (if loaded) at one thread."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() > 1:
        return False
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def quiet_on_interrupt() -> None:
    """In a worker process: ignore Ctrl-C (SIGINT reaches the whole process group). The parent alone handles it,
    stops its workers and says in one line how to go on, instead of one traceback per worker. SIGTERM, which the
    parent sends to stop a worker, ends it at once (a forked worker would otherwise inherit the CLI's handler)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def ignore_stop_signals() -> None:
    """In a worker its parent must be able to stop at a moment of its choosing (a learner saving a last
    checkpoint, an env worker stepping to it): ignore Ctrl-C and SIGTERM, which reach the whole process group.
    The parent ends it with SIGKILL; on Linux the kernel sends SIGKILL too if the parent dies first (the worker's
    copies of the parent's pipe ends would otherwise keep it waiting forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent()


def die_with_parent() -> None:
    """In a worker: on Linux, have the kernel SIGKILL this process when the thread that started it exits, so a parent
    killed outright (SIGKILL, out of memory) leaves no worker running on; elsewhere, nothing. SIGKILL, not SIGTERM:
    a worker that stops gracefully (a teacher stage saving a checkpoint) would then wait forever for its next job
    from the dead parent's queue."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(1)


def preload() -> None:
    """Load here what torch loads lazily on a process's first optimizer step (torch._dynamo: some 800 modules,
    about a second), so forked workers (learners, students distilled side by side) inherit it instead of each
    importing it on its own."""
    import torch

    weight = torch.nn.Parameter(torch.zeros(1))
    weight.grad = torch.zeros(1)
    torch.optim.Adam([weight]).step()


def _start_worker() -> None:
    """A pool worker: quiet on Ctrl-C, killed with its parent (it holds the run folder's lock too, so it must not
    outlive a command killed outright), and quiet about a full disk in background threads."""
    quiet_on_interrupt()
    die_with_parent()
    quiet_full_disk_threads()


def _call(i: int) -> Any:
    return _JOBS[i]()


def run_jobs(jobs: Sequence[Callable[[], T]], workers: int, on_done: Callable[[], None] | None = None) -> list[T]:
    """Every job's result, in the jobs' order; up to ``workers`` at once (``on_done`` after each one finishes).
    A worker that dies (killed, out of memory) raises ``RunFailed`` here instead of hanging."""
    global _JOBS
    done = on_done or (lambda: None)
    if workers <= 1 or len(jobs) <= 1 or not can_fork():
        results = []
        for job in jobs:
            results.append(job())
            done()
        return results
    _JOBS = jobs
    preload()
    before = set(multiprocessing.active_children())
    context = multiprocessing.get_context("fork")
    pool = cf.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_start_worker)
    try:
        results = []
        for result in pool.map(_call, range(len(jobs))):
            results.append(result)
            done()
        pool.shutdown()
        return results
    except cf.process.BrokenProcessPool:  # a worker killed (out of memory, kill -9): one line, not a traceback
        stop_pool(pool, before)
        raise RunFailed("a worker process died (killed, or out of memory?)") from None
    except BaseException:  # Ctrl-C, SIGTERM or a failed job: stop the workers now, not after the queued jobs
        stop_pool(pool, before)
        raise
    finally:
        _JOBS = ()


def stop_pool(pool: cf.ProcessPoolExecutor, before: set[Any]) -> None:
    """Stop ``pool`` now: cancel its queued jobs and terminate its workers (the children of this process not in
    ``before``), whatever they are running. A signal sent to this process alone (``kill PID``, a scheduler's stop)
    does not reach them, and a plain shutdown would wait for their jobs to finish."""
    pool.shutdown(wait=False, cancel_futures=True)
    stray = set(multiprocessing.active_children()) - before
    for proc in stray:
        proc.terminate()
    # The pool's own thread reaps its workers too; when it wins the race, our join returns before it has noted the
    # exit code, so wait until one of us has (a worker that takes a moment to die is waited for too).
    deadline = time.monotonic() + 5
    for proc in stray:
        while proc.exitcode is None and time.monotonic() < deadline:
            proc.join(timeout=0.05)
