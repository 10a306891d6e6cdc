"""A full disk, said in one line: which folder, how much space is left, and how to go on."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path
from typing import Any

FULL = (errno.ENOSPC, errno.EDQUOT)
"""No space left on the device, or the user's disk quota reached."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Is ``exc``, or an exception it was raised from or during, an ``OSError`` saying the disk is full? (SB3's
    savers raise their own errors while handling it.)"""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _free(folder: Path) -> str:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = float(shutil.disk_usage(probe).free)
    except OSError:
        return "free space unknown"
    for unit in ("bytes", "KB", "MB", "GB"):
        if free < 1024 or unit == "GB":
            return f"{free:.0f} bytes free" if unit == "bytes" else f"{free:.1f} {unit} free"
        free /= 1024
    return ""


def disk_full_line(folder: str | os.PathLike[str]) -> str:
    """The line for a write to ``folder`` that found no space."""
    return (
        f"no space left on the disk of {folder} ({_free(Path(folder))}): free some space, then run the command "
        "again (with --resume where it has one)"
    )


def quiet_full_disk_threads() -> None:
    """In a process whose background threads write (TensorBoard's event writer): a full disk met in such a thread
    prints nothing; the main thread meets it at its next write and says it in one line."""
    default = threading.excepthook

    def hook(args: Any) -> None:
        if not is_disk_full(args.exc_value):
            default(args)

    threading.excepthook = hook
