"""Helpers several test folders share: untrained SB3 models for an env's spaces, briefly trained teachers,
a quick distil-and-evaluate, and the metrics.json keys every run must write. (The test worlds are in worlds.py.)"""

from __future__ import annotations

import gymnasium as gym
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN, PPO
from worlds import TargetGame

from marl_distill.distillation import DistillConfig, distill
from marl_distill.evaluation import EvalConfig, evaluate_all
from marl_distill.policy.spec import EnvSpec
from marl_distill.teachers import TeacherConfig, TeacherTeam, train_teachers


class Spaces(gym.Env):
    """A single-agent env with one agent's spaces: all an untrained SB3 model needs."""

    def __init__(self, obs: gym.Space, act: gym.Space) -> None:
        self.observation_space, self.action_space = obs, act

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def models_for(spec: EnvSpec, algo: str, scale: float = 100.0) -> dict:
    """One untrained SB3 model per agent, its actor's outputs scaled up so argmax ties and clipping both happen."""
    out = {}
    for i, a in enumerate(spec.agents):
        env = Spaces(spec.observation_spaces[a], spec.action_spaces[a])
        if algo == "dqn":
            model = DQN("MlpPolicy", env, buffer_size=64, learning_starts=0, seed=i, device="cpu")
        else:
            cls = MaskablePPO if algo == "maskable" else PPO
            model = cls("MlpPolicy", env, n_steps=16, batch_size=16, seed=i, device="cpu")
            with torch.no_grad():  # SB3 initialises the action head with gain 0.01
                model.policy.action_net.weight.mul_(scale)
        out[a] = model
    return out


FAST_PPO = {"n_steps": 64, "batch_size": 128, "n_epochs": 10, "learning_rate": 3e-3}


QUICK_EVAL = EvalConfig(episodes=40, mixed_teams=False, latency_repeats=5, latency_rounds=1)


def teachers_for(factory, *, steps: int = 6_000, seed: int = 0) -> TeacherTeam:
    """Per-agent PPO teachers trained briefly on ``factory``'s env."""
    cfg = TeacherConfig(steps=steps, n_envs=8, seed=seed, ppo=FAST_PPO)
    return TeacherTeam(EnvSpec.of(factory()), train_teachers(factory, cfg, progress=False).models)


def distill_and_evaluate(factory, teachers: TeacherTeam, *, epochs: int) -> tuple[dict, dict]:
    """A shared and a per-agent student distilled from ``teachers``, and metrics.json's dict for them."""
    results = distill(
        factory,
        teachers,
        DistillConfig(students=["shared", "per-agent"], samples=4_000, epochs=epochs),
        progress=False,
    )
    metrics = evaluate_all(factory, teachers, {k: r.student for k, r in results.items()}, QUICK_EVAL, progress=False)
    return results, metrics


def three_targets() -> TargetGame:
    return TargetGame(n_agents=3)


CONTRACT = {
    "team_return",
    "per_agent_return",
    "normalized_return",
    "action_agreement",
    "joint_action_agreement",
    "kl_teacher_student",
    "mixed_team",
    "params",
    "latency_us_per_joint_step",
    "bytes_on_disk",
    "paired_diff",
}


def untimed(x):
    """Timings out, and zip sizes: SB3 zips keep episode wall times (ep_info_buffer), so their bytes vary a little."""
    if isinstance(x, dict):
        skip = ("latency", "speedup", "evaluation_seconds", "bytes_on_disk")
        return {k: untimed(v) for k, v in x.items() if not k.startswith(skip)}
    return [untimed(v) for v in x] if isinstance(x, list) else x


TINY = """
name = "tiny"
[env]
id = "marl_distill_envs.matrix_games:penalty_game"
kwargs = { k = 25.0, rounds = 5 }
[teachers]
steps = 2000
n_envs = 4
ppo = { n_steps = 50, batch_size = 100, learning_rate = 0.003 }
[distill]
samples = 1000
epochs = 5
[evaluate]
episodes = 20
mixed_episodes = 10
latency_repeats = 20
latency_rounds = 1
"""
"""A tiny run on the penalty game: every stage in seconds."""
