"""Cooperative navigation (the task of mpe2's simple_spread) written as batched numpy: many copies step at once.

N agents must cover N landmarks. Every agent is paid the team's coverage, minus the summed distance from each
landmark to its nearest agent, and loses 1 for each other agent it overlaps. Agents move like MPE's: a discrete
action pushes (none, left, right, down, up), velocity is damped by 0.25 each step, dt = 0.1. Unlike mpe2 there
is no communication channel and collisions are penalised but not simulated as contact forces.

With ``sight`` set, the world is partially observable: an agent sees landmarks and other agents only within
that distance (their relative positions read 0 beyond it, beside a 0/1 visibility flag each), while ``state()``
holds every position and velocity. Agents that cannot see the landmarks others are heading for must guess how
to split them: the world where a teacher given the state has something to teach a student that has only its
own view.

With ``grid`` set (it needs ``sight``), an agent sees the same things as a coarse egocentric image instead of
coordinates: ``grid`` x ``grid`` cells over the square of half-width ``sight`` centred on it, one channel for
landmarks and one for other agents, each object within ``sight`` (the same disc as the coordinates) spread over its
four nearest cell centres (bilinear weights, so a lone object's position is still recoverable), beside its own
velocity and position. It holds what the coordinates hold, except which object is which and where objects sharing
cells are, but a policy must learn to read it: what a camera-fed robot faces beside a teacher given the map
("Learning by Cheating", Chen et al. 2019).

With ``glimpse`` set, landmarks are in view only during an episode's first ``glimpse`` steps (their relative
positions, visibility flags and image channel read 0 after that; other agents stay as ``sight`` says): an agent
that is to reach a landmark later has to remember where it was, a world for students with memory.

Two APIs over one implementation:
- ``NavigationBatch``: the vector API, arrays with a leading copy axis, every copy stepped by one numpy call;
- ``parallel_env()``: a PettingZoo ParallelEnv (one copy), registered as ``navigation``.
``experiments/perf/navigation_speed.py`` compares both with mpe2's simple_spread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

PUSH = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.float32)
SENSITIVITY, DAMPING, DT, RADIUS = 5.0, 0.25, 0.1, 0.15


class NavigationBatch:
    """``n_copies`` navigation worlds of ``n_agents`` agents, stepped together; episodes last ``max_cycles``."""

    def __init__(
        self,
        n_copies: int,
        n_agents: int = 3,
        max_cycles: int = 25,
        seed: int | None = None,
        sight: float | None = None,
        grid: int = 0,
        glimpse: int | None = None,
    ) -> None:
        if n_copies < 1 or n_agents < 1 or max_cycles < 1:
            raise ValueError("n_copies, n_agents and max_cycles must be >= 1")
        if sight is not None and not sight > 0:
            raise ValueError(f"sight must be a positive distance (or None: everything in view), got {sight}")
        if grid == 1 or grid < 0:
            raise ValueError(f"grid must be 0 (coordinates) or at least 2 cells a side, got {grid}")
        if grid and sight is None:
            raise ValueError("grid draws what lies within sight: set sight too (e.g. sight = 1.0)")
        if glimpse is not None and not 1 <= glimpse < max_cycles:
            raise ValueError(f"glimpse must lie in [1, max_cycles) steps (or None: always in view), got {glimpse}")
        self.glimpse = glimpse
        self.n_copies, self.n_agents, self.max_cycles, self.sight = n_copies, n_agents, max_cycles, sight
        self.grid = int(grid)
        seen = 2 * n_agents - 1  # landmarks and other agents
        if self.grid:
            self.obs_dim = 4 + 2 * self.grid * self.grid
        else:
            self.obs_dim = 4 + 2 * seen + (seen if sight is not None or glimpse is not None else 0)
        self.state_dim = 6 * n_agents  # positions, velocities, landmarks
        self.n_actions = len(PUSH)
        self.rng = np.random.default_rng(seed)
        self._others = np.array([[j for j in range(n_agents) if j != i] for i in range(n_agents)], dtype=int)
        self.t = 0
        self.reset(seed)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """New episodes in every copy; returns observations (copies, agents, obs_dim)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        b, n = self.n_copies, self.n_agents
        self.pos = self.rng.uniform(-1.0, 1.0, (b, n, 2)).astype(np.float32)
        self.vel = np.zeros((b, n, 2), np.float32)
        self.landmarks = self.rng.uniform(-0.9, 0.9, (b, n, 2)).astype(np.float32)
        self.t = 0
        return self.observe()

    def observe(self) -> np.ndarray:
        """Own velocity and position, landmarks and other agents relative to oneself."""
        b, n = self.n_copies, self.n_agents
        to_landmarks = self.landmarks[:, None, :, :] - self.pos[:, :, None, :]  # (b, n, n_landmarks, 2)
        hidden = self.glimpse is not None and self.t >= self.glimpse  # the landmarks' glimpse is over
        to_agents = self.pos[:, None, :, :] - self.pos[:, :, None, :]  # (b, n, n, 2)
        others = np.take_along_axis(to_agents, self._others[None, :, :, None], axis=2)  # (b, n, n-1, 2)
        parts = [self.vel, self.pos]
        if self.grid:
            landmarks = self._image(to_landmarks) * (0.0 if hidden else 1.0)
            return np.concatenate([*parts, landmarks, self._image(others)], axis=-1).astype(np.float32)
        seen = np.concatenate([to_landmarks, others], axis=2)  # (b, n, 2n-1, 2)
        if self.sight is not None or self.glimpse is not None:
            sight = np.inf if self.sight is None else self.sight
            visible = np.linalg.norm(seen, axis=-1) <= sight  # (b, n, 2n-1)
            if hidden:
                visible[:, :, :n] = False
            seen = np.where(visible[..., None], seen, 0.0)
            parts += [seen.reshape(b, n, -1), visible.astype(np.float32)]
        else:
            parts += [seen.reshape(b, n, -1)]
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def _image(self, rel: np.ndarray) -> np.ndarray:
        """Relative positions (b, n, m, 2) splatted into one flattened (b, n, grid * grid) channel: bilinear weights
        on the four cell centres around each object within sight, nothing for those beyond."""
        b, n, m, _ = rel.shape
        g, half = self.grid, float(self.sight)
        u = (rel + half) / (2 * half) * (g - 1)  # cell coordinates, 0..g-1 inside the window
        inside = np.linalg.norm(rel, axis=-1) <= half  # (b, n, m): the disc the coordinates' sight uses
        low = np.clip(np.floor(u), 0, g - 2).astype(int)
        frac = u - low
        low, frac = low[inside], frac[inside]  # (k, 2): the objects drawn
        rows = np.arange(b * n).repeat(m).reshape(b, n, m)[inside]  # the (copy, agent) image each is drawn into
        image = np.zeros((b * n, g * g), np.float64)
        for dx in (0, 1):
            for dy in (0, 1):
                w = (frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
                np.add.at(image, (rows, (low[:, 0] + dx) * g + low[:, 1] + dy), w)
        return image.reshape(b, n, g * g)

    def state(self) -> np.ndarray:
        """Every agent's position and velocity and every landmark, absolute (copies, 6 * n_agents)."""
        b = self.n_copies
        return np.concatenate(
            [self.pos.reshape(b, -1), self.vel.reshape(b, -1), self.landmarks.reshape(b, -1)], axis=-1
        ).astype(np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``actions`` (copies, agents) in 0..4 -> observations, rewards (copies, agents), truncated (copies,).

        Episodes end only by the time limit (a truncation); call ``reset`` after one ends."""
        force = PUSH[np.asarray(actions, dtype=int)] * SENSITIVITY
        self.vel = self.vel * (1.0 - DAMPING) + force * DT
        self.pos = self.pos + self.vel * DT
        self.t += 1
        to_landmarks = self.landmarks[:, None, :, :] - self.pos[:, :, None, :]
        coverage = -np.linalg.norm(to_landmarks, axis=-1).min(axis=1).sum(axis=-1)  # (b,)
        gaps = np.linalg.norm(self.pos[:, :, None, :] - self.pos[:, None, :, :], axis=-1)
        overlaps = (gaps < 2 * RADIUS).sum(axis=-1) - 1  # minus oneself
        rewards = (coverage[:, None] - overlaps).astype(np.float32)
        truncated = np.full(self.n_copies, self.t >= self.max_cycles)
        return self.observe(), rewards, truncated


class NavigationEnv(ParallelEnv):
    """One navigation world through the PettingZoo parallel API."""

    metadata = {"name": "navigation_v0", "render_modes": [], "is_parallelizable": True, "cooperative": True}
    render_mode = None

    def __init__(
        self, N: int = 3, max_cycles: int = 25, sight: float | None = None, grid: int = 0, glimpse: int | None = None
    ) -> None:
        self.world = NavigationBatch(1, N, max_cycles, sight=sight, grid=grid, glimpse=glimpse)
        self.possible_agents = [f"agent_{i}" for i in range(N)]
        self.agents: list[str] = []
        bound = np.float32(np.inf)
        self._obs_space = spaces.Box(-bound, bound, (self.world.obs_dim,), np.float32)
        self._act_space = spaces.Discrete(self.world.n_actions)
        self.state_space = spaces.Box(-bound, bound, (self.world.state_dim,), np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def state(self) -> np.ndarray:
        return self.world.state()[0]

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs = self.world.reset(seed)[0]
        self.agents = list(self.possible_agents)
        return {a: obs[i] for i, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        joint = np.array([[int(actions[a]) for a in self.possible_agents]])
        obs, rewards, truncated = self.world.step(joint)
        agents = list(self.agents)
        cut = bool(truncated[0])
        if cut:
            self.agents = []
        return (
            {a: obs[0, i] for i, a in enumerate(agents)},
            {a: float(rewards[0, i]) for i, a in enumerate(agents)},
            dict.fromkeys(agents, False),
            dict.fromkeys(agents, cut),
            {a: {} for a in agents},
        )


def parallel_env(
    N: int = 3, max_cycles: int = 25, sight: float | None = None, grid: int = 0, glimpse: int | None = None
) -> NavigationEnv:
    """The registered factory (``marl-distill envs`` lists it as ``navigation``); ``sight``, ``grid``, ``glimpse``:
    see the module doc."""
    return NavigationEnv(N, max_cycles, sight, grid, glimpse)
