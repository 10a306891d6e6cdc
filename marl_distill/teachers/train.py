"""Train one SB3 learner per agent, all together, on one shared env (see ``lockstep`` for how)."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from tqdm import tqdm

from marl_distill.errors import UserError
from marl_distill.io import atomic_write, write_json
from marl_distill.multiagent import JointVecEnv
from marl_distill.teachers.lockstep import AgentVecEnv, LearnerFailed, Lockstep

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "dqn": DQN}
MANIFEST = "teachers.json"


@dataclass
class TeacherConfig:
    """How the per-agent teachers are trained."""

    algo: str = "ppo"
    """SB3 algorithm for every agent: ppo or dqn."""
    agent_algo: dict[str, str] = field(default_factory=dict)
    """Per-agent override, e.g. {agent_1 = "dqn"}: PPO and DQN agents train side by side."""
    steps: int = 50_000
    """Transitions each learner learns from (joint env steps x n_envs), rounded up to whole rollouts."""
    n_envs: int = 8
    """Env copies stepped together; each learner sees all of them as its own VecEnv."""
    seed: int = 0
    """Seeds the env copies (seed, seed+1, ...) and learner i's SB3 seed (seed + i)."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for stable_baselines3.PPO (n_steps, batch_size, learning_rate, policy_kwargs, ...)."""
    dqn: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for stable_baselines3.DQN (buffer_size, train_freq, exploration_fraction, ...)."""
    tensorboard: bool = True
    """Write each teacher's SB3 TensorBoard log under tb/AGENT_1."""

    def algo_of(self, agent: str) -> str:
        return self.agent_algo.get(agent, self.algo)

    def validate(self, agents: tuple[str, ...]) -> None:
        for name in [self.algo, *self.agent_algo.values()]:
            if name not in ALGOS:
                raise UserError(f"unknown teacher algo {name!r}; use one of {sorted(ALGOS)}")
        unknown = sorted(set(self.agent_algo) - set(agents))
        if unknown:
            raise UserError(f"agent_algo names unknown agents {unknown}; the env's agents are {list(agents)}")
        if self.steps < 1 or self.n_envs < 1:
            raise UserError("teachers.steps and teachers.n_envs must be positive")


def _chunk(algo: str, kwargs: dict[str, Any]) -> int:
    """Env steps one learner takes between training phases: its learn() loop only ends on these bounds."""
    if algo == "ppo":
        return int(kwargs.get("n_steps", 2048))
    freq = kwargs.get("train_freq", 4)
    if isinstance(freq, (tuple, list)):
        if len(freq) != 2 or freq[1] != "step":
            raise UserError("dqn train_freq must count steps (e.g. 4 or [4, 'step']) for lockstep training")
        freq = freq[0]
    return int(freq)


def aligned_vec_steps(cfg: TeacherConfig, agents: tuple[str, ...]) -> int:
    """Joint vector steps so every learner ends exactly on a rollout bound, at least ``steps / n_envs``."""
    lcm = 1
    for agent in agents:
        algo = cfg.algo_of(agent)
        lcm = math.lcm(lcm, _chunk(algo, getattr(cfg, algo)))
    need = math.ceil(cfg.steps / cfg.n_envs)
    return math.ceil(need / lcm) * lcm


@dataclass
class TrainResult:
    """What a teacher-training run did."""

    models: dict[str, BaseAlgorithm]
    joint_steps: int
    """Vector steps of the joint env (each feeds n_envs transitions to every learner)."""
    agent_steps: int
    """Transitions summed over learners."""
    seconds: float
    episodes: int


def build_learners(cfg: TeacherConfig, lockstep: Lockstep, tb_dir: Path | None) -> dict[str, BaseAlgorithm]:
    models: dict[str, BaseAlgorithm] = {}
    for i, agent in enumerate(lockstep.agents):
        algo = cfg.algo_of(agent)
        kwargs = dict(getattr(cfg, algo))
        kwargs.setdefault("device", "cpu")
        try:
            models[agent] = ALGOS[algo](
                "MlpPolicy",
                AgentVecEnv(lockstep, i),
                seed=cfg.seed + i,
                tensorboard_log=str(tb_dir) if tb_dir is not None else None,
                verbose=0,
                **kwargs,
            )
        except TypeError as exc:
            raise UserError(f"bad {algo} settings for {agent} ({exc}); fix teachers.{algo}") from None
    return models


def train_teachers(
    factory: Callable[[], Any],
    cfg: TeacherConfig,
    *,
    out_dir: Path | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train every agent's learner together; save ``out_dir/teachers/AGENT.zip`` when ``out_dir`` is given."""
    venv = JointVecEnv(factory, cfg.n_envs, autoreset=True)
    agents = venv.agents
    cfg.validate(agents)
    vec_steps = aligned_vec_steps(cfg, agents)
    seeds = [cfg.seed * 10_000 + i for i in range(cfg.n_envs)]
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=vec_steps * cfg.n_envs, desc="teachers", unit="step", disable=not show, leave=False)
    lockstep = Lockstep(venv, agents, seeds, on_step=lambda _: bar.update(cfg.n_envs))
    tb_dir = out_dir / "tb" if (out_dir is not None and cfg.tensorboard) else None
    models = build_learners(cfg, lockstep, tb_dir)
    errors: list[BaseException] = []

    def run(index: int, agent: str) -> None:
        try:
            lockstep.acquire(index)
            models[agent].learn(total_timesteps=vec_steps * cfg.n_envs, tb_log_name=agent)
            lockstep.finish(index)
        except LearnerFailed:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
            lockstep.fail(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i, a), daemon=True) for i, a in enumerate(agents)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    bar.close()
    venv.close()
    if errors:
        raise errors[0]
    result = TrainResult(
        models,
        lockstep.joint_steps,
        lockstep.joint_steps * cfg.n_envs * len(agents),
        seconds,
        lockstep.episodes,
    )
    if out_dir is not None:
        save_teachers(models, cfg, out_dir, result)
    return result


def save_teachers(models: dict[str, BaseAlgorithm], cfg: TeacherConfig, out_dir: Path, result: TrainResult) -> None:
    """Each teacher as a plain SB3 zip, plus a manifest saying which algo loads it."""
    teacher_dir = out_dir / "teachers"
    for agent, model in models.items():
        atomic_write(teacher_dir / f"{agent}.zip", lambda tmp, m=model: m.save(tmp), suffix=".tmp.zip")
    write_json(
        teacher_dir / MANIFEST,
        {
            "agents": {a: {"algo": cfg.algo_of(a), "file": f"{a}.zip"} for a in models},
            "transitions_per_learner": result.joint_steps * cfg.n_envs,
            "joint_steps": result.joint_steps,
            "n_envs": cfg.n_envs,
            "seconds": round(result.seconds, 3),
        },
    )
