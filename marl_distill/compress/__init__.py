"""Students you can ship: a team's acting path as one ONNX graph (with parity checked), int8 quantization of it,
and pruning of trained students.

The ONNX pieces need the ``[export]`` extra (onnx, onnxruntime); ``require_export`` says so in one line. Their
modules (``export``, ``graph``, ``runtime``, ``paths``, ``prune``) are imported where used, not here, so the lab
imports without the extra.
"""

from __future__ import annotations

import importlib

from marl_distill.errors import UserError

__all__ = ["EXTRA_HINT", "export_available", "export_missing", "require_export"]

EXTRA_HINT = "pip install 'marl-distill[export]' (or: pip install -e '.[export]' in a checkout)"


def export_missing() -> list[str]:
    """The export extra's packages that cannot be imported here."""
    out = []
    for name in ("onnx", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError:
            out.append(name)
    return out


def export_available() -> bool:
    """Are onnx and onnxruntime importable?"""
    return not export_missing()


def require_export(what: str = "ONNX export") -> None:
    """Refuse, in one line naming the extra, when onnx or onnxruntime is missing."""
    missing = export_missing()
    if missing:
        raise UserError(f"{what} needs {' and '.join(missing)}, from the [export] extra: {EXTRA_HINT}")
