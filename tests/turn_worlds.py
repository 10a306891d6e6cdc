"""Turn-based (AEC) test worlds: tic-tac-toe with an illegal-move counter, and a game in which a player is
knocked out between its turns (test fixtures, not shipped envs)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils.wrappers import BaseWrapper


class IllegalMoveCounter(BaseWrapper):
    """Counts (in ``illegal``, over all instances) moves that the wrapped AEC env's own mask forbids."""

    illegal = 0
    moves = 0

    def step(self, action):
        agent = self.agent_selection
        if action is not None and not (self.terminations[agent] or self.truncations[agent]):
            IllegalMoveCounter.moves += 1
            if not self.observe(agent)["action_mask"][int(action)]:
                IllegalMoveCounter.illegal += 1
        super().step(action)


def counted_tictactoe() -> IllegalMoveCounter:
    from pettingzoo.classic import tictactoe_v3

    return IllegalMoveCounter(tictactoe_v3.env())


class EliminationGame(AECEnv):
    """Three players in turn; player_0's first move of 1 knocks player_2 out while it is not player_2's turn.
    The game stops (truncation) after ``turns`` moves."""

    metadata = {"name": "elimination_game_v0", "render_modes": []}

    def __init__(self, turns: int = 6) -> None:
        super().__init__()
        self.possible_agents = ["player_0", "player_1", "player_2"]
        self.turns = turns

    def observation_space(self, agent):
        return spaces.Box(0.0, 1.0, (1,), np.float32)

    def action_space(self, agent):
        return spaces.Discrete(2)

    def observe(self, agent):
        return np.array([self.t / self.turns], np.float32)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: {} for a in self.agents}
        self.t = 0
        self.agent_selection = self.agents[0]

    def step(self, action):
        if self.terminations[self.agent_selection] or self.truncations[self.agent_selection]:
            self._was_dead_step(action)
            return
        self._clear_rewards()
        mover = self.agent_selection
        if mover == "player_0" and self.t == 0 and action == 1:
            self.terminations["player_2"] = True
            self.rewards["player_2"] = -1.0
        self.rewards[mover] += 1.0
        self.t += 1
        if self.t >= self.turns:
            self.truncations = dict.fromkeys(self.agents, True)
        self.agent_selection = self.agents[(self.agents.index(mover) + 1) % len(self.agents)]
        self._accumulate_rewards()
        self._deads_step_first()  # PettingZoo's way: the knocked-out player's removal turn comes next
