"""How the per-agent teachers are trained: ``TeacherConfig`` and the algorithms it names."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from marl_distill.errors import UserError

ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "maskable_ppo": MaskablePPO,
    "recurrent_ppo": RecurrentPPO,
    "dqn": DQN,
}
"""Teacher algorithms by name; maskable_ppo (sb3-contrib) is PPO that only samples legal actions, recurrent_ppo
(sb3-contrib) PPO with an LSTM before its heads."""


SETTINGS = {"ppo": "ppo", "maskable_ppo": "ppo", "recurrent_ppo": "ppo", "dqn": "dqn"}
"""Which TeacherConfig table holds each algorithm's keyword arguments."""

POLICIES = {"recurrent_ppo": "MlpLstmPolicy"}
"""The SB3 policy each algorithm trains (MlpPolicy unless named here)."""


def policy_name(algo_cls: type) -> str:
    """The SB3 policy class name ``algo_cls`` is built with."""
    name = next((n for n, c in ALGOS.items() if c is algo_cls), "")
    return POLICIES.get(name, "MlpPolicy")


@dataclass
class TeacherConfig:
    """How the per-agent teachers are trained."""

    algo: str = "ppo"
    """SB3 algorithm for every agent: ppo, dqn, maskable_ppo (sb3-contrib; for envs with action masks) or
    recurrent_ppo (sb3-contrib; an LSTM policy, for worlds where what to act on was seen earlier)."""
    agent_algo: dict[str, str] = field(default_factory=dict)
    """Per-agent override, e.g. {agent_1 = "dqn"}: PPO and DQN agents train side by side."""
    steps: int = 50_000
    """Transitions each learner learns from (joint env steps x n_envs), rounded up to whole rollouts."""
    n_envs: int = 8
    """Env copies stepped together; each learner sees all of them as its own VecEnv."""
    env_workers: int = 1
    """Processes that step the env copies (1: in this process; 2+ spreads the copies, like SubprocVecEnv)."""
    seed: int = 0
    """The teachers' seed: learners and env copies get their own branches of its SeedSequence tree; unset in a config
    (in Python: left at 0), it is the run's seed."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for stable_baselines3.PPO, MaskablePPO and RecurrentPPO (n_steps, batch_size,
    learning_rate, ...; RecurrentPPO's LSTM size goes in policy_kwargs, e.g. {lstm_hidden_size = 64})."""
    dqn: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for stable_baselines3.DQN (buffer_size, train_freq, exploration_fraction, ...). SB3 counts
    train_freq in vector steps (n_envs transitions each), so unless gradient_steps is given it defaults to
    ceil(train_freq * n_envs / 4): one gradient step per 4 transitions per agent, SB3's single-env ratio
    (train_freq 4, gradient_steps 1), whatever n_envs is."""
    torch_threads: int = 1
    """CPU threads each learner process gives torch (small MLPs run fastest on one)."""
    tensorboard: bool = True
    """Write each teacher's SB3 TensorBoard log under tb/AGENT_N (SB3 numbers its runs: tb/agent_0_1)."""
    view: str = "local"
    """What each teacher observes: local (its own observation), global (its observation then the env's state():
    privileged teachers), history:K (its last K observations) or 'package.module:callable' mapping (env, agent,
    local observation) to a vector."""
    checkpoint_every: int = 0
    """Transitions per learner between checkpoints of every learner (0: about a tenth of steps; -1: none), rounded
    up to whole rollouts of every learner; a stopped or failed run continues from the last one with --resume."""

    def algo_of(self, agent: str) -> str:
        return self.agent_algo.get(agent, self.algo)

    def validate(self, agents: tuple[str, ...], action_spaces: Mapping[str, gym.Space] | None = None) -> None:
        """Settings that cannot work, refused before any learner starts (``action_spaces``: the env's, when known)."""
        for name in [self.algo, *self.agent_algo.values()]:
            if name not in ALGOS:
                raise UserError(f"unknown teacher algo {name!r}; use one of {sorted(ALGOS)}")
        unknown = sorted(set(self.agent_algo) - set(agents))
        if unknown:
            raise UserError(f"agent_algo names unknown agents {unknown}; the env's agents are {list(agents)}")
        for name in {self.algo_of(a) for a in agents}:  # SB3 would refuse an unknown key only once training starts
            kwargs = self.ppo if SETTINGS[name] == "ppo" else self.dqn
            known = set(inspect.signature(ALGOS[name]).parameters) - {"policy", "env"}
            unknown = sorted(set(kwargs) - known)
            if unknown:
                hint = (
                    "; the LSTM's settings go in policy_kwargs, e.g. {lstm_hidden_size = 64}"
                    if any(k.startswith(("lstm", "n_lstm", "shared_lstm", "enable_critic_lstm")) for k in unknown)
                    else ""
                )
                raise UserError(
                    f"teachers.{SETTINGS[name]} has keys {ALGOS[name].__name__} does not take: {unknown}{hint}"
                )
        algos = {self.algo_of(a) for a in agents}
        if self.dqn and "dqn" not in algos and "recurrent_ppo" in algos:
            raise UserError(
                f"teachers.dqn sets {sorted(self.dqn)}, but no agent trains with dqn: recurrent_ppo takes its keyword "
                "arguments from teachers.ppo; move them there or remove teachers.dqn"
            )
        if self.steps < 1 or self.n_envs < 1 or self.env_workers < 1:
            raise UserError("teachers.steps, teachers.n_envs and teachers.env_workers must be positive")
        if self.checkpoint_every < -1:
            raise UserError("teachers.checkpoint_every must be -1 (no checkpoints), 0 (about a tenth of steps) or a "
                            "number of transitions")  # fmt: skip
        # any agent may leave mid-episode (PettingZoo does not say which up front), so refuse it for every DQN
        if self.dqn.get("optimize_memory_usage") and any(self.algo_of(a) == "dqn" for a in agents):
            raise UserError(
                "teachers.dqn.optimize_memory_usage keeps no separate next observations, which replacing the steps "
                "after an agent left its episode needs; set dqn.optimize_memory_usage = false"
            )
        for agent, space in (action_spaces or {}).items():
            if not isinstance(space, gym.spaces.Box):
                continue
            if self.algo_of(agent) not in ("ppo", "recurrent_ppo"):
                raise UserError(f"agent {agent!r} has Box actions, which {self.algo_of(agent)} cannot learn; use ppo")
            open_dims = np.flatnonzero(~(np.isfinite(space.low) & np.isfinite(space.high)).reshape(-1)).tolist()
            if open_dims:
                raise UserError(
                    f"agent {agent!r} has a Box action space with no finite bound in dimensions {open_dims[:8]}; PPO's "
                    "Gaussian actions need finite low and high: declare them in the env's action space and clip "
                    "actions to them (as gymnasium's ClipAction wrapper does)"
                )
