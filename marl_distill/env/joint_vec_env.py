"""One view over PettingZoo envs that the rest of the lab uses: agents, spaces, seeding, truncation.

``JointVecEnv`` steps several copies of a ParallelEnv together and hands back per-agent arrays with a leading
copy axis, so teachers, students and evaluation all batch their forward passes the same way. Episode ends keep
the difference between *terminated* (the MDP ended: no bootstrap) and *truncated* (a time limit cut it: the
learner bootstraps from the final observation). An agent that leaves while others play on ends *its* episode
then (``JointStep.left``) and is absent (``present`` False) until its copy starts a new episode.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils.env import AECEnv, ParallelEnv

from marl_distill.env.turn_based import TurnBasedParallel
from marl_distill.errors import UserError
from marl_distill.policy.observations import encoder
from marl_distill.policy.spec import EnvSpec

_LIBRARY = re.compile(r"[/\\](numpy|torch|gymnasium)[/\\]")
"""Frames of the libraries an env calls into: an error raised inside them is named at the env's own line."""


def call_factory(factory: Callable[[], Any]) -> Any:
    """One env from its factory; arguments it rejects (an unknown name, a value out of range) are the user's, also
    where it rejects them by ``assert`` (mpe2 does, e.g. for ``local_ratio``). The line that raised is named, so a
    bug inside the env's constructor is not mistaken for a bad argument."""
    try:
        return factory()
    except (TypeError, ValueError, AssertionError) as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = next((f for f in reversed(frames) if not _LIBRARY.search(f.filename)), frames[-1])
        said = str(exc) or (where.line or "").strip() or type(exc).__name__
        keyword = "keyword argument" in said  # an unknown or missing name: the caller's line, not a bug there
        raise UserError(
            f"the env factory rejected its arguments ({type(exc).__name__} at {Path(where.filename).name}:"
            f"{where.lineno}: {said}); fix --env-kwargs / env.kwargs (for another env, replace the whole table: "
            "--set 'env.kwargs={...}')" + ("" if keyword else ", or the env itself if that line is a bug in it")
        ) from None


def make_parallel(factory: Callable[[], Any]) -> ParallelEnv:
    """Build one env and check it is a ParallelEnv we can drive."""
    env = call_factory(factory)
    if isinstance(env, AECEnv):
        try:
            return TurnBasedParallel(env)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if not isinstance(env, ParallelEnv) and not hasattr(env, "possible_agents"):
        raise UserError(f"the env factory returned {type(env).__name__}, not a PettingZoo ParallelEnv")
    return env


def action_offsets(spec: EnvSpec) -> dict[str, int]:
    """The ``start`` of each agent's Discrete actions where it is not 0: learners and students index actions from 0,
    and only the env sees its declared ``start``."""
    return {
        a: int(sp.start)
        for a, sp in spec.action_spaces.items()
        if isinstance(sp, gym.spaces.Discrete) and int(sp.start) != 0
    }


@dataclass
class JointStep:
    """What one joint step of all copies returns; every array has the copy axis first."""

    obs: dict[str, np.ndarray]
    """Next observation per agent (already the reset observation where an episode ended and auto-reset is on)."""
    rewards: dict[str, np.ndarray]
    terminated: dict[str, np.ndarray]
    truncated: dict[str, np.ndarray]
    done: np.ndarray
    """True where the copy's episode ended at this step."""
    final_obs: dict[str, np.ndarray]
    """Observation at the agent's episode end, valid where ``left``; what a truncated learner bootstraps from."""
    masks: dict[str, np.ndarray]
    """Legal actions (bool, copy x actions) that go with ``obs``, for the agents in ``EnvSpec.masked``."""
    acting: dict[str, np.ndarray]
    """Per agent and copy: does the agent act on ``obs`` (False while waiting for its turn or after it left)?"""
    left: dict[str, np.ndarray]
    """Per agent and copy: the agent's own episode ended at this step (it left, or the copy's episode ended
    with it still there); its ``terminated`` / ``truncated`` say how."""
    present: dict[str, np.ndarray]
    """Per agent and copy: is the agent in the episode that ``obs`` belongs to? A waiting agent is present; one
    that left (or has not joined) is not, and its ``obs`` entry is a stale placeholder no learner may train on."""


class JointVecEnv:
    """``n_envs`` copies of a ParallelEnv stepped in lockstep.

    With ``autoreset`` a finished copy starts its next episode at once (training). Without it a finished copy
    stays finished and is skipped, so a batch of episodes with fixed seeds runs to its end (evaluation).
    """

    def __init__(self, factory: Callable[[], Any], n_envs: int, *, autoreset: bool = True) -> None:
        if n_envs < 1:
            raise UserError(f"n_envs must be >= 1, got {n_envs}")
        self.envs = [make_parallel(factory) for _ in range(n_envs)]
        self.spec = EnvSpec.of(self.envs[0])
        self.agents = self.spec.agents
        self.n_envs = n_envs
        self.autoreset = autoreset
        self.finished = np.zeros(n_envs, dtype=bool)
        self._obs = {a: self._zeros_obs(a) for a in self.agents}
        self._masks = {a: np.ones((n_envs, self.spec.n_actions(a)), dtype=bool) for a in self.spec.masked}
        self._acting = {a: np.ones(n_envs, dtype=bool) for a in self.agents}
        self._present = {a: np.ones(n_envs, dtype=bool) for a in self.agents}
        self._action_offset = action_offsets(self.spec)
        raw = {a: self.envs[0].observation_space(a) for a in self.agents}
        self._encode = {a: encoder(raw[a]["observation"] if a in self._masks else raw[a]) for a in self.agents}

    @property
    def acting(self) -> dict[str, np.ndarray]:
        """Per agent: which copies it acts in now (not waiting for its turn, not gone from the episode)."""
        return {a: m.copy() for a, m in self._acting.items()}

    @property
    def present(self) -> dict[str, np.ndarray]:
        """Per agent: which copies' current episode it is in (waiting for its turn counts; having left does not)."""
        return {a: m.copy() for a, m in self._present.items()}

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """Legal actions per masked agent for the current observations (copy x actions)."""
        return {a: m.copy() for a, m in self._masks.items()}

    def _zeros_obs(self, agent: str) -> np.ndarray:
        space = self.spec.observation_spaces[agent]
        return np.zeros((self.n_envs, *space.shape), dtype=space.dtype)

    def _store(self, i: int, obs: Mapping[str, Any]) -> None:
        """Copy ``i``'s observations (encoded once) and legal actions; absent agents keep theirs."""
        for agent in self.agents:
            if agent in obs:
                if agent in self._masks:
                    self._obs[agent][i] = self._encode[agent](obs[agent]["observation"])
                    self._masks[agent][i] = np.asarray(obs[agent]["action_mask"]).astype(bool)
                else:
                    self._obs[agent][i] = self._encode[agent](obs[agent])

    def reset(self, seeds: Sequence[int | None]) -> dict[str, np.ndarray]:
        """Reset every copy; copy ``i`` uses ``seeds[i]`` (None keeps the env's own RNG going)."""
        if len(seeds) != self.n_envs:
            raise ValueError(f"need {self.n_envs} seeds, got {len(seeds)}")
        self.finished[:] = False
        for i, (env, seed) in enumerate(zip(self.envs, seeds)):
            self._start(i, *env.reset(seed=seed))
        return {a: o.copy() for a, o in self._obs.items()}

    def _start(self, i: int, obs: Mapping[str, Any], infos: Mapping[str, Any]) -> None:
        """A fresh episode in copy ``i``: agents absent from it keep a zero observation and do not act."""
        for a in self.agents:
            if a not in obs:
                self._obs[a][i] = 0
        self._store(i, obs)
        self._mark_acting(i, self.envs[i], infos)

    def _mark_acting(self, i: int, env: ParallelEnv, infos: Mapping[str, Any]) -> None:
        live = set(env.agents)
        for a in self.agents:
            self._present[a][i] = a in live
            self._acting[a][i] = a in live and bool((infos.get(a) or {}).get("acting", True))

    def step(self, actions: Mapping[str, np.ndarray]) -> JointStep:
        """Apply ``actions[agent][i]`` (Discrete actions counted from 0) in copy ``i`` for every unfinished copy."""
        n = self.n_envs
        rewards = {a: np.zeros(n, dtype=np.float32) for a in self.agents}
        terminated = {a: np.zeros(n, dtype=bool) for a in self.agents}
        truncated = {a: np.zeros(n, dtype=bool) for a in self.agents}
        left = {a: np.zeros(n, dtype=bool) for a in self.agents}
        final_obs = {a: self._obs[a].copy() for a in self.agents}
        done = np.zeros(n, dtype=bool)
        for i, env in enumerate(self.envs):
            if self.finished[i]:
                continue
            before = list(env.agents)
            obs, rew, term, trunc, infos = env.step({a: actions[a][i] + self._action_offset.get(a, 0) for a in before})
            for a in self.agents:
                rewards[a][i] = rew.get(a, 0.0)
                terminated[a][i] = bool(term.get(a, False))
                truncated[a][i] = bool(trunc.get(a, False))
            self._store(i, obs)
            self._mark_acting(i, env, infos)
            for a in before:  # its own episode ended: it keeps this last observation and stops acting
                if not self._present[a][i]:
                    left[a][i] = True
                    final_obs[a][i] = self._obs[a][i]
            if env.agents:
                continue
            done[i] = True
            if self.autoreset:
                self._start(i, *env.reset())
            else:
                self.finished[i] = True
        obs = {a: o.copy() for a, o in self._obs.items()}
        return JointStep(
            obs, rewards, terminated, truncated, done, final_obs, self.masks, self.acting, left, self.present
        )

    def call(self, what: str, name: str, args: tuple, kwargs: dict, indices: Sequence[int]) -> list[Any]:
        """SB3's get_attr / set_attr / env_method on the copies ``indices`` (``what``: get, set or method)."""
        out = []
        for i in indices:
            env = self.envs[i]
            if what == "get":
                out.append(getattr(env, name))
            elif what == "set":
                out.append(setattr(env, name, args[0]))
            else:
                out.append(getattr(env, name)(*args, **kwargs))
        return out

    def close(self) -> None:
        for env in self.envs:
            env.close()
