"""Recall: a cooperative world that needs memory, where what each agent must act on is shown to it only at first.

At reset every agent draws a cue, one of ``symbols`` values, uniformly and independently. For the first
``cue_steps`` steps an agent sees its own cue (a one-hot); after that its observation holds only a clock. From then
on, every step, each agent picks a symbol, and every agent is paid the team's mean hit rate (1 when every agent
picks its own cue, 0 when none does). Episodes last ``max_cycles`` steps, ended by truncation.

Why it separates memory from none:
- a memoryless policy sees the same observation after the cue whatever the cue was, so each pick after the cue
  hits with probability 1/``symbols`` at best: its expected return is at most
  ``(max_cycles - cue_steps) / symbols`` per agent, which is also what uniform random picks get;
- a policy that remembers its cue hits every time: return ``max_cycles - cue_steps``.

``state()`` holds every agent's cue (one-hot) and the clock: a teacher given the global view can act perfectly
without memory, and has to be distilled into a student that has only its own view (``teachers.view = "global"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class RecallEnv(ParallelEnv):
    """``N`` agents, each shown its own cue for ``cue_steps`` steps and paid for recalling it afterwards."""

    metadata = {"name": "recall_v0", "render_modes": [], "is_parallelizable": True, "cooperative": True}
    render_mode = None

    def __init__(self, N: int = 2, symbols: int = 4, cue_steps: int = 1, max_cycles: int = 8) -> None:
        if N < 1 or symbols < 2:
            raise ValueError(f"recall needs N >= 1 agents and symbols >= 2, got N={N}, symbols={symbols}")
        if not 1 <= cue_steps < max_cycles:
            raise ValueError(f"cue_steps must lie in [1, max_cycles), got {cue_steps} with max_cycles {max_cycles}")
        self.n, self.symbols, self.cue_steps, self.max_cycles = N, symbols, cue_steps, max_cycles
        self.possible_agents = [f"agent_{i}" for i in range(N)]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(0.0, 1.0, (symbols + 2,), np.float32)
        self._act_space = spaces.Discrete(symbols)
        self.state_space = spaces.Box(0.0, 1.0, (N * symbols + 1,), np.float32)
        self.rng = np.random.default_rng()
        self.cues = np.zeros(N, dtype=np.int64)
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def _observe(self) -> dict[str, np.ndarray]:
        clock = np.float32(self.t / self.max_cycles)
        out = {}
        for i, a in enumerate(self.possible_agents):
            o = np.zeros(self.symbols + 2, np.float32)
            if self.t < self.cue_steps:
                o[self.cues[i]] = 1.0
                o[self.symbols] = 1.0  # the cue is in view
            o[self.symbols + 1] = clock
            out[a] = o
        return out

    def state(self) -> np.ndarray:
        s = np.zeros(self.n * self.symbols + 1, np.float32)
        s[np.arange(self.n) * self.symbols + self.cues] = 1.0
        s[-1] = self.t / self.max_cycles
        return s

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.cues = self.rng.integers(self.symbols, size=self.n)
        self.t = 0
        self.agents = list(self.possible_agents)
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        agents = list(self.agents)
        paid = self.t >= self.cue_steps
        hits = np.array([int(actions[a]) == self.cues[i] for i, a in enumerate(self.possible_agents)])
        reward = float(hits.mean()) if paid else 0.0
        self.t += 1
        cut = self.t >= self.max_cycles
        if cut:
            self.agents = []
        return (
            self._observe(),
            dict.fromkeys(agents, reward),
            dict.fromkeys(agents, False),
            dict.fromkeys(agents, cut),
            {a: {} for a in agents},
        )


def parallel_env(N: int = 2, symbols: int = 4, cue_steps: int = 1, max_cycles: int = 8) -> RecallEnv:
    """The registered factory (``marl-distill envs`` lists it as ``recall``); see the module doc."""
    return RecallEnv(N, symbols, cue_steps, max_cycles)
