"""Environment ids -> factories.

Three routes lead to an environment, all ending in a zero-argument factory that returns a fresh PettingZoo env:
a built-in short id (``simple_spread``), an installed package's entry point in the group ``marl_distill.envs``,
or a ``package.module:callable`` spec. PettingZoo 1.27 does not read package entry points itself, so we do.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from marl_distill.env.aec_cycle import cycled
from marl_distill.errors import UserError
from marl_distill.utils.warn import warn_user

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
    cooperative: bool | None = None
    """Whether the agents share one goal, where the env does not say so itself (``metadata["cooperative"]``)."""
    cycled: bool = False
    """The target builds a parallelizable AEC env, driven through ``aec_cycle.CycleParallel`` (PettingZoo's
    ``aec_to_parallel`` without its extra observations: the same transitions, faster)."""


BUILTIN: dict[str, EnvEntry] = {
    "simple_spread": EnvEntry(
        "simple_spread",
        "mpe2.simple_spread_v3:env",
        {"N": 3, "max_cycles": 25, "continuous_actions": False},
        cycled=True,
        cooperative=True,  # one goal, whatever local terms a task adds to each agent's reward
    ),
    "simple_speaker_listener": EnvEntry(
        "simple_speaker_listener",
        "mpe2.simple_speaker_listener_v4:env",
        {"max_cycles": 25, "continuous_actions": False},
        cycled=True,
        cooperative=True,  # one goal, whatever local terms a task adds to each agent's reward
    ),
    "simple_reference": EnvEntry(
        "simple_reference",
        "mpe2.simple_reference_v3:env",
        {"max_cycles": 25, "continuous_actions": False},
        cycled=True,
        cooperative=True,  # one goal, whatever local terms a task adds to each agent's reward
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
    """Import ``package.module:callable`` or ``path/to/file.py:callable`` (dotted attributes allowed after the
    colon). Modules are looked up in the current folder first, then on ``sys.path`` (installed packages)."""
    module_name, _, attr_path = target.rpartition(":")
    if not module_name or not attr_path:
        raise UserError(
            f"env spec {target!r} is not 'package.module:callable' or 'path/to/file.py:callable'; use a registered "
            "id or one of those forms"
        )
    if os.getcwd() not in sys.path:  # like uvicorn: a my_env.py in the current folder is found
        sys.path.insert(0, os.getcwd())
    try:
        from_file = module_name.endswith(".py")
        obj: Any = _module_from_file(module_name) if from_file else importlib.import_module(module_name)
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


def declared_cooperative(env_id: str | None, env: Any | None) -> bool | None:
    """Whether the agents share one goal, as the env declares it (``metadata["cooperative"]``, also on the env a
    wrapper holds) or its built-in registry entry does (also for a ``module:callable`` spec of that entry's
    module, e.g. ``mpe2.simple_spread_v3:parallel_env``); None where nothing says (evaluation then decides)."""
    for obj in () if env is None else (env, getattr(env, "unwrapped", None), getattr(env, "env", None)):
        meta = getattr(obj, "metadata", None)
        if isinstance(meta, Mapping) and "cooperative" in meta:
            return bool(meta["cooperative"])
    module = (env_id or "").rpartition(":")[0]
    for entry in BUILTIN.values():
        if env_id is not None and (env_id == entry.id or module == entry.target.rpartition(":")[0]):
            return entry.cooperative
    return None


def spec_file(target: str) -> tuple[Path, str] | None:
    """The file and callable of a ``path/to/file.py:callable`` spec; None for an id or a module spec."""
    module, _, attr = target.rpartition(":")
    return (Path(module).expanduser(), attr) if module.endswith(".py") and attr else None


def anchored(target: str, base: Path | None = None, *, run_folder: bool = False) -> str:
    """A file spec with an absolute path, so that it means the same from any working folder. A relative path is
    read against the working folder, then ``base`` (the folder of the TOML that names it); in a run folder's
    config.toml (``run_folder``) against the run folder first, where ``stored`` put it, and against the working
    folder only as a fallback for runs written before, with a warning. A file found nowhere is left as given
    (``resolve`` then says it is missing)."""
    found = spec_file(target)
    if found is None:
        return target
    file, attr = found
    roots = [Path.cwd(), *([Path(base)] if base is not None else [])]
    for root in roots[::-1] if run_folder else roots:
        if (root / file).is_file():  # an absolute ``file`` ignores ``root``
            if run_folder and root == Path.cwd() and not file.is_absolute():
                used = (root / file).resolve()
                warn_user(
                    f"env file {file} is not where the run folder {base} says; using {used} from the working folder"
                )
            return f"{(root / file).resolve()}:{attr}"
    return target


def stored(target: str, folder: Path) -> str:
    """A file spec as ``folder``'s config.toml keeps it: relative to ``folder``, so the run works from any working
    folder and still finds the file after the run folder and the file are moved together."""
    found = spec_file(target)
    if found is None or not found[0].is_absolute():
        return target
    try:
        return f"{Path(os.path.relpath(found[0], Path(folder).resolve())).as_posix()}:{found[1]}"
    except ValueError:  # another drive (Windows): only the absolute path can name it
        return target


def _from_spec(target: str, **kwargs: Any) -> Any:
    """Build the env of a file spec in whichever process calls it (picklable: a spawned worker re-imports the file)."""
    return load_callable(target)(**kwargs)


def _module_from_file(path: str) -> Any:
    """A module loaded from a ``.py`` file (a plug-in env that is not a package), registered under a name made
    from its resolved path so env worker processes that load it again find the same module."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ImportError(f"no file {file}")
    name = "marl_distill_user_env_" + hashlib.sha1(str(file).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve(env: str, kwargs: Mapping[str, Any] | None = None) -> Callable[[], Any]:
    """Turn an env id or spec plus user kwargs into a zero-argument factory."""
    envs = all_envs()
    if env in envs:
        entry = envs[env]
        merged = {**entry.kwargs, **(kwargs or {})}
        if entry.cycled:
            return partial(cycled, load_callable(entry.target), **merged)
        return partial(load_callable(entry.target), **merged)
    if ":" in env:
        made = load_callable(env)  # fails here, in one line, if the spec is wrong
        module, _, name = env.rpartition(":")
        if module.endswith(".py"):  # env worker processes load the file again, by its absolute path
            return partial(_from_spec, f"{Path(module).resolve()}:{name}", **(kwargs or {}))
        return partial(made, **(kwargs or {}))
    close = difflib.get_close_matches(env, envs, n=1)
    if close:
        raise UserError(
            f"unknown environment {env!r}; did you mean {close[0]!r}? (`marl-distill envs` lists the ids; a "
            "'package.module:callable' spec works too)"
        )
    known = ", ".join(envs) or "none"
    raise UserError(f"unknown environment {env!r}; use one of [{known}] or a 'package.module:callable' spec")
