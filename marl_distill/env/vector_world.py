"""Worlds that step many copies in one call, and the lab's ``JointVecEnv`` over them.

A PettingZoo ParallelEnv whose object has a ``batched(n)`` method hands the lab a *vector world* of ``n`` copies:

- ``possible_agents``, ``observation_space(agent)`` (a flat Box), ``action_space(agent)`` (Discrete or 1-D Box)
  as the ParallelEnv declares them;
- ``reset(seeds, copies=None)``: new episodes in ``copies`` (all by default), ``seeds[k]`` for ``copies[k]``
  (None carries on that copy's own random stream, as a ParallelEnv's ``reset()`` does); returns every copy's
  observations, ``{agent: (n, *shape)}``;
- ``step(actions)``: ``{agent: (n, ...)}`` -> observations, rewards ``{agent: (n,)}``, terminated ``(n,)`` and
  truncated ``(n,)``. Every agent of a copy acts at every step and its episode ends for all its agents at once.

The lab then steps all copies with one call per joint step (``VectorJointVecEnv``) where it would step each copy's
env in a Python loop (``JointVecEnv``): same seeds per copy, same auto-reset, same ``JointStep``. The built-in
replicas of mpe2's tasks (``simple_spread_fast`` ...) are vector worlds.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from marl_distill.env.joint_vec_env import JointStep, JointVecEnv, action_offsets, make_parallel
from marl_distill.errors import UserError
from marl_distill.policy.observations import encoder
from marl_distill.policy.spec import EnvSpec


def vector_face(env: Any) -> Callable[[int], Any] | None:
    """The env's own ``batched(n)`` (its vector world of n copies), or None where it has none. A wrapper that only
    forwards attributes to an env with one does not count: stepping the inner world would skip the wrapper."""
    if inspect.getattr_static(env, "batched", None) is None:
        return None
    batched = env.batched
    return batched if callable(batched) else None


def open_joint_vec_env(factory: Callable[[], Any], n_envs: int, *, autoreset: bool = True, workers: int = 1) -> Any:
    """The joint env the lab steps: one vector world where the env has one (``workers`` then do not help: one numpy
    call steps every copy), else ``n_envs`` ParallelEnvs, spread over ``workers`` processes when more than one."""
    env = make_parallel(factory)
    if vector_face(env) is not None:
        return VectorJointVecEnv(env, n_envs, autoreset=autoreset)
    env.close()
    if workers > 1:
        from marl_distill.env.subproc_joint_vec_env import SubprocJointVecEnv

        return SubprocJointVecEnv(factory, n_envs, workers, autoreset=autoreset)
    return JointVecEnv(factory, n_envs, autoreset=autoreset)


class VectorJointVecEnv:
    """``JointVecEnv``'s interface over one vector world: every copy steps in one call.

    ``env`` is the ParallelEnv whose ``batched(n_envs)`` builds the world; it stays open for SB3's attribute
    queries (``call``)."""

    def __init__(self, env: Any, n_envs: int, *, autoreset: bool = True) -> None:
        if n_envs < 1:
            raise UserError(f"n_envs must be >= 1, got {n_envs}")
        self.face = env
        self.spec = EnvSpec.of(env)
        self.agents = self.spec.agents
        for agent in self.agents:
            space = env.observation_space(agent)
            if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
                raise UserError(f"the vector world's agent {agent!r} observes {space}; a vector world needs flat Boxes")
        self._encode = {a: encoder(env.observation_space(a)) for a in self.agents}  # elementwise for a Box
        self._action_offset = action_offsets(self.spec)
        self.world = vector_face(env)(n_envs)  # type: ignore[misc]
        self.n_envs = n_envs
        self.autoreset = autoreset
        self.finished = np.zeros(n_envs, dtype=bool)
        self._obs: dict[str, np.ndarray] = {}

    @property
    def acting(self) -> dict[str, np.ndarray]:
        """Every agent acts in every unfinished copy (a vector world has no turns and no departures)."""
        return {a: ~self.finished for a in self.agents}

    @property
    def present(self) -> dict[str, np.ndarray]:
        """Every agent is in every unfinished copy's episode."""
        return self.acting

    @property
    def masks(self) -> dict[str, np.ndarray]:
        return {}

    def _encoded(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Encoded copies: the world may hand out (and later change) its own buffers."""
        return {a: np.array(self._encode[a](obs[a]), dtype=np.float32) for a in self.agents}

    def reset(self, seeds: Sequence[int | None]) -> dict[str, np.ndarray]:
        """Reset every copy; copy ``i`` uses ``seeds[i]`` (None keeps its own random stream going)."""
        if len(seeds) != self.n_envs:
            raise ValueError(f"need {self.n_envs} seeds, got {len(seeds)}")
        self.finished[:] = False
        self._obs = self._encoded(self.world.reset(list(seeds)))
        return {a: o.copy() for a, o in self._obs.items()}

    def step(self, actions: Mapping[str, np.ndarray]) -> JointStep:
        """Apply ``actions[agent][i]`` in copy ``i``; finished copies (no auto-reset) keep their last observation."""
        sent = {a: np.asarray(actions[a]) + self._action_offset.get(a, 0) for a in self.agents}
        obs, rewards, terminated, truncated = self.world.step(sent)
        obs = self._encoded(obs)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        ended = (terminated | truncated) & ~self.finished
        idle = self.finished.copy()
        term = {a: terminated & ended for a in self.agents}
        trunc = {a: truncated & ended for a in self.agents}
        rew = {a: np.where(idle, 0.0, rewards[a]).astype(np.float32) for a in self.agents}
        for a in self.agents:
            obs[a][idle] = self._obs[a][idle]
        final_obs = {a: o.copy() for a, o in obs.items()}
        if ended.any():
            if self.autoreset:
                fresh = self._encoded(self.world.reset([None] * int(ended.sum()), copies=np.flatnonzero(ended)))
                for a in self.agents:
                    obs[a][ended] = fresh[a][ended]
            else:
                self.finished |= ended
        self._obs = obs
        left = {a: ended.copy() for a in self.agents}
        out = {a: o.copy() for a, o in obs.items()}
        return JointStep(out, rew, term, trunc, ended, final_obs, {}, self.acting, left, self.present)

    def call(self, what: str, name: str, args: tuple, kwargs: dict, indices: Sequence[int]) -> list[Any]:
        """SB3's get_attr / set_attr / env_method, answered by the ParallelEnv face for every copy in ``indices``."""
        if what == "get":
            return [getattr(self.face, name) for _ in indices]
        if what == "set":
            return [setattr(self.face, name, args[0]) for _ in indices]
        return [getattr(self.face, name)(*args, **kwargs) for _ in indices]

    def close(self) -> None:
        self.face.close()
