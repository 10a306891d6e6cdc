"""Turn-based (AEC) PettingZoo envs seen as parallel ones, so one lockstep loop drives both kinds.

Every joint step, only the agent whose turn it is (``agent_selection``) acts: its action is played, the others'
are ignored. Each agent still gets an observation and a reward every joint step, so a reward that lands on
another agent's turn (a loss after the opponent's move) reaches the right learner at once. Whose turn it is
travels two ways: ``infos[agent]["acting"]``, which evaluation and distillation read to score and keep only the
acting agent's states, and the action mask, which lets a waiting agent take only action 0, ignored by the game.
Observations are always Dict(observation, action_mask): the env's own mask on an agent's turn (all actions when
the env has none).

Agents removed by the game (``step(None)`` on their turn after they ended) leave the parallel view the usual way:
they are reported terminated or truncated and drop out of ``agents``. So a waiting agent is still *present* in
the episode (its learner trains on those steps, where rewards for the opponent's moves land), while one that
left is not (its learner gets ``done`` then and trains on none of the steps that follow).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils.env import AECEnv, ParallelEnv

from marl_distill.errors import UserError
from marl_distill.policy.observations import has_mask


class TurnBasedParallel(ParallelEnv):
    """A ParallelEnv view of an AECEnv whose agents take turns."""

    def __init__(self, env: AECEnv) -> None:
        self.aec = env
        self.possible_agents = list(env.possible_agents)
        self.agents: list[str] = []
        self.metadata = dict(getattr(env, "metadata", {}))
        self.render_mode = getattr(env, "render_mode", None)
        self._own_mask = {a: has_mask(env.observation_space(a)) for a in self.possible_agents}
        self._agents_now: list[str] = []  # the game's own agents, turn and done flags, read by _read
        self._selection: str | None = None
        self._terms: dict[str, bool] = {}
        self._truncs: dict[str, bool] = {}
        self._spaces = {}
        for a in self.possible_agents:
            space, act = env.observation_space(a), env.action_space(a)
            if not isinstance(act, gym.spaces.Discrete):
                raise ValueError(f"turn-based agent {a!r} has {act} actions; turn-based play needs Discrete actions")
            inner = space["observation"] if self._own_mask[a] else space
            mask = gym.spaces.Box(0, 1, (int(act.n),), np.int8)
            self._spaces[a] = gym.spaces.Dict({"observation": inner, "action_mask": mask})

    def observation_space(self, agent: str) -> gym.Space:
        return self._spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self.aec.action_space(agent)

    def __getattr__(self, name: str) -> Any:
        """``state`` / ``state_space`` (the global view) and other attributes of the game this wraps."""
        if name in ("state", "state_space"):
            return getattr(self.aec, name)
        raise AttributeError(name)

    def _read(self) -> None:
        """Read the game's agents, turn and done flags once after each of its steps: through PettingZoo's
        wrappers every attribute read is a chain of ``__getattr__`` calls, which cost more than the game itself."""
        env = self.aec
        self._agents_now = list(env.agents)
        self._selection = env.agent_selection
        self._terms, self._truncs = env.terminations, env.truncations

    def _ended(self, agent: str) -> bool:
        return bool(self._terms.get(agent, True) or self._truncs.get(agent, True))

    def _play(self, action: Any) -> None:
        self.aec.step(action)
        self._read()

    def _skip_ended(self) -> None:
        """Play the ``None`` turns the AEC API asks of agents that have ended, which removes them (stopping if an
        env leaves ``agent_selection`` on an agent it already removed)."""
        while self._agents_now and self._selection in self._agents_now and self._ended(self._selection):
            self._play(None)

    def _live(self) -> list[str]:
        """Agents still playing: an agent that ended leaves the parallel view at once, even while the AEC env
        keeps it until its next turn."""
        return [a for a in self._agents_now if not self._ended(a)]

    def _turn(self) -> str | None:
        """The agent to move, if it is still in the game."""
        sel = self._selection
        return sel if sel in self._agents_now and not self._ended(sel) else None

    def _observe(self, agents: list[str]) -> dict[str, Any]:
        out = {}
        turn = self._turn()
        for a in agents:
            raw = self.aec.observe(a)
            inner = raw["observation"] if self._own_mask[a] else raw
            n = self._spaces[a]["action_mask"].shape[0]
            if a == turn:
                mask = np.asarray(raw["action_mask"], np.int8) if self._own_mask[a] else np.ones(n, np.int8)
            else:  # waiting: only the ignored action 0
                mask = np.zeros(n, np.int8)
                mask[0] = 1
            out[a] = {"observation": np.asarray(inner), "action_mask": mask}
        return out

    def _infos(self, agents: list[str]) -> dict[str, dict[str, Any]]:
        turn = self._turn()
        return {a: {"acting": a == turn} for a in agents}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.aec.reset(seed=seed, options=options)
        self._read()
        self._skip_ended()
        self.agents = self._live()
        return self._observe(self.agents), self._infos(self.agents)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        env, before, mover = self.aec, list(self.agents), self._selection
        if mover not in self._agents_now:
            mover = env.agent_selection  # read live: before reset, the game's own error says so
            if mover not in env.agents:
                raise UserError(
                    f"the AEC env's agent_selection is {mover!r}, which it already removed; an env should hand "
                    "the turn to a live agent (PettingZoo's _deads_step_first does this for knocked-out agents)"
                )
        self._play(actions[mover])
        played = env.rewards
        rewards = {a: float(played.get(a, 0.0)) for a in before}
        terminated = {a: bool(self._terms.get(a, False)) for a in before}
        truncated = {a: bool(self._truncs.get(a, False)) for a in before}
        final = self._observe([a for a in before if self._ended(a)])  # taken before the game removes them
        self._skip_ended()
        self.agents = self._live()
        obs = {**final, **self._observe(self.agents)}  # the rest, with the next mover's mask
        infos = self._infos(before)
        for a in before:
            if a not in self.agents:  # left the game: not acting again this episode
                infos[a]["acting"] = False
                terminated[a] = terminated[a] or not truncated[a]
        return obs, rewards, terminated, truncated, infos

    def render(self) -> Any:
        return self.aec.render()

    def close(self) -> None:
        self.aec.close()
