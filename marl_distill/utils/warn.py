"""Warnings attributed to the user's own line: Python names the line ``stacklevel`` frames up, and a fixed level
names a line of this package whenever the call comes through another of its layers (``md.run`` -> runner ->
evaluation). ``warnings.warn``'s ``skip_file_prefixes`` does this from Python 3.12 on."""

from __future__ import annotations

import sys
import warnings

PACKAGE = __name__.split(".")[0]
"""This package's name: frames of its modules (by module name, not file path) are skipped."""


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)``, attributed to the first caller outside this package."""
    frame, level = sys._getframe(1), 2
    while frame is not None and _ours(frame.f_globals.get("__name__", "")):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")
