"""Atomic artifact writes: a temp file in the same folder, then one rename, so a crash never leaves half a file."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marl_distill.utils import faults


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[Path], None], suffix: str = ".tmp", *, durable: bool = False
) -> Path:
    """Call ``write(tmp)`` on a temp path beside ``path`` and rename it over ``path`` when it succeeds.

    ``suffix`` ends the temp name (SB3's ``save`` wants ``.zip``, or it appends one). ``durable``: flush the file
    and the rename to disk before returning, so a machine crash cannot leave the name pointing at lost data
    (checkpoints, whose older copies are deleted once a newer one is marked).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        faults.point(f"write:{path.name}", partial=tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; artifacts get the user's usual permissions
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable and hasattr(os, "O_DIRECTORY"):
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(path: str | os.PathLike[str], text: str, *, durable: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=durable)


def _finite(data: Any) -> Any:
    """NaN and infinities become null: strict JSON readers reject them (e.g. a normalized return of a zero-sum
    game, where teachers and random score the same team return)."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def write_json(path: str | os.PathLike[str], data: Any, *, durable: bool = False) -> Path:
    return write_text(
        path, json.dumps(_finite(data), indent=2, sort_keys=False, allow_nan=False) + "\n", durable=durable
    )


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
