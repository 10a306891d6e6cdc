"""Fault points for the fault tests, at moments a test could not hit by timing: ``MARL_DISTILL_FAULT=kill:NAME[@K]``
makes the process that reaches point ``NAME`` for the K-th time (default 1) kill itself with SIGKILL, as a machine
crash or ``kill -9`` would; ``enospc:NAME[@K]`` raises the ``OSError`` a full disk raises there (for platforms
where a test cannot make a small file system). Unset, a point costs one environment lookup; a setting of another
form is ignored."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

VARIABLE = "MARL_DISTILL_FAULT"
_REACHED: dict[str, int] = {}


def point(name: str, partial: Path | None = None) -> None:
    """A named moment of a write. ``partial``: a file being written, cut to half its bytes before the kill (a
    write that stopped midway)."""
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    kind, _, rest = spec.partition(":")
    want, _, nth = rest.partition("@")
    if want != name or kind not in ("kill", "enospc"):
        return
    _REACHED[spec] = _REACHED.get(spec, 0) + 1  # counted per setting: a test that sets another starts afresh
    if str(_REACHED[spec]) != (nth or "1"):
        return
    if kind == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(partial or name))
    if partial is not None and partial.is_file():
        os.truncate(partial, partial.stat().st_size // 2)
    os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    """Forget how often each point was reached (a test process that sets the same fault twice)."""
    _REACHED.clear()
