"""A leaner ``aec_to_parallel`` for AEC envs that update once per cycle (``metadata["is_parallelizable"]``).

PettingZoo's wrapper calls ``last()`` before every agent's step, so each joint step observes every agent twice,
and the observations of the first pass are thrown away. On mpe2 that is most of a step's cost. This adapter
steps each agent once and observes once per joint step: the same transitions, rewards and random draws (checked
against PettingZoo's wrapper in tests/env/test_aec_cycle.py), faster per step (mpe2 observations are most of a step).
Where the env's wrappers only check (PettingZoo's order-enforcing and out-of-bounds assertions, what mpe2 puts
around a discrete env), steps go to the env under them, after the same action check; any other wrapper (mpe2's
action clipping for continuous actions, a user's) is stepped through as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils.env import AECEnv, ParallelEnv
from pettingzoo.utils.wrappers import AssertOutOfBoundsWrapper, BaseWrapper, OrderEnforcingWrapper

CHECK_ONLY = (OrderEnforcingWrapper, AssertOutOfBoundsWrapper)
"""Wrappers that never change a step, only refuse bad ones: stepping the env under them, after checking the action
as AssertOutOfBoundsWrapper does, is the same step."""


def _only_checks(env: AECEnv) -> bool:
    while isinstance(env, BaseWrapper):
        if type(env) not in CHECK_ONLY:
            return False
        env = env.env
    return True


class CycleParallel(ParallelEnv):
    """A ParallelEnv view of a parallelizable AECEnv: one joint step is one cycle of agent steps."""

    def __init__(self, env: AECEnv) -> None:
        if not env.metadata.get("is_parallelizable", False):
            raise ValueError(f"{type(env).__name__} does not declare is_parallelizable; use TurnBasedParallel")
        self.aec = env
        self.raw = env.unwrapped
        """The env under its wrappers: attribute reads through PettingZoo's wrappers cost more than the reads."""
        self.stepper = self.raw if _only_checks(env) else env
        """What a step goes to: the env itself where its wrappers only check, else the wrapped env."""
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
        raw, stepper = self.raw, self.stepper  # reads skip the wrappers; steps skip them where they only check
        checked = stepper is raw
        rewards: dict[str, float] = {}
        for agent in raw.agents:
            if agent != raw.agent_selection:
                raise AssertionError(f"expected agent {agent}, got {raw.agent_selection}: agents must step in a cycle")
            action = actions[agent]
            if checked and not raw.action_space(agent).contains(action):
                raise AssertionError(f"action {action!r} of {agent} is outside its space {raw.action_space(agent)}")
            stepper.step(action)
            for a in raw.agents:  # a cycle's rewards, summed as PettingZoo's wrapper sums them
                rewards[a] = rewards.get(a, 0) + raw.rewards[a]
        terminations, truncations, infos = dict(**raw.terminations), dict(**raw.truncations), dict(**raw.infos)
        obs = {a: raw.observe(a) for a in raw.agents}
        while raw.agents and (raw.terminations[raw.agent_selection] or raw.truncations[raw.agent_selection]):
            stepper.step(None)
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
