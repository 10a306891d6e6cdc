"""Train one SB3 learner per agent, all together, on one shared env (see ``lockstep`` for how)."""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from tqdm import tqdm

from marl_distill.errors import UserError
from marl_distill.io import atomic_write, write_json
from marl_distill.multiagent import EnvSpec, JointVecEnv
from marl_distill.multiagent_proc import SubprocJointVecEnv
from marl_distill.teachers.lockstep import Coordinator, LearnerSpec, run_learners

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "maskable_ppo": MaskablePPO, "dqn": DQN}
"""Teacher algorithms by name; maskable_ppo (sb3-contrib) is PPO that only samples legal actions."""
SETTINGS = {"ppo": "ppo", "maskable_ppo": "ppo", "dqn": "dqn"}
"""Which TeacherConfig table holds each algorithm's keyword arguments."""
MANIFEST = "teachers.json"


@dataclass
class TeacherConfig:
    """How the per-agent teachers are trained."""

    algo: str = "ppo"
    """SB3 algorithm for every agent: ppo, dqn, or maskable_ppo (sb3-contrib; for envs with action masks)."""
    agent_algo: dict[str, str] = field(default_factory=dict)
    """Per-agent override, e.g. {agent_1 = "dqn"}: PPO and DQN agents train side by side."""
    steps: int = 50_000
    """Transitions each learner learns from (joint env steps x n_envs), rounded up to whole rollouts."""
    n_envs: int = 8
    """Env copies stepped together; each learner sees all of them as its own VecEnv."""
    env_workers: int = 1
    """Processes that step the env copies (1: in this process; 2+ spreads the copies, like SubprocVecEnv)."""
    seed: int = 0
    """Seeds the env copies (seed, seed+1, ...) and learner i's SB3 seed (seed + i)."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for stable_baselines3.PPO and MaskablePPO (n_steps, batch_size, learning_rate, ...)."""
    dqn: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for stable_baselines3.DQN (buffer_size, train_freq, exploration_fraction, ...)."""
    torch_threads: int = 1
    """CPU threads each learner process gives torch (small MLPs run fastest on one)."""
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
        if self.steps < 1 or self.n_envs < 1 or self.env_workers < 1:
            raise UserError("teachers.steps, teachers.n_envs and teachers.env_workers must be positive")


def _chunk(algo: str, kwargs: dict[str, Any]) -> int:
    """Env steps one learner takes between training phases: its learn() loop only ends on these bounds."""
    if SETTINGS[algo] == "ppo":
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
        lcm = math.lcm(lcm, _chunk(algo, getattr(cfg, SETTINGS[algo])))
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


def learner_specs(
    cfg: TeacherConfig, spec: EnvSpec, vec_steps: int, model_dir: Path, tb_dir: Path | None
) -> list[LearnerSpec]:
    specs = []
    for i, agent in enumerate(spec.agents):
        algo = cfg.algo_of(agent)
        kwargs = {"device": "cpu", **getattr(cfg, SETTINGS[algo])}
        specs.append(
            LearnerSpec(
                agent=agent,
                algo_cls=ALGOS[algo],
                kwargs=kwargs,
                seed=cfg.seed + i,
                n_envs=cfg.n_envs,
                observation_space=spec.observation_spaces[agent],
                action_space=spec.action_spaces[agent],
                total_timesteps=vec_steps * cfg.n_envs,
                save_path=str(model_dir / f"{agent}.zip"),
                tb_dir=str(tb_dir) if tb_dir is not None else None,
                torch_threads=cfg.torch_threads,
            )
        )
    return specs


def train_teachers(
    factory: Callable[[], Any],
    cfg: TeacherConfig,
    *,
    out_dir: Path | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train every agent's learner together; save ``out_dir/teachers/AGENT.zip`` when ``out_dir`` is given."""
    if cfg.env_workers > 1:
        venv: JointVecEnv | SubprocJointVecEnv = SubprocJointVecEnv(factory, cfg.n_envs, cfg.env_workers)
    else:
        venv = JointVecEnv(factory, cfg.n_envs, autoreset=True)
    try:
        cfg.validate(venv.agents)
        unmasked = sorted(a for a in venv.spec.masked if cfg.algo_of(a) != "maskable_ppo")
        if unmasked:
            warnings.warn(
                f"agents {unmasked} have action masks but learn with a maskless algorithm, so their teachers try "
                "illegal actions while training (the env's penalty is their only teacher); use maskable_ppo",
                UserWarning,
                stacklevel=2,
            )
        vec_steps = aligned_vec_steps(cfg, venv.agents)
        show = sys.stderr.isatty() if progress is None else progress
        bar = tqdm(total=vec_steps * cfg.n_envs, desc="teachers", unit="step", disable=not show, leave=False)
        coordinator = Coordinator(
            venv, [cfg.seed * 10_000 + i for i in range(cfg.n_envs)], on_step=lambda _: bar.update(cfg.n_envs)
        )
        tb_dir = out_dir / "tb" if (out_dir is not None and cfg.tensorboard) else None
        with tempfile.TemporaryDirectory(prefix="marl-distill-") as tmp:
            specs = learner_specs(cfg, venv.spec, vec_steps, Path(tmp), tb_dir)
            start = time.perf_counter()
            run_learners(coordinator, specs)
            seconds = time.perf_counter() - start
            bar.close()
            models = {s.agent: s.algo_cls.load(s.save_path, device="cpu") for s in specs}
            if out_dir is not None:
                for s in specs:
                    atomic_write(
                        Path(out_dir) / "teachers" / f"{s.agent}.zip",
                        lambda t, src=s.save_path: shutil.copyfile(src, t),
                        suffix=".tmp.zip",
                    )
    finally:
        venv.close()
    joint = coordinator.joint_steps
    result = TrainResult(models, joint, joint * cfg.n_envs * len(models), seconds, coordinator.episodes)
    if out_dir is not None:
        write_manifest(cfg, Path(out_dir), result)
    return result


def write_manifest(cfg: TeacherConfig, out_dir: Path, result: TrainResult) -> None:
    """Which algo loads each teacher zip, and what the run did."""
    write_json(
        out_dir / "teachers" / MANIFEST,
        {
            "agents": {a: {"algo": cfg.algo_of(a), "file": f"{a}.zip"} for a in result.models},
            "transitions_per_learner": result.joint_steps * cfg.n_envs,
            "joint_steps": result.joint_steps,
            "n_envs": cfg.n_envs,
            "seconds": round(result.seconds, 3),
        },
    )
