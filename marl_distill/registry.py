"""Environment ids -> factories.

Three routes lead to an environment, all ending in a zero-argument factory that returns a fresh PettingZoo env:
a built-in short id (``simple_spread``), an installed package's entry point in the group ``marl_distill.envs``,
or a ``package.module:callable`` spec. PettingZoo 1.27 does not read package entry points itself, so we do.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from marl_distill.errors import UserError

ENTRY_POINT_GROUP = "marl_distill.envs"


@dataclass(frozen=True)
class EnvEntry:
    """A registered environment."""

    id: str
    """Short id users type."""
    target: str
    """``module:callable`` returning a PettingZoo ParallelEnv or AECEnv."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Default keyword arguments (user kwargs override them)."""
    source: str = "builtin"
    """Where the entry came from: builtin or the distribution that declared the entry point."""


BUILTIN: dict[str, EnvEntry] = {
    "simple_spread": EnvEntry(
        "simple_spread",
        "mpe2.simple_spread_v3:parallel_env",
        {"N": 3, "max_cycles": 25, "continuous_actions": False},
    ),
    "simple_speaker_listener": EnvEntry(
        "simple_speaker_listener",
        "mpe2.simple_speaker_listener_v4:parallel_env",
        {"max_cycles": 25, "continuous_actions": False},
    ),
    "simple_reference": EnvEntry(
        "simple_reference",
        "mpe2.simple_reference_v3:parallel_env",
        {"max_cycles": 25, "continuous_actions": False},
    ),
}


def entry_point_envs() -> dict[str, EnvEntry]:
    """Environments declared by installed packages under the ``marl_distill.envs`` entry-point group."""
    found: dict[str, EnvEntry] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        source = dist.name if dist is not None else "entry point"
        found[ep.name] = EnvEntry(ep.name, ep.value, {}, source)
    return found


def all_envs() -> dict[str, EnvEntry]:
    """Every registered id: built-ins first, then entry points (a built-in id is never shadowed)."""
    envs = dict(entry_point_envs())
    envs.update(BUILTIN)
    return dict(sorted(envs.items()))


def load_callable(target: str) -> Callable[..., Any]:
    """Import ``package.module:callable`` (dotted attributes allowed after the colon)."""
    module_name, _, attr_path = target.partition(":")
    if not module_name or not attr_path:
        raise UserError(f"env spec {target!r} is not 'package.module:callable'; use a registered id or that form")
    if os.getcwd() not in sys.path:  # like uvicorn: a my_env.py in the current folder is found
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(
            f"cannot import module {module_name!r} for env {target!r} ({exc}); install it or fix the spec"
        ) from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise UserError(f"module {module_name!r} has no attribute {attr_path!r}; fix the env spec {target!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(f"{target!r} is not callable; point the spec at a function or class that builds the env")
    return obj


def resolve(env: str, kwargs: Mapping[str, Any] | None = None) -> Callable[[], Any]:
    """Turn an env id or spec plus user kwargs into a zero-argument factory."""
    envs = all_envs()
    if env in envs:
        entry = envs[env]
        merged = {**entry.kwargs, **(kwargs or {})}
        return partial(load_callable(entry.target), **merged)
    if ":" in env:
        return partial(load_callable(env), **(kwargs or {}))
    known = ", ".join(envs) or "none"
    raise UserError(f"unknown environment {env!r}; use one of [{known}] or a 'package.module:callable' spec")
