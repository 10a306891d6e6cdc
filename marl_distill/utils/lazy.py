"""Package attributes imported on first use (PEP 562), so importing a package costs only what is used from it.

``marl_distill.env`` and ``marl_distill.policy`` list torch-backed names (``JointVecEnv``, ``JointPolicy``) in
``__all__``, yet deployment without torch imports their torch-free modules (the registry, views, observation
encoding): their ``__init__`` resolves each public name lazily instead of importing every module up front.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public names live in its submodules.

    Args:
        package: the package's ``__name__``.
        modules: each submodule (relative to the package) and the public names it defines, e.g.
            ``{"joint_vec_env": ("JointStep", "JointVecEnv", "make_parallel")}``.

    Returns:
        The two module-level functions to assign in the package's ``__init__``.
    """

    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)  # found once, then an ordinary attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
