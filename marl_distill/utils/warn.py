"""Warnings attributed to the user's own line: Python names the line ``stacklevel`` frames up, and a fixed level
names a line of this package whenever the call comes through another of its layers (``md.run`` -> runner ->
evaluation). ``warnings.warn``'s ``skip_file_prefixes`` does this from Python 3.12 on."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

PACKAGE = str(Path(__file__).resolve().parents[1] / "_")[:-1]
"""This package's folder, with a trailing separator: frames whose file lies under it are skipped."""


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)``, attributed to the first caller outside this package."""
    frame, level = sys._getframe(1), 2
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
