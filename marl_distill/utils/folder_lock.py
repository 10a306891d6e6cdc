"""One writer per run folder: an advisory ``flock`` on a file in the folder, which the kernel drops when the last
process holding it dies (however it dies), so a lock left by a killed command never blocks the next one.

The lock file stays in the folder between commands: removing it would let two commands lock two different files
of one name. Forked learners and workers inherit the lock with the open file (they write the folder too, and
die with their parent). A process that already holds a folder's lock may take it again (a run's stages, the API
over the runner). Where ``fcntl`` does not exist (Windows), or the file system refuses ``flock`` (some network
file systems), nothing is locked and a warning says so.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from marl_distill.errors import UserError
from marl_distill.utils.warn import warn_user

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK = ".marl-distill.lock"
"""The lock file's name in a run (or benchmark) folder; it holds the holder's pid, command and start time."""
RETRY_SECONDS = 1.0
"""How long a command waits for a lock before refusing: another command's probe holds it for an instant."""
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


def _try_lock(fd: int, how: int, folder: Path) -> bool | None:
    """True: locked; False: another process holds it; None: this file system cannot lock (warned once)."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        warn_user(f"{folder} cannot be locked here ({exc.strerror}): make sure no other command writes it meanwhile")
        return None
    return True


def check_free(folder: str | os.PathLike[str]) -> None:
    """Refuse, writing nothing, a folder another live process holds (a stale lock file passes). The probe takes a
    shared lock for an instant, which a live holder's exclusive lock excludes."""
    folder = Path(folder)
    path = folder / LOCK
    if fcntl is None or str(folder.resolve()) in _HELD or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        if _try_lock(fd, fcntl.LOCK_SH, folder) is False:
            raise _refusal(folder, path)
    finally:
        os.close(fd)  # closing drops the probe's lock


def _acquire(folder: Path) -> int | None:
    """The locked file's descriptor (None where nothing can be locked); a live holder is refused in one line."""
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + RETRY_SECONDS
    while (got := _try_lock(fd, fcntl.LOCK_EX, folder)) is False and time.monotonic() < deadline:
        time.sleep(0.05)
    if not got:
        os.close(fd)
        if got is None:
            return None
        raise _refusal(folder, path)
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    try:  # who holds it, for the refusal a second command prints; without it the lock still holds
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {command[:200]}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    except OSError:
        pass
    return fd


@contextmanager
def locked(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Create ``folder`` if needed and hold its lock until the block ends; a live holder is refused in one line."""
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield folder
        finally:
            _HELD[key][1] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = _acquire(folder) if fcntl is not None else None
    if fd is None:
        yield folder
        return
    _HELD[key] = [fd, 1]
    try:
        yield folder
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            del _HELD[key]
            os.close(fd)  # the kernel drops the lock with the last descriptor (forked workers may still hold one)
