"""Progress a person sees: tqdm's bars on a terminal; elsewhere (a CI log, ``| cat``, nohup) plain lines on
stderr, one when a stage starts and ends and one at least every 30 s while it runs, so a long run never looks
hung. ``progress``: True forces the bars, False silences both, None picks by whether stderr is a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

INTERVAL = 30.0
"""Seconds between two progress lines where there is no terminal."""


def elapsed(seconds: float) -> str:
    """``42.0s`` or ``3m05s``."""
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class LogLines:
    """tqdm's ``update`` / ``close`` for a stream that is not a terminal: a line when ``interval`` seconds have
    passed since the last one."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0, interval: float = INTERVAL) -> None:
        self.total, self.desc, self.unit, self.n, self.interval = total, desc, unit, initial, interval
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
            _say(f"{self.desc}: {self.n:,}/{self.total:,} {self.unit}s{share}, {elapsed(now - self.start)}")

    def close(self) -> None:
        pass

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(*, total: int, desc: str, unit: str, progress: bool | None, initial: int = 0) -> Any:
    """A tqdm bar on a terminal (or with ``progress`` True), periodic lines elsewhere, nothing with False."""
    if progress is False:
        return tqdm(total=total, disable=True)
    if progress or sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False)
    return LogLines(total, desc, unit, initial)


@contextmanager
def stage(name: str, progress: bool | None) -> Iterator[None]:
    """A line when stage ``name`` starts and one when it ends, with the time it took (none with ``progress``
    False)."""
    if progress is False:
        yield
        return
    start = time.monotonic()
    _say(f"{name}: started")
    yield
    _say(f"{name}: done in {elapsed(time.monotonic() - start)}")
