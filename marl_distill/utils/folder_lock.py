"""One writer per run folder: an advisory ``flock`` on a file in the folder, which the kernel drops when the process
holding it dies (however it dies), so a lock left by a killed command never blocks the next one.

The lock file stays in the folder between commands: removing it would let two commands lock two different files
of one name. Forked workers inherit the lock with the open file; a process that already holds a folder's lock may
take it again (a run's stages, the API over the runner). Where ``fcntl`` does not exist (Windows) nothing is
locked.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from marl_distill.errors import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK = ".marl-distill.lock"
"""The lock file's name in a run (or benchmark) folder; it holds the holder's pid, command and start time."""
_HELD: dict[str, list[int]] = {}
"""Folders this process holds: resolved path -> [file descriptor, depth]."""


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "another process"
    except OSError:
        return "another process"


def _refusal(folder: Path, path: Path) -> UserError:
    return UserError(
        f"{folder} is in use by another marl-distill command ({_holder(path)}); wait for it to finish, or stop it "
        "(Ctrl-C keeps its last checkpoint) and run this again"
    )


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def check_free(folder: str | os.PathLike[str]) -> None:
    """Refuse, writing nothing, a folder another live process holds (a stale lock file passes)."""
    folder = Path(folder)
    path = folder / LOCK
    if fcntl is None or str(folder.resolve()) in _HELD or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        if not _try_lock(fd):
            raise _refusal(folder, path)
    finally:
        os.close(fd)  # closing drops the probe's lock


@contextmanager
def locked(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Create ``folder`` if needed and hold its lock until the block ends; a live holder is refused in one line."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if fcntl is None or key in _HELD:
        if key in _HELD:
            _HELD[key][1] += 1
        try:
            yield folder
        finally:
            if key in _HELD:
                _HELD[key][1] -= 1
        return
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    if not _try_lock(fd):
        os.close(fd)
        raise _refusal(folder, path)
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}: {command[:200]}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    _HELD[key] = [fd, 1]
    try:
        yield folder
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            del _HELD[key]
            os.close(fd)  # the kernel drops the lock with the last descriptor (forked workers may still hold one)
