"""A leaner ``aec_to_parallel`` for AEC envs that update once per cycle (``metadata["is_parallelizable"]``).

PettingZoo's wrapper calls ``last()`` before every agent's step, so each joint step observes every agent twice,
and the observations of the first pass are thrown away. On mpe2 that is most of a step's cost. This adapter
steps each agent once and observes once per joint step: the same transitions, rewards and random draws (checked
against PettingZoo's wrapper in tests/test_cycle.py), faster per step (mpe2 observations are most of a step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils.env import AECEnv, ParallelEnv


class CycleParallel(ParallelEnv):
    """A ParallelEnv view of a parallelizable AECEnv: one joint step is one cycle of agent steps."""

    def __init__(self, env: AECEnv) -> None:
        if not env.metadata.get("is_parallelizable", False):
            raise ValueError(f"{type(env).__name__} does not declare is_parallelizable; use TurnBasedParallel")
        self.aec = env
        self.raw = env.unwrapped
        """The env under its wrappers: attribute reads through PettingZoo's wrappers cost more than the reads."""
        self.possible_agents = list(env.possible_agents)
        self.agents: list[str] = []
        self.metadata = env.metadata
        self.render_mode = getattr(env, "render_mode", None)
        if hasattr(env, "state_space"):
            self.state_space = env.state_space

    def observation_space(self, agent: str) -> gym.Space:
        return self.aec.observation_space(agent)

    def action_space(self, agent: str) -> gym.Space:
        return self.aec.action_space(agent)

    @property
    def unwrapped(self) -> Any:
        return self.aec.unwrapped

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.aec.reset(seed=seed, options=options)
        raw = self.raw
        self.agents = raw.agents[:]
        obs = {a: raw.observe(a) for a in raw.agents if not (raw.terminations[a] or raw.truncations[a])}
        return obs, dict(**raw.infos)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        aec, raw = self.aec, self.raw  # steps go through the env's wrappers (their checks); reads skip them
        rewards: dict[str, float] = {}
        for agent in raw.agents:
            if agent != raw.agent_selection:
                raise AssertionError(f"expected agent {agent}, got {raw.agent_selection}: agents must step in a cycle")
            aec.step(actions[agent])
            for a in raw.agents:  # a cycle's rewards, summed as PettingZoo's wrapper sums them
                rewards[a] = rewards.get(a, 0) + raw.rewards[a]
        terminations, truncations, infos = dict(**raw.terminations), dict(**raw.truncations), dict(**raw.infos)
        obs = {a: raw.observe(a) for a in raw.agents}
        while raw.agents and (raw.terminations[raw.agent_selection] or raw.truncations[raw.agent_selection]):
            aec.step(None)
        self.agents = raw.agents
        return obs, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        return self.aec.render()

    def state(self) -> np.ndarray:
        return self.aec.state()

    def close(self) -> None:
        self.aec.close()


def cycled(make_aec: Callable[..., AECEnv], **kwargs: Any) -> CycleParallel:
    """``make_aec(**kwargs)`` seen through ``CycleParallel`` (a picklable factory body for the registry)."""
    return CycleParallel(make_aec(**kwargs))
