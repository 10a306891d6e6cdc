"""Repeated cooperative matrix games where miscoordination is punished (Claus & Boutilier 1998).

Both agents receive the same payoff each round; each observes the previous round's joint action (one-hot), so a
policy can condition on what its partner just did. The episode is cut by a time limit after ``rounds`` rounds:
that is a truncation, not a termination.

``reset(seed)`` draws the start: the first observation is a uniformly random "previous joint action" (a one-hot
pair) or none (all zeros), each of the n² + 1 starts equally likely. Without that, every seed would replay one
episode and 200 evaluation episodes would be 200 copies of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

CLIMBING = [[11, -30, 0], [-30, 7, 0], [0, 6, 5]]


def penalty_payoff(k: float) -> list[list[float]]:
    return [[-k, 0, 10], [0, 2, 0], [10, 0, -k]]


class MatrixGameEnv(ParallelEnv):
    """Two agents play one payoff matrix ``rounds`` times."""

    metadata = {"name": "matrix_game_v1", "render_modes": [], "is_parallelizable": True, "cooperative": True}
    render_mode = None

    def __init__(self, payoff: list[list[float]], rounds: int = 10, scale: float = 1.0) -> None:
        self.payoff = np.asarray(payoff, dtype=np.float32) * scale
        if self.payoff.ndim != 2 or self.payoff.shape[0] != self.payoff.shape[1]:
            raise ValueError(f"payoff must be a square matrix, got shape {self.payoff.shape}")
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.rounds = rounds
        self.n = self.payoff.shape[0]
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (2 * self.n,), np.float32)
        self._act_space = spaces.Discrete(self.n)
        self._t = 0
        self._last = np.zeros(2 * self.n, dtype=np.float32)
        self._rng = np.random.default_rng()

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._act_space.seed(seed)
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._t = 0
        self._last = np.zeros(2 * self.n, dtype=np.float32)
        start = int(self._rng.integers(self.n * self.n + 1))  # n * n: no previous round
        if start < self.n * self.n:
            self._last[start // self.n] = 1.0
            self._last[self.n + start % self.n] = 1.0
        return {a: self._last.copy() for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        a0, a1 = int(actions["agent_0"]), int(actions["agent_1"])
        reward = float(self.payoff[a0, a1])
        self._t += 1
        self._last = np.zeros(2 * self.n, dtype=np.float32)
        self._last[a0] = 1.0
        self._last[self.n + a1] = 1.0
        cut = self._t >= self.rounds
        obs = {a: self._last.copy() for a in self.agents}
        rewards = {a: reward for a in self.agents}
        terminations = {a: False for a in self.agents}
        truncations = {a: cut for a in self.agents}
        infos = {a: {} for a in self.agents}
        if cut:
            self.agents = []
        return obs, rewards, terminations, truncations, infos


def climbing_game(rounds: int = 10, scale: float = 0.1) -> MatrixGameEnv:
    """Climbing game [[11,-30,0],[-30,7,0],[0,6,5]]: the optimum (0,0) is surrounded by heavy penalties."""
    return MatrixGameEnv(CLIMBING, rounds, scale)


def penalty_game(k: float = 25.0, rounds: int = 10, scale: float = 0.1) -> MatrixGameEnv:
    """Penalty game [[-k,0,10],[0,2,0],[10,0,-k]]: two optima, and choosing differently costs k."""
    return MatrixGameEnv(penalty_payoff(k), rounds, scale)
