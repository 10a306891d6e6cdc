"""mpe2's simple_spread, simple_speaker_listener and simple_reference as batched numpy: many copies, one call.

Each task is mpe2's own (``mpe2`` 1.1): the same observations, rewards and ``state()`` (every agent's observation
side by side), over mpe2's actions, contact forces, integration and reset draws (``mpe_batch``).
A copy reset with seed s starts where ``mpe2.<task>.parallel_env().reset(seed=s)`` starts and then steps as it
does: ``tests/env/test_fast_mpe.py`` checks observations, rewards, terminations, truncations and ``state()`` to
1e-5 against mpe2 over hundreds of random episodes per task and action type.

Two faces over one implementation:
- ``SpreadBatch`` / ``SpeakerListenerBatch`` / ``ReferenceBatch``: the vector face, per-agent arrays with a
  leading copy axis (``marl_distill.env.vector_world`` says what the lab asks of it), every copy stepped by one
  numpy call;
- ``FastMPEEnv``: a PettingZoo ParallelEnv of one copy, registered as ``simple_spread_fast``,
  ``simple_speaker_listener_fast`` and ``simple_reference_fast``; its ``batched(n)`` hands the lab the vector face.

What mpe2 has and these do not: rendering, ``benchmark_data``, simple_spread's ``curriculum`` (refused, not
ignored), motor and communication noise (none of the three tasks sets any).
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl_distill_envs.mpe_batch import MPEBatch, blend


class SpreadBatch(MPEBatch):
    """simple_spread: N agents cover N landmarks, paid the team's coverage and charged for each agent they touch."""

    name = "simple_spread_fast"
    collide = True
    dim_c = 2
    capture_radius = 0.1

    def __init__(
        self,
        n_copies: int,
        N: int = 3,
        local_ratio: float = 0.5,
        max_cycles: int = 25,
        continuous_actions: bool = False,
        terminate_on_success: bool = False,
        num_agent_neighbors: int | None = None,
        num_landmark_neighbors: int | None = None,
    ) -> None:
        if not 0.0 <= local_ratio <= 1.0:
            raise ValueError(f"local_ratio is a proportion in [0, 1], got {local_ratio}")
        for key, k in (
            ("num_agent_neighbors", num_agent_neighbors),
            ("num_landmark_neighbors", num_landmark_neighbors),
        ):
            if k is not None and not (isinstance(k, int) and k > 0):
                raise ValueError(f"{key} must be a positive integer or None, got {k!r}")
        if N < 1:
            raise ValueError(f"N must be >= 1, got {N}")
        self.agents = tuple(f"agent_{i}" for i in range(N))
        self.movable, self.silent, self.size = (True,) * N, (True,) * N, (0.15,) * N
        self.n_landmarks, self.local_ratio, self.terminate_on_success = N, local_ratio, terminate_on_success
        self.agent_neighbors, self.landmark_neighbors = num_agent_neighbors, num_landmark_neighbors
        self._others = np.array([[j for j in range(N) if j != i] for i in range(N)], dtype=int).reshape(N, N - 1)
        super().__init__(n_copies, max_cycles, continuous_actions)

    def observe(self) -> dict[str, np.ndarray]:
        b, n = self.n_copies, len(self.agents)
        geo = self._geo()
        to_landmarks, to_agents = geo["to_landmarks"], geo["to_agents"]
        others = np.take_along_axis(to_agents, self._others[None, :, :, None], axis=2)  # (b, n, n-1, 2)
        comm = self.comm[:, self._others]  # (b, n, n-1, dim_c)
        if self.landmark_neighbors is not None:
            to_landmarks = _nearest(to_landmarks, self.landmark_neighbors)
        if self.agent_neighbors is not None:
            order = _nearest_order(others, self.agent_neighbors)
            others = _pad(np.take_along_axis(others, order[..., None], axis=2), self.agent_neighbors)
            comm = _pad(np.take_along_axis(comm, order[..., None], axis=2), self.agent_neighbors)
        parts = [self.vel, self.pos, to_landmarks.reshape(b, n, -1), others.reshape(b, n, -1), comm.reshape(b, n, -1)]
        obs = np.concatenate(parts, axis=-1).astype(np.float32)
        return {a: obs[:, i] for i, a in enumerate(self.agents)}

    def _rewards(self) -> np.ndarray:
        coverage = -self._nearest_agent().sum(axis=-1)  # (b,)
        touching = (self._geo()["agent_dist"] < self._dist_min) & ~np.eye(len(self.agents), dtype=bool)
        return blend(-touching.sum(axis=-1).astype(np.float64), coverage, self.local_ratio)

    def _terminal(self) -> np.ndarray:
        if not self.terminate_on_success:
            return np.zeros(self.n_copies, dtype=bool)
        return (self._nearest_agent() < self.capture_radius).all(axis=-1)

    def _nearest_agent(self) -> np.ndarray:
        """Each landmark's distance to its nearest agent (copies, landmarks)."""
        return self._geo()["landmark_dist"].min(axis=1)


class SpeakerListenerBatch(MPEBatch):
    """simple_speaker_listener: a speaker who cannot move names the goal landmark; a listener who cannot speak
    goes there. Both are paid minus the listener's squared distance to it."""

    name = "simple_speaker_listener_fast"
    agents = ("speaker_0", "listener_0")
    movable, silent, size = (False, True), (False, True), (0.075, 0.075)
    dim_c, n_landmarks = 3, 3
    colors = np.array([[0.65, 0.15, 0.15], [0.15, 0.65, 0.15], [0.15, 0.15, 0.65]])

    def __init__(self, n_copies: int, max_cycles: int = 25, continuous_actions: bool = False) -> None:
        self.goal = np.zeros(n_copies, dtype=int)
        super().__init__(n_copies, max_cycles, continuous_actions)

    def _draw(self, i: int, rng: np.random.Generator) -> None:
        self.goal[i] = int(rng.integers(self.n_landmarks))
        super()._draw(i, rng)

    def observe(self) -> dict[str, np.ndarray]:
        to_landmarks = self._geo()["to_landmarks"][:, 1].reshape(self.n_copies, -1)
        listener = np.concatenate([self.vel[:, 1], to_landmarks, self.comm[:, 0]], axis=-1)
        return {"speaker_0": self.colors[self.goal].astype(np.float32), "listener_0": listener.astype(np.float32)}

    def _rewards(self) -> np.ndarray:
        goal = self.landmarks[np.arange(self.n_copies), self.goal]
        dist2 = np.sum(np.square(self.pos[:, 1] - goal), axis=-1)
        return np.repeat(-dist2[:, None], 2, axis=1)


class ReferenceBatch(MPEBatch):
    """simple_reference: two agents that move and speak; each knows the landmark the other must reach."""

    name = "simple_reference_fast"
    agents = ("agent_0", "agent_1")
    movable, silent, size = (True, True), (False, False), (0.05, 0.05)
    dim_c, n_landmarks = 10, 3
    colors = np.array([[0.75, 0.25, 0.25], [0.25, 0.75, 0.25], [0.25, 0.25, 0.75]])

    def __init__(
        self, n_copies: int, local_ratio: float = 0.5, max_cycles: int = 25, continuous_actions: bool = False
    ) -> None:
        if not 0.0 <= local_ratio <= 1.0:
            raise ValueError(f"local_ratio is a proportion in [0, 1], got {local_ratio}")
        self.local_ratio = local_ratio
        self.goal = np.zeros((n_copies, 2), dtype=int)
        """Per copy, the landmark each agent wants the *other* agent at."""
        super().__init__(n_copies, max_cycles, continuous_actions)

    def _draw(self, i: int, rng: np.random.Generator) -> None:
        self.goal[i] = [int(rng.integers(self.n_landmarks)), int(rng.integers(self.n_landmarks))]
        super()._draw(i, rng)

    def observe(self) -> dict[str, np.ndarray]:
        rel = self._geo()["to_landmarks"].reshape(self.n_copies, 2, -1)
        obs = np.concatenate([self.vel, rel, self.colors[self.goal], self.comm[:, ::-1]], axis=-1).astype(np.float32)
        return {a: obs[:, i] for i, a in enumerate(self.agents)}

    def _rewards(self) -> np.ndarray:
        rows = np.arange(self.n_copies)[:, None]
        other = self.pos[:, ::-1]  # agent i is paid for where the other agent is
        local = -np.sqrt(np.sum(np.square(other - self.landmarks[rows, self.goal]), axis=-1))  # (b, 2)
        return blend(local, local.mean(axis=1), self.local_ratio)


def _nearest_order(rel: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest along axis 2 of relative positions (b, n, m, 2), nearest first."""
    return np.argsort(np.linalg.norm(rel, axis=-1), axis=2, kind="stable")[:, :, :k]


def _pad(x: np.ndarray, k: int) -> np.ndarray:
    """Zero slots appended along axis 2 up to ``k``."""
    short = k - x.shape[2]
    return x if short <= 0 else np.concatenate([x, np.zeros((*x.shape[:2], short, x.shape[3]))], axis=2)


def _nearest(rel: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest relative positions, nearest first, zero-padded to ``k`` slots (mpe2's partial view)."""
    return _pad(np.take_along_axis(rel, _nearest_order(rel, k)[..., None], axis=2), k)


def _check_kwargs(batch: type[MPEBatch], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Names and types of the task's kwargs checked in the task's own words (its batch class is not the user's),
    the types read from the defaults: a flag must be true or false, a count an integer, a ratio a number. What mpe2
    itself accepts passes, normalized: a flag given as 0 or 1, ``max_cycles`` as a whole float (``25.0``)."""
    params = list(inspect.signature(batch.__init__).parameters.values())[2:]  # after self and n_copies
    defaults = {p.name: p.default for p in params}
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise TypeError(f"{batch.name} takes no {', '.join(map(repr, unknown))}; its arguments: {', '.join(defaults)}")
    out = {}
    for key, value in kwargs.items():
        default = defaults[key]
        flag = isinstance(value, (bool, np.bool_))
        if isinstance(default, bool):
            ok, want = flag or (isinstance(value, numbers.Integral) and value in (0, 1)), "true or false"
            value = bool(value) if ok else value
        elif isinstance(default, float):
            ok, want = isinstance(value, numbers.Real) and not flag, "a number"
        else:  # an int, or None for "all"
            whole = isinstance(value, numbers.Integral) and not flag
            whole |= key == "max_cycles" and isinstance(value, float) and value.is_integer()  # mpe2 compares it
            ok = (value is None and default is None) or whole
            want = "an integer" + (" or None" if default is None else "")
            value = int(value) if whole else value
        if not ok:
            raise TypeError(f"{batch.name}: {key} must be {want}, got {value!r}")
        out[key] = value
    return out


class FastMPEEnv(ParallelEnv):
    """One copy of a batched mpe2 task through the PettingZoo parallel API; ``batched(n)`` gives n of them."""

    render_mode = None

    def __init__(self, batch: type[MPEBatch], **kwargs: Any) -> None:
        kwargs.pop("dynamic_rescaling", None)  # a rendering setting
        render_mode = kwargs.pop("render_mode", None)
        if render_mode is not None:
            raise ValueError(f"{batch.name} does not render (render_mode={render_mode!r}); use mpe2's task to watch it")
        if kwargs.pop("benchmark_data", False):
            raise ValueError(f"{batch.name} has no benchmark_data; use mpe2's task for it")
        if kwargs.pop("curriculum", False):
            raise ValueError(f"{batch.name} has no curriculum (the lab never advances one); use mpe2's simple_spread")
        kwargs = _check_kwargs(batch, kwargs)
        self._batch, self._kwargs = batch, kwargs
        self.world = batch(1, **kwargs)
        self.possible_agents = list(self.world.possible_agents)
        self.agents: list[str] = []
        self.state_space = self.world.state_space
        self.metadata = {"name": batch.name, "render_modes": [], "is_parallelizable": True, "cooperative": True}

    def batched(self, n_copies: int) -> MPEBatch:
        """The vector face: ``n_copies`` copies of this task, stepped by one numpy call."""
        return self._batch(n_copies, **self._kwargs)

    def observation_space(self, agent: str) -> spaces.Box:
        return self.world.observation_space(agent)

    def action_space(self, agent: str) -> spaces.Space:
        return self.world.action_space(agent)

    def state(self) -> np.ndarray:
        return self.world.state()[0]

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs = self.world.reset([seed])
        self.agents = list(self.possible_agents)
        return {a: obs[a][0] for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:  # stepped after the episode ended, as mpe2 allows: nothing happens
            return {}, {}, {}, {}, {}
        joint = {a: np.asarray(actions[a])[None] for a in self.possible_agents}
        obs, rewards, terminated, truncated = self.world.step(joint)
        agents, term, trunc = list(self.agents), bool(terminated[0]), bool(truncated[0])
        if term or trunc:
            self.agents = []
        return (
            {a: obs[a][0] for a in agents},
            {a: float(rewards[a][0]) for a in agents},
            dict.fromkeys(agents, term),
            dict.fromkeys(agents, trunc),
            {a: {} for a in agents},
        )


def simple_spread(**kwargs: Any) -> FastMPEEnv:
    """mpe2's ``simple_spread_v3.parallel_env(**kwargs)``, batched (registered as ``simple_spread_fast``)."""
    return FastMPEEnv(SpreadBatch, **kwargs)


def simple_speaker_listener(**kwargs: Any) -> FastMPEEnv:
    """mpe2's ``simple_speaker_listener_v4.parallel_env(**kwargs)``, batched (``simple_speaker_listener_fast``)."""
    return FastMPEEnv(SpeakerListenerBatch, **kwargs)


def simple_reference(**kwargs: Any) -> FastMPEEnv:
    """mpe2's ``simple_reference_v3.parallel_env(**kwargs)``, batched (``simple_reference_fast``)."""
    return FastMPEEnv(ReferenceBatch, **kwargs)
