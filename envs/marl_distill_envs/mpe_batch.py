"""The physics, actions and resets shared by mpe2's tasks, batched: ``n_copies`` copies stepped by one numpy call.

mpe2's core (``mpe2/_mpe_utils``) as arrays with a leading copy axis: its action decoding (discrete and continuous),
its soft contact force between colliding agents, its integration (position first, then damping, then force) and
its resets, drawn per copy from one ``np.random.Generator`` seeded as mpe2 seeds its own. The tasks themselves
(what each agent sees and earns) are in ``fast_mpe``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

DT, DAMPING, CONTACT_FORCE, CONTACT_MARGIN, SENSITIVITY = 0.1, 0.25, 100.0, 1e-3, 5.0
# mpe2's discrete movement: no-op, left, right, down, up
PUSH = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
MOVES = len(PUSH)


class MPEBatch(ABC):
    """``n_copies`` copies of one mpe2 task; subclasses say who moves, speaks and collides, what each sees and earns."""

    name = ""
    agents: tuple[str, ...] = ()
    movable: tuple[bool, ...] = ()
    silent: tuple[bool, ...] = ()
    size: tuple[float, ...] = ()
    collide = False
    """Whether agents push each other apart (mpe2's contact force); landmarks never collide in these tasks."""
    dim_c = 0
    n_landmarks = 0
    _now: dict[str, np.ndarray] | None = None

    def __init__(self, n_copies: int, max_cycles: int = 25, continuous_actions: bool = False) -> None:
        if n_copies < 1:
            raise ValueError(f"n_copies must be >= 1, got {n_copies}")
        if max_cycles < 1:
            raise ValueError(f"max_cycles must be >= 1 (the steps in an episode), got {max_cycles}")
        self.n_copies, self.max_cycles, self.continuous = n_copies, int(max_cycles), bool(continuous_actions)
        self.possible_agents = list(self.agents)
        n = len(self.agents)
        self._movable = np.array(self.movable)
        self._dist_min = np.add.outer(self.size, self.size)  # contact distance of each pair of agents
        self._rngs = [seeding.np_random()[0] for _ in range(n_copies)]
        self.pos = np.zeros((n_copies, n, 2))
        self.vel = np.zeros((n_copies, n, 2))
        self.comm = np.zeros((n_copies, n, self.dim_c))
        self.landmarks = np.zeros((n_copies, self.n_landmarks, 2))
        self.t = np.zeros(n_copies, dtype=int)
        self.reset()
        bound = np.float32(np.inf)
        obs = self.observe()
        self._obs_spaces = {a: spaces.Box(-bound, bound, obs[a].shape[1:], np.float32) for a in self.agents}
        self.state_space = spaces.Box(-bound, bound, (self.state().shape[1],), np.float32)
        self._act_spaces = {a: self._action_space(i) for i, a in enumerate(self.agents)}

    def _action_space(self, i: int) -> spaces.Space:
        """mpe2's: Box(0, 1) over 5 moves then ``dim_c`` words, or Discrete over moves x words."""
        moves = MOVES if self.movable[i] else (0 if self.continuous else 1)
        words = self.dim_c if not self.silent[i] else (0 if self.continuous else 1)
        if self.continuous:
            return spaces.Box(0.0, 1.0, (moves + words,))
        return spaces.Discrete(moves * words)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_spaces[agent]

    # --- episodes -------------------------------------------------------------------------------------------
    def reset(
        self, seeds: Sequence[int | None] | None = None, copies: Sequence[int] | np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Start new episodes in ``copies`` (all by default), copy ``copies[k]`` seeded with ``seeds[k]`` (None
        carries on its own stream, as mpe2's ``reset()`` does); returns every copy's observations."""
        idx = np.arange(self.n_copies) if copies is None else np.asarray(copies, dtype=int).reshape(-1)
        seeds = [None] * len(idx) if seeds is None else list(seeds)
        if len(seeds) != len(idx):
            raise ValueError(f"need one seed per copy reset ({len(idx)}), got {len(seeds)}")
        for i, seed in zip(idx, seeds):
            if seed is not None:
                self._rngs[i] = seeding.np_random(int(seed))[0]
            self._draw(int(i), self._rngs[i])
        self.vel[idx] = 0.0
        self.comm[idx] = 0.0
        self.t[idx] = 0
        return self.observe()

    def _draw(self, i: int, rng: np.random.Generator) -> None:
        """Copy ``i``'s goals, then agent and landmark positions, drawn in mpe2's ``reset_world`` order."""
        self.pos[i] = rng.uniform(-1, +1, (len(self.agents), 2))
        self.landmarks[i] = rng.uniform(-1, +1, (self.n_landmarks, 2))

    def step(
        self, actions: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """``actions[agent]``: (copies,) ints or (copies, size) floats in [0, 1] (clipped, as mpe2 clips them) ->
        observations, rewards per agent (copies,), terminated (copies,), truncated (copies,).

        Every copy steps; one whose episode ended must be ``reset`` before its next step means anything."""
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"{self.name}: no actions for {missing}; step takes one array per agent")
        force = np.zeros_like(self.pos)
        for i, agent in enumerate(self.agents):
            force[:, i], said = self._decode(i, np.asarray(actions[agent]))
            if self.silent[i]:
                continue
            self.comm[:, i] = said
        if self.collide:
            force += self._contact_forces()
        moving = slice(None) if self._movable.all() else self._movable  # a slice writes in place, a mask copies
        self.pos[:, moving] += self.vel[:, moving] * DT
        self.vel[:, moving] = self.vel[:, moving] * (1 - DAMPING) + force[:, moving] * DT  # mass 1
        self.t += 1
        self._now = self._geometry()  # shared by what follows, within this step only
        truncated = self.t >= self.max_cycles
        terminated = self._terminal() & ~truncated
        rewards = self._rewards()
        obs = self.observe()
        self._now = None
        return obs, {a: rewards[:, i] for i, a in enumerate(self.agents)}, terminated, truncated

    def _geometry(self) -> dict[str, np.ndarray]:
        """Relative positions and distances a step's rewards, ends and observations all read."""
        to_landmarks = self.landmarks[:, None, :, :] - self.pos[:, :, None, :]  # (b, agents, landmarks, 2)
        to_agents = self.pos[:, None, :, :] - self.pos[:, :, None, :]  # (b, i, j, 2): j minus i
        return {
            "to_landmarks": to_landmarks,
            "landmark_dist": np.sqrt(np.sum(np.square(to_landmarks), axis=-1)),
            "to_agents": to_agents,
            "agent_dist": np.sqrt(np.sum(np.square(to_agents), axis=-1)),
        }

    def _geo(self) -> dict[str, np.ndarray]:
        """This step's geometry, or the current state's outside a step."""
        return self._now if self._now is not None else self._geometry()

    def _decode(self, i: int, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Agent ``i``'s (copies, 2) force and (copies, dim_c) utterance, decoded as mpe2's ``_set_action``."""
        b = self.n_copies
        space = self._act_spaces[self.agents[i]]
        shape = (b, *space.shape)
        if action.size != int(np.prod(shape)):
            raise ValueError(f"{self.agents[i]}'s actions must have shape {shape} (one per copy), got {action.shape}")
        force, said = np.zeros((b, 2)), np.zeros((b, self.dim_c))
        if self.continuous:  # differences taken in the action's own dtype, as mpe2 takes them
            action = np.clip(action.reshape(b, -1), 0.0, 1.0)
            if self.movable[i]:
                push = np.stack([action[:, 2] - action[:, 1], action[:, 4] - action[:, 3]], axis=-1)
                force = push.astype(np.float64) * SENSITIVITY  # scaled in float64, as mpe2 scales its float64 u
                action = action[:, MOVES:]
            if not self.silent[i]:
                said = action
            return force, said
        action = action.reshape(b)
        n = space.n
        if not np.issubdtype(action.dtype, np.integer) or action.min() < 0 or action.max() >= n:
            raise ValueError(f"{self.agents[i]}'s actions must be integers in [0, {n}), got {action}")
        if self.movable[i]:
            force = PUSH[action % MOVES] * SENSITIVITY
            action = action // MOVES
        if not self.silent[i]:
            said[np.arange(b), action] = 1.0
        return force, said

    def _contact_forces(self) -> np.ndarray:
        """mpe2's soft contact between every pair of agents: a push along their line, growing as they overlap."""
        delta = self.pos[:, :, None, :] - self.pos[:, None, :, :]  # (b, n, n, 2): i minus j
        dist = np.sqrt(np.sum(np.square(delta), axis=-1))
        n = len(self.agents)
        dist[:, np.arange(n), np.arange(n)] = np.inf  # no push on oneself: 0 / inf and a penetration of 0
        k = CONTACT_MARGIN
        penetration = np.logaddexp(0, -(dist - self._dist_min) / k) * k
        return (CONTACT_FORCE * delta / dist[..., None] * penetration[..., None]).sum(axis=2)

    # --- what agents see and earn (per task) ----------------------------------------------------------------
    @abstractmethod
    def observe(self) -> dict[str, np.ndarray]:
        """Every agent's observations (copies, obs_dim), float32."""

    @abstractmethod
    def _rewards(self) -> np.ndarray:
        """(copies, agents) rewards after a step."""

    def _terminal(self) -> np.ndarray:
        """Where a copy's episode ends before its time limit (none of these tasks, unless told)."""
        return np.zeros(self.n_copies, dtype=bool)

    def state(self) -> np.ndarray:
        """mpe2's ``state()``: every agent's observation side by side (copies, state_dim), float32."""
        obs = self.observe()
        return np.concatenate([obs[a] for a in self.agents], axis=-1)


def blend(local: np.ndarray, team: np.ndarray, ratio: float) -> np.ndarray:
    """mpe2's reward with a ``local_ratio``: the team's (copies,) x (1 - ratio) + each agent's own x ratio."""
    return team[:, None] * (1 - ratio) + local * ratio
