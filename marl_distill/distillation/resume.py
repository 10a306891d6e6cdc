"""A student's distillation resumes at its last finished round: after each round but the last, everything the
next rounds read (weights, optimizer, the aggregated buffers, curves, counters, random states) is saved in one
file, written atomically. Continuing from it gives the same student as an uninterrupted run (tests check it)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl_distill.errors import UserError
from marl_distill.utils.files import atomic_write

FOLDER = "checkpoints/distill"
"""Where a run folder keeps unfinished students' round checkpoints (``KIND.pt``) until the student is saved."""


def save_round(path: Path, key: dict[str, Any], state: dict[str, Any], rng: np.random.Generator) -> None:
    """``state`` after a finished round, with ``key`` (what must match to continue) and the random states."""
    record = {"key": key, **state, "rng": rng.bit_generator.state, "torch": torch.get_rng_state()}
    atomic_write(path, lambda t: t.write_bytes(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)))


def load_round(path: Path | None, key: dict[str, Any], rng: np.random.Generator) -> dict[str, Any] | None:
    """The state saved at ``path`` with the random states put back (``rng`` in place), or None without one."""
    if path is None or not path.is_file():
        return None
    try:
        record = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise UserError(
            f"{path} is damaged ({exc}); move it out of the run folder to distill this student afresh"
        ) from None
    if record.pop("key") != key:
        raise UserError(
            f"{path} was saved with other distillation settings; restore them, or move it out of the run folder to "
            "distill this student afresh"
        )
    rng.bit_generator.state = record.pop("rng")
    torch.set_rng_state(record.pop("torch"))
    for buf in (record["train_buf"], record["held_buf"]):
        if buf is not None:
            buf.rng = rng  # the buffers draw from the student's one generator
    return record


def spent(path: Path | None) -> None:
    """Remove a finished student's round checkpoint (and the folders it leaves empty)."""
    if path is None or not path.exists():
        return
    path.unlink()
    for folder in (path.parent, path.parent.parent):
        try:
            folder.rmdir()  # only when empty; a student finishing beside this one may still hold its file
        except OSError:
            return
