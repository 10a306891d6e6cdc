"""A minimal PettingZoo ParallelEnv to start your own from: copy this file, change the game, then check it.

    marl-distill check-env envs/template/my_env.py:parallel_env
    marl-distill train-teachers envs/template/my_env.py:parallel_env --steps 20000 --out runs/mine

Two agents on a line of ``size`` cells each move left, stay or right; both are rewarded by minus their distance,
so they share one goal (a cooperative game: the team return is the headline). The habits that make PettingZoo's
API and seed tests pass are marked "keep":
- keep: build every space once and return that same object from ``observation_space`` / ``action_space``
  (PettingZoo's seed test seeds the object it gets, then samples from the object it gets next);
- keep: draw all randomness from ``self.np_random``, seeded in ``reset(seed=...)``;
- keep: end episodes with ``truncations`` at the time limit (learners bootstrap there) and ``terminations`` only
  where the game itself is over, and empty ``self.agents`` when the episode ends.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv


class MyEnv(ParallelEnv):
    metadata = {"name": "my_env_v0", "render_modes": [], "cooperative": True}  # one team goal: see the guide

    def __init__(self, size: int = 5, max_cycles: int = 25, render_mode: str | None = None) -> None:
        self.size, self.max_cycles, self.render_mode = size, max_cycles, render_mode
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self.np_random, _ = seeding.np_random(None)
        # keep: each space built once; my position and the other's, scaled to [0, 1]; moves 0 left, 1 stay, 2 right
        self._observation_spaces = {a: spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32) for a in self.possible_agents}
        self._action_spaces = {a: spaces.Discrete(3) for a in self.possible_agents}

    def observation_space(self, agent: str) -> spaces.Box:
        return self._observation_spaces[agent]  # keep: the same object on every call

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    def _observations(self) -> dict[str, np.ndarray]:
        scale = max(self.size - 1, 1)
        a, b = self.position / scale
        return {"agent_0": np.array([a, b], np.float32), "agent_1": np.array([b, a], np.float32)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)  # keep: every random draw comes from here
        self.agents = list(self.possible_agents)
        self.position = self.np_random.integers(0, self.size, size=2)
        self.t = 0
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]):
        moves = np.array([int(actions[a]) - 1 for a in self.possible_agents])
        self.position = np.clip(self.position + moves, 0, self.size - 1)
        self.t += 1
        reward = -float(abs(self.position[0] - self.position[1]))  # one shared goal: meet
        observations = self._observations()
        rewards = {a: reward for a in self.agents}
        terminations = {a: False for a in self.agents}
        truncations = {a: self.t >= self.max_cycles for a in self.agents}  # keep: a time limit truncates
        infos = {a: {} for a in self.agents}
        if self.t >= self.max_cycles:
            self.agents = []
        return observations, rewards, terminations, truncations, infos


def parallel_env(**kwargs) -> MyEnv:
    """What ``module:callable`` specs point at: a fresh env from keyword arguments (``--env-kwargs``)."""
    return MyEnv(**kwargs)
