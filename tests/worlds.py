"""Tiny PettingZoo worlds built to make a specific bug visible (they are test fixtures, not shipped envs)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv


class RoundsGame(ParallelEnv, ABC):
    """A parallel game cut by a time limit after ``rounds`` joint steps (a truncation, never a termination).

    Subclasses say what each agent observes (``_observe``) and earns (``_reward``); every agent shares one
    observation space and one action space unless a subclass overrides the two space methods. Their agents'
    rewards never oppose each other, so they declare ``cooperative``: scored by the team sum (RivalTargetGame,
    whose agents are rivals, does not).
    """

    metadata = {"name": "rounds_game_v0", "render_modes": [], "cooperative": True}

    def __init__(self, n_agents: int, rounds: int, obs_space: spaces.Space, act_space: spaces.Space) -> None:
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self.rounds = rounds
        self._obs = obs_space
        self._act = act_space
        self.rng = np.random.default_rng()

    def observation_space(self, agent):
        return self._obs

    def action_space(self, agent):
        return self._act

    @abstractmethod
    def _observe(self) -> dict:
        """Each live agent's observation (also where a world draws its per-step randomness)."""

    @abstractmethod
    def _reward(self, agent: str, action) -> float:
        """What ``agent`` earns for ``action`` in the current state."""

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        rewards = {a: self._reward(a, actions[a]) for a in self.agents}
        self.t += 1
        cut = self.t >= self.rounds
        obs = self._observe()
        agents = list(self.agents)
        if cut:
            self.agents = []
        return obs, rewards, dict.fromkeys(agents, False), dict.fromkeys(agents, cut), {a: {} for a in agents}


class TargetGame(RoundsGame):
    """Each agent sees its own random target (one-hot) and is paid 1 for choosing it, 0 otherwise.

    Targets are drawn independently per agent, so a learner fed another agent's observation or reward can do
    no better than chance (1 / n_targets). Each agent's observation also carries its index, so observations
    of different agents differ. ``steps_taken`` counts joint steps over all instances.
    """

    metadata = {"name": "target_game_v0", "render_modes": [], "cooperative": True}
    steps_taken = 0

    def __init__(self, n_agents: int = 2, n_targets: int = 3, rounds: int = 5) -> None:
        obs = spaces.Box(0.0, 1.0, (n_targets + n_agents,), np.float32)
        super().__init__(n_agents, rounds, obs, spaces.Discrete(n_targets))
        self.n_targets = n_targets

    def _observe(self):
        self.targets = {a: int(self.rng.integers(self.n_targets)) for a in self.agents}
        out = {}
        for i, a in enumerate(self.agents):
            o = np.zeros(self._obs.shape, np.float32)
            o[self.targets[a]] = 1.0
            o[self.n_targets + i] = 1.0
            out[a] = o
        return out

    def _reward(self, agent, action):
        return float(int(action) == self.targets[agent])

    def step(self, actions):
        TargetGame.steps_taken += 1
        return super().step(actions)


class RivalTargetGame(TargetGame):
    """A mixed game: three TargetGame agents, where agent_2 also loses what agent_0 earns (agents 0 and 1 are
    indifferent to each other; 0 and 2 are rivals). No agent's reward is another's, so there is no team sum."""

    metadata = {"name": "rival_target_game_v0", "render_modes": []}  # declares nothing: evaluation decides

    def __init__(self, n_targets: int = 3, rounds: int = 5) -> None:
        super().__init__(n_agents=3, n_targets=n_targets, rounds=rounds)

    def step(self, actions):
        hit = float(int(actions["agent_0"]) == self.targets["agent_0"])
        obs, rewards, terms, truncs, infos = super().step(actions)
        rewards["agent_2"] -= hit
        return obs, rewards, terms, truncs, infos


class ConstantReward(RoundsGame):
    """Reward 1 every step and a constant observation; a time limit cuts the episode after ``rounds`` steps.

    The true value of the (only) state is 1 / (1 - gamma) when the cut is a truncation, but at most ``rounds``
    if a learner wrongly treats the cut as terminal.
    """

    metadata = {"name": "constant_reward_v0", "render_modes": [], "cooperative": True}

    def __init__(self, rounds: int = 4) -> None:
        super().__init__(2, rounds, spaces.Box(0.0, 1.0, (2,), np.float32), spaces.Discrete(2))

    def _observe(self):
        return {a: np.ones(2, np.float32) for a in self.agents}

    def _reward(self, agent, action):
        return 1.0


class HeteroTargetGame(TargetGame):
    """TargetGame whose agents differ: agent i has ``sizes[i]`` targets, so observation and action sizes differ."""

    metadata = {"name": "hetero_target_game_v0", "render_modes": [], "cooperative": True}

    def __init__(self, sizes: tuple[int, ...] = (2, 5), rounds: int = 5) -> None:
        super().__init__(n_agents=len(sizes), n_targets=max(sizes), rounds=rounds)
        self.sizes = dict(zip(self.possible_agents, sizes))
        self._spaces = {
            a: (spaces.Box(0.0, 1.0, (n + 1,), np.float32), spaces.Discrete(n)) for a, n in self.sizes.items()
        }

    def observation_space(self, agent):
        return self._spaces[agent][0]

    def action_space(self, agent):
        return self._spaces[agent][1]

    def _observe(self):
        self.targets = {a: int(self.rng.integers(self.sizes[a])) for a in self.agents}
        out = {}
        for a in self.agents:
            o = np.zeros(self.sizes[a] + 1, np.float32)
            o[self.targets[a]] = 1.0
            o[-1] = 1.0
            out[a] = o
        return out


class ContinuousTarget(RoundsGame):
    """Each agent sees a private target in [-1, 1] and is paid -(action - target)^2: a Box-action bandit."""

    metadata = {"name": "continuous_target_v0", "render_modes": [], "cooperative": True}

    def __init__(self, n_agents: int = 2, rounds: int = 5) -> None:
        box = spaces.Box(-1.0, 1.0, (1,), np.float32)
        super().__init__(n_agents, rounds, box, spaces.Box(-1.0, 1.0, (1,), np.float32))

    def _observe(self):
        self.targets = {a: self.rng.uniform(-1, 1, 1).astype(np.float32) for a in self.agents}
        return {a: t.copy() for a, t in self.targets.items()}

    def _reward(self, agent, action):
        return -float(((np.asarray(action) - self.targets[agent]) ** 2).sum())


class UnboundedTarget(ContinuousTarget):
    """ContinuousTarget whose 3-D actions have no finite bound in dimension 0, only a lower one in dimension 1."""

    metadata = {"name": "unbounded_target_v0", "render_modes": [], "cooperative": True}

    def __init__(self, n_agents: int = 2, rounds: int = 5) -> None:
        super().__init__(n_agents, rounds)
        self._act = spaces.Box(np.array([-np.inf, 0.0, -1.0], np.float32), np.array([np.inf, np.inf, 1.0], np.float32))


class ShiftedTargetGame(TargetGame):
    """TargetGame with ``Discrete(n_targets, start=1)`` actions: target k is chosen by action k + 1. An action
    outside the declared space raises; ``moves`` counts the legal ones (over all instances)."""

    metadata = {"name": "shifted_target_game_v0", "render_modes": [], "cooperative": True}
    moves = 0

    def __init__(self, n_agents: int = 2, n_targets: int = 3, rounds: int = 5) -> None:
        super().__init__(n_agents, n_targets, rounds)
        self._act = spaces.Discrete(n_targets, start=1)

    def _reward(self, agent, action):
        if not self._act.contains(action):
            raise ValueError(f"{agent} played {action!r}, outside its action space {self._act}")
        ShiftedTargetGame.moves += 1
        return float(int(action) - 1 == self.targets[agent])


class LeakyTargetGame(TargetGame):
    """TargetGame whose agent_1 reports an observation of 2.0 (its space is [0, 1]) from step 3 on."""

    def _observe(self):
        out = super()._observe()
        if getattr(self, "t", 0) >= 3 and "agent_1" in out:
            out["agent_1"] = out["agent_1"] * 2.0
        return out


def leaky_target_game():
    return LeakyTargetGame(n_agents=2)


class MaskedTargetGame(TargetGame):
    """TargetGame with PettingZoo-style action masks: observations are Dict(observation, action_mask), each action
    is legal with probability 1/2 (at least one always is), and the target itself is often illegal. An illegal
    action costs -1 and is counted in ``illegal`` (over all instances), so a test can count them."""

    metadata = {"name": "masked_target_game_v0", "render_modes": [], "cooperative": True}
    illegal = 0

    def __init__(self, n_agents: int = 2, n_targets: int = 4, rounds: int = 5) -> None:
        super().__init__(n_agents, n_targets, rounds)
        self._inner = self._obs
        self._dict = spaces.Dict({"observation": self._inner, "action_mask": spaces.Box(0, 1, (n_targets,), np.int8)})

    def observation_space(self, agent):
        return self._dict

    def _observe(self):
        inner = super()._observe()
        self.legal = {}
        for a in inner:
            mask = (self.rng.random(self.n_targets) < 0.5).astype(np.int8)
            mask[self.rng.integers(self.n_targets)] = 1
            self.legal[a] = mask
        return {a: {"observation": o, "action_mask": self.legal[a]} for a, o in inner.items()}

    def _reward(self, agent, action):
        if not self.legal[agent][int(action)]:
            MaskedTargetGame.illegal += 1
            return -1.0
        return super()._reward(agent, action)


class DyingTargetGame(TargetGame):
    """TargetGame in which ``agent_1`` leaves after ``lives`` rounds while ``agent_0`` plays on: terminated, or
    truncated (a time limit of its own) with ``truncate``."""

    metadata = {"name": "dying_target_game_v0", "render_modes": [], "cooperative": True}

    def __init__(self, lives: int = 2, rounds: int = 5, truncate: bool = False) -> None:
        super().__init__(n_agents=2, n_targets=3, rounds=rounds)
        self.lives = lives
        self.truncate = truncate

    def step(self, actions):
        obs, rewards, terms, truncs, infos = super().step(actions)
        if "agent_1" in self.agents and self.t >= self.lives:
            self.agents.remove("agent_1")
            terms["agent_1"], truncs["agent_1"] = not self.truncate, self.truncate
        return obs, rewards, terms, truncs, infos


class DepartingEarner(RoundsGame):
    """Every agent but ``agent_0`` earns 1 per step and after each step leaves (terminated) with probability
    ``p_leave``; ``agent_0`` earns nothing and plays on to the time limit.

    Observations are constant, so a leaver's true value is the same in every state it is in:
    1 / (1 - gamma * (1 - p_leave)). Its last observation after it left looks just like a live one, so a learner
    that kept training on those rows (reward 0, no done) would value the state far lower.
    """

    metadata = {"name": "departing_earner_v0", "render_modes": [], "cooperative": True}

    def __init__(self, n_agents: int = 2, p_leave: float = 0.25, rounds: int = 10) -> None:
        super().__init__(n_agents, rounds, spaces.Box(0.0, 1.0, (2,), np.float32), spaces.Discrete(2))
        self.p_leave = p_leave

    def _observe(self):
        return {a: np.ones(2, np.float32) for a in self.agents}

    def _reward(self, agent, action):
        return float(agent != "agent_0")

    def step(self, actions):
        obs, rewards, terms, truncs, infos = super().step(actions)
        for agent in list(self.agents[1:]):
            if self.rng.random() < self.p_leave:
                self.agents.remove(agent)
                terms[agent], truncs[agent] = True, False
        return obs, rewards, terms, truncs, infos


class MixedObsTargetGame(TargetGame):
    """TargetGame whose three agents see their target three ways: a uint8 image (3 x 3 x 1, the target's row
    lit), a float64 one-hot, and a bare Discrete index."""

    metadata = {"name": "mixed_obs_target_game_v0", "render_modes": [], "cooperative": True}

    def __init__(self, rounds: int = 5) -> None:
        super().__init__(n_agents=3, n_targets=3, rounds=rounds)
        self._spaces = {
            "agent_0": spaces.Box(0, 255, (3, 3, 1), np.uint8),
            "agent_1": spaces.Box(0.0, 1.0, (3,), np.float64),
            "agent_2": spaces.Discrete(3),
        }

    def observation_space(self, agent):
        return self._spaces[agent]

    def _observe(self):
        super()._observe()
        image = np.zeros((3, 3, 1), np.uint8)
        image[self.targets.get("agent_0", 0), :, 0] = 255
        shown = {"agent_0": image, "agent_1": np.eye(3)[self.targets.get("agent_1", 0)]}
        shown["agent_2"] = self.targets.get("agent_2", 0)
        return {a: shown[a] for a in self.agents}


class FixedActions:
    """A joint policy in which each agent always plays its action in ``choice`` (deterministic, blind to what it
    observes): hand-checkable teachers and students for the matrix games."""

    deterministic = True

    def __init__(self, spec, choice: dict[str, int], n_actions: int = 3) -> None:
        self.spec = spec
        self.choice = dict(choice)
        self.n_actions = n_actions

    def logits(self, obs):
        out = {}
        for agent, o in obs.items():
            lg = torch.full((len(o), self.n_actions), -5.0)
            lg[:, self.choice[agent]] = 5.0
            out[agent] = lg
        return out
