"""Acting on what a PettingZoo env hands out: a raw observation dict in, env-ready actions out.

Inside the lab policies read encoded observations (``observations.encoder``) in batches and index Discrete
actions from 0. A user who loads a trained team and plays it in their own loop should not have to know that:
``ActingPolicy.act`` encodes each agent's raw observation, takes the legal actions from a Dict observation's
``action_mask`` (PettingZoo's convention), acts, and adds each Discrete space's ``start`` back. A recurrent team
carries its state from call to call; ``reset`` starts a new episode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from marl_distill.errors import UserError
from marl_distill.policy.joint import JointPolicy, select_actions
from marl_distill.policy.memory import Carried
from marl_distill.policy.observations import encoder, has_mask


class ActingPolicy:
    """A joint policy (teachers, a student, any team) that acts on raw env observations.

    Args:
        policy: the team that chooses the actions.
        observation_spaces: the env's own observation space per agent (Dict with ``action_mask`` where it masks).
        action_spaces: the env's own action space per agent.
        seed: seeds the draws of ``act(..., deterministic=False)``.

    >>> actions = team.act(observations)  # doctest: +SKIP
    """

    def __init__(
        self,
        policy: JointPolicy,
        observation_spaces: Mapping[str, gym.Space],
        action_spaces: Mapping[str, gym.Space],
        *,
        seed: int | None = None,
    ) -> None:
        self.policy = policy
        self._carried = Carried(policy, 1)
        self.spec = policy.spec
        self._encode = {a: encoder(s["observation"] if has_mask(s) else s) for a, s in observation_spaces.items()}
        self._start = {a: int(s.start) for a, s in action_spaces.items() if isinstance(s, gym.spaces.Discrete)}
        self.rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return f"ActingPolicy({type(self.policy).__name__}, agents={list(self.agents)})"

    @property
    def agents(self) -> tuple[str, ...]:
        return self.spec.agents

    def reset(self) -> None:
        """A new episode: a recurrent team's state returns to zero (a memoryless team has nothing to forget)."""
        self._carried.reset()

    def act(
        self,
        observations: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        deterministic: bool = True,
    ) -> dict[str, Any]:
        """The action of every agent in ``observations`` (one observation each, as ``env.reset`` / ``env.step``
        return them). A recurrent team's agents in ``observations`` step their states; call ``reset`` when the env
        is reset.

        Args:
            observations: agent -> its raw observation; a Dict observation's ``action_mask`` is used as its mask.
            masks: agent -> legal actions (bool or 0/1), for masks that do not come inside the observation.
            deterministic: argmax (True) or a draw from the policy's distribution (False).

        Returns:
            agent -> the action to hand to ``env.step`` (an int for Discrete spaces, an array for Box).
        """
        unknown = sorted(set(observations) - set(self._encode))
        if unknown:
            raise UserError(f"no agent {unknown[0]!r} in this team; its agents are {list(self.agents)}: is this the "
                            "env (and env kwargs) it was trained on?")  # fmt: skip
        obs, legal = {}, {a: np.asarray(m, dtype=bool) for a, m in (masks or {}).items()}
        for agent, o in observations.items():
            if isinstance(o, Mapping) and "action_mask" in o:
                legal.setdefault(agent, np.asarray(o["action_mask"], dtype=bool))
                o = o["observation"]
            obs[agent] = self._encode[agent](o)[None]
        try:
            actions, _ = select_actions(
                self._carried, obs, self.rng, deterministic, {a: m[None] for a, m in legal.items() if a in obs}
            )
            self._carried.advance({})
        except (ValueError, RuntimeError) as exc:  # sizes that do not fit: another env, or other env kwargs
            raise UserError(f"{exc}; is this the env (and env kwargs) the team was trained on?") from None
        return {a: self._env_action(a, x[0]) for a, x in actions.items()}

    def _env_action(self, agent: str, action: Any) -> Any:
        if agent in self._start:
            return int(action) + self._start[agent]
        return np.asarray(action)
