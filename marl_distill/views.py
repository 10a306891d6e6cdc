"""Views: what a policy observes of an env, when teachers and students should not see the same thing.

``global``: the agent's own observation with the env's ``state()`` appended, the privileged view a centrally
trained teacher may have and a decentrally acting student may not. ``GlobalView`` wraps a ParallelEnv so that
every consumer (SB3 learners, students, evaluation) simply sees the longer observation.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils.env import ParallelEnv

from marl_distill.errors import UserError


class GlobalView(ParallelEnv):
    """``env`` with each agent's observation followed by ``env.state()`` (both flattened, float32)."""

    def __init__(self, env: ParallelEnv) -> None:
        state_space = getattr(env, "state_space", None)
        if not callable(getattr(env, "state", None)) or not isinstance(state_space, gym.spaces.Box):
            raise UserError(
                f"{type(env).__name__} has no state() with a Box state_space, so it has no global view; use the "
                "local view, or give the env a state()"
            )
        self.env = env
        self.possible_agents = list(env.possible_agents)
        self.agents: list[str] = []
        self.metadata = getattr(env, "metadata", {})
        self.render_mode = getattr(env, "render_mode", None)
        self.state_space = state_space
        self._spaces: dict[str, gym.spaces.Box] = {}
        for agent in self.possible_agents:
            local = env.observation_space(agent)
            if not isinstance(local, gym.spaces.Box):
                raise UserError(f"agent {agent!r} observes a {type(local).__name__}; the global view needs Box")
            low = np.concatenate([local.low.reshape(-1), state_space.low.reshape(-1)]).astype(np.float32)
            high = np.concatenate([local.high.reshape(-1), state_space.high.reshape(-1)]).astype(np.float32)
            self._spaces[agent] = gym.spaces.Box(low, high, dtype=np.float32)

    def observation_space(self, agent: str) -> gym.spaces.Box:
        return self._spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self.env.action_space(agent)

    def _view(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        state = np.asarray(self.env.state(), dtype=np.float32).reshape(-1)
        return {a: np.concatenate([np.asarray(o, dtype=np.float32).reshape(-1), state]) for a, o in obs.items()}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.env.agents)
        return self._view(obs), infos

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        self.agents = list(self.env.agents)
        return self._view(obs), rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        return self.env.state()

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    @property
    def unwrapped(self) -> Any:
        return self.env.unwrapped


def global_view(factory: Any) -> GlobalView:
    """The global view of ``factory()``'s env (a picklable factory body: ``partial(global_view, factory)``)."""
    from marl_distill.multiagent import make_parallel

    return GlobalView(make_parallel(factory))
