"""What policies need to know about a multi-agent env: its agents, the spaces they see and act in, their masks.

Teachers, students, random and mixed teams and the env adapters all read this one description, so it sits below
both: the env adapters build it (``EnvSpec.of``), policies only read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from pettingzoo.utils.env import ParallelEnv

from marl_distill.errors import UserError
from marl_distill.policy.distributions import Head, head_for
from marl_distill.policy.observations import encoded_space, has_mask


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about a multi-agent env that policies need."""

    agents: tuple[str, ...]
    """Every agent that can appear (``possible_agents``), in a fixed order."""
    observation_spaces: Mapping[str, gym.Space]
    """What policies see: the env's observation (its ``observation`` part when masks come beside it) as a float32
    Box, through the declared preprocessor in ``observations``."""
    action_spaces: Mapping[str, gym.Space]
    masked: frozenset[str] = frozenset()
    """Agents whose observations are Dict(observation, action_mask): only actions the mask allows are legal."""

    @classmethod
    def of(cls, env: ParallelEnv) -> EnvSpec:
        agents = tuple(env.possible_agents)
        obs_spaces, masked = {}, set()
        for agent in agents:
            space = env.action_space(agent)
            if not isinstance(space, gym.spaces.Discrete) and not (
                isinstance(space, gym.spaces.Box) and len(space.shape) == 1
            ):
                raise UserError(
                    f"agent {agent!r} has action space {space}; only Discrete and 1-D Box actions are supported"
                )
            obs_space = env.observation_space(agent)
            if has_mask(obs_space):
                if not isinstance(space, gym.spaces.Discrete):
                    raise UserError(f"agent {agent!r} has an action_mask but {space} actions; masks need Discrete")
                masked.add(agent)
                obs_space = obs_space["observation"]
            obs_spaces[agent] = encoded_space(obs_space, agent)
        return cls(agents, obs_spaces, {a: env.action_space(a) for a in agents}, frozenset(masked))

    def head(self, agent: str) -> Head:
        """The agent's action distribution: Categorical (Discrete) or DiagGaussian (Box)."""
        return head_for(self.action_spaces[agent])

    def n_actions(self, agent: str) -> int:
        """Size of the agent's distribution parameters (logits, or Gaussian mean + log_std)."""
        return self.head(agent).size

    def obs_dim(self, agent: str) -> int:
        return int(np.prod(self.observation_spaces[agent].shape))
