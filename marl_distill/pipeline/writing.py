"""What every command that writes a run folder does around its writes: hold the folder's lock (one writer at a
time) and say a full disk in one line instead of the traceback of whichever saver met it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from marl_distill.errors import DiskFull, RunFailed, UserError
from marl_distill.utils.disk_full import disk_full_line, is_disk_full
from marl_distill.utils.folder_lock import locked


@contextmanager
def writing(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Create ``folder`` if needed, hold its lock for the block, and turn a full disk met inside it into
    ``DiskFull`` (exit 1, one line). Atomic writes leave no half-written file behind, so the same command with
    ``--resume`` goes on from what is whole once space is freed."""
    try:
        with locked(folder) as held:  # a disk too full for the folder or its lock file is met here too
            yield held
    except (UserError, RunFailed):
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFull(disk_full_line(folder)) from None
        raise
