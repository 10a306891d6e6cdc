"""N plain SB3 learners on one shared env, every joint step feeding every learner.

SB3 is single-agent: ``model.learn()`` owns its loop and calls ``env.step``. We give each learner its own
``AgentVecEnv``, a VecEnv that shows one agent's slice of a shared ``JointVecEnv``, and run each ``learn()`` in
its own thread. A token passes between the threads in a fixed order, so exactly one learner runs at a time:
each deposits its actions and hands the token on; the last one steps the joint env. Nothing is parallel (the
GIL would forbid it anyway), so runs are deterministic for a seed, and every learner stays a plain SB3 model
with its own logger, callbacks, truncation bootstrap and ``save``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from marl_distill.multiagent import JointStep, JointVecEnv


class LearnerFailed(RuntimeError):
    """Raised in the other learners' threads when one learner's thread failed."""


class Lockstep:
    """Token ring over the learners of one ``JointVecEnv``."""

    def __init__(
        self,
        venv: JointVecEnv,
        agents: Sequence[str],
        seeds: Sequence[int | None],
        on_step: Callable[[JointStep], None] | None = None,
    ) -> None:
        self.venv = venv
        self.agents = list(agents)
        self._seeds = list(seeds)
        self._on_step = on_step
        self._cond = threading.Condition()
        self._turn = 0
        self._pending: dict[str, tuple[str, Any]] = {}
        self._finished: set[str] = set()
        self._error: BaseException | None = None
        self.obs: dict[str, np.ndarray] = {}
        self.last: JointStep | None = None
        self.infos: dict[str, list[dict[str, Any]]] = {}
        self.joint_steps = 0
        self.episodes = 0
        self._ep_returns = {a: np.zeros(venv.n_envs) for a in self.agents}
        self._ep_lengths = np.zeros(venv.n_envs, dtype=int)
        self._start = time.time()

    # --- token handling -------------------------------------------------------------------------------------
    def acquire(self, index: int) -> None:
        """Block until it is learner ``index``'s turn (or another learner failed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._turn == index or self._error is not None)
            if self._error is not None:
                raise LearnerFailed("another learner failed") from self._error

    def _pass_token(self, index: int) -> None:
        n = len(self.agents)
        nxt = (index + 1) % n
        for _ in range(n):
            if self.agents[nxt] not in self._finished:
                break
            nxt = (nxt + 1) % n
        self._turn = nxt
        self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = exc
            self._cond.notify_all()

    def finish(self, index: int) -> None:
        """Learner ``index`` returned from ``learn``; the others must not wait for it."""
        with self._cond:
            self._finished.add(self.agents[index])
            if self._pending:
                self.fail(RuntimeError("learners fell out of lockstep: one finished while others still step"))
            elif len(self._finished) < len(self.agents):
                self._pass_token(index)

    # --- the calls the proxies make ----------------------------------------------------------------------------
    def call(self, index: int, kind: str, payload: Any = None) -> None:
        """Deposit a reset or step request for learner ``index``, pass the token, and wait to get it back."""
        agent = self.agents[index]
        with self._cond:
            if self._finished:
                exc = RuntimeError("learners fell out of lockstep: one stepped after another finished")
                self.fail(exc)
                raise exc
            self._pending[agent] = (kind, payload)
            if len(self._pending) == len(self.agents):
                self._advance()
            self._pass_token(index)
        self.acquire(index)

    def _advance(self) -> None:
        kinds = {kind for kind, _ in self._pending.values()}
        if len(kinds) != 1:
            raise RuntimeError(f"learners fell out of lockstep: got {sorted(kinds)} in one joint step")
        (kind,) = kinds
        if kind == "reset":
            self.obs = self.venv.reset(self._seeds)
            self._seeds = [None] * self.venv.n_envs
        else:
            actions = {a: np.asarray(p).reshape(self.venv.n_envs) for a, (_, p) in self._pending.items()}
            self.last = self.venv.step(actions)
            self.obs = self.last.obs
            self.joint_steps += 1
            self._track_episodes(self.last)
            if self._on_step is not None:
                self._on_step(self.last)
        self._pending.clear()

    def _track_episodes(self, step: JointStep) -> None:
        """Build each learner's SB3 infos: terminal observation, truncation flag, Monitor-style episode."""
        self._ep_lengths += 1
        self.infos = {a: [{} for _ in range(self.venv.n_envs)] for a in self.agents}
        for a in self.agents:
            self._ep_returns[a] += step.rewards[a]
        for i in np.flatnonzero(step.done):
            self.episodes += 1
            for a in self.agents:
                info = self.infos[a][i]
                info["terminal_observation"] = step.final_obs[a][i].copy()
                info["TimeLimit.truncated"] = bool(step.truncated[a][i]) and not bool(step.terminated[a][i])
                info["episode"] = {
                    "r": float(self._ep_returns[a][i]),
                    "l": int(self._ep_lengths[i]),
                    "t": round(time.time() - self._start, 6),
                }
                self._ep_returns[a][i] = 0.0
            self._ep_lengths[i] = 0


class AgentVecEnv(VecEnv):
    """One agent's view of the shared joint env, in SB3's VecEnv API."""

    def __init__(self, lockstep: Lockstep, index: int) -> None:
        self.lockstep = lockstep
        self.index = index
        self.agent = lockstep.agents[index]
        spec = lockstep.venv.spec
        self._actions: np.ndarray | None = None
        super().__init__(lockstep.venv.n_envs, spec.observation_spaces[self.agent], spec.action_spaces[self.agent])

    def reset(self) -> np.ndarray:
        self.lockstep.call(self.index, "reset")
        return self.lockstep.obs[self.agent].copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        self.lockstep.call(self.index, "step", self._actions)
        step = self.lockstep.last
        assert step is not None
        a = self.agent
        return step.obs[a].copy(), step.rewards[a].copy(), step.done.copy(), self.lockstep.infos[a]

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        n = len(self._get_indices(indices))
        value = getattr(self, attr_name, None) if attr_name != "render_mode" else None
        return [value] * n

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list:
        raise NotImplementedError(f"AgentVecEnv does not forward {method_name!r} to the shared env")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
