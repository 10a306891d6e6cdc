"""Train one SB3 learner per agent, all together, on one shared env (see ``lockstep`` for how)."""

from __future__ import annotations

import inspect
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm

from marl_distill.env.joint_vec_env import make_parallel
from marl_distill.env.turn_based import TurnBasedParallel
from marl_distill.env.vector_world import open_joint_vec_env
from marl_distill.errors import UserError
from marl_distill.policy.spec import EnvSpec
from marl_distill.teachers.checkpoint import Keeper, Plan, every_steps, latest, tidy
from marl_distill.teachers.config import ALGOS, SETTINGS, TeacherConfig
from marl_distill.teachers.lockstep import Coordinator, LearnerSpec, run_learners
from marl_distill.utils import faults
from marl_distill.utils.files import atomic_write, write_json
from marl_distill.utils.progress import progress_bar
from marl_distill.utils.seeding import ENV_COPY, LEARNER, TEACHERS, int_seed, int_seeds
from marl_distill.utils.warn import warn_user

MANIFEST = "teachers.json"
LEARNER_SAVES = ".learners-"
"""Prefix of the folder in RUN where learners save their final models before they are copied into teachers/."""
CHECKPOINTS = "checkpoints/teachers"
"""Where a run folder keeps the teacher stage's checkpoints until its teachers are saved."""


def _train_freq(kwargs: dict[str, Any]) -> int:
    """DQN's train_freq in vector steps (lockstep training needs it counted in steps, not episodes)."""
    freq = kwargs.get("train_freq", 4)
    if isinstance(freq, (tuple, list)):
        if len(freq) != 2 or freq[1] != "step":
            raise UserError("dqn train_freq must count steps (e.g. 4 or [4, 'step']) for lockstep training")
        freq = freq[0]
    return int(freq)


def _chunk(algo: str, kwargs: dict[str, Any]) -> int:
    """Env steps one learner takes between training phases: its learn() loop only ends on these bounds."""
    if SETTINGS[algo] == "ppo":  # the algorithm's own default where not given (RecurrentPPO's is 128, PPO's 2048)
        return int(kwargs.get("n_steps", inspect.signature(ALGOS[algo]).parameters["n_steps"].default))
    return _train_freq(kwargs)


def learner_kwargs(cfg: TeacherConfig, agent: str) -> dict[str, Any]:
    """The SB3 keyword arguments of ``agent``'s learner: the user's, over our defaults (see ``TeacherConfig.dqn``)."""
    algo = cfg.algo_of(agent)
    user = getattr(cfg, SETTINGS[algo])
    defaults: dict[str, Any] = {"device": "cpu"}
    if SETTINGS[algo] == "dqn":
        defaults["gradient_steps"] = max(1, math.ceil(_train_freq(user) * cfg.n_envs / 4))
    return {**defaults, **user}


def learner_action_space(space: gym.Space) -> gym.Space:
    """What the learner's VecEnv declares: Discrete(n, start) becomes Discrete(n), because SB3's and our
    distributions index actions from 0; ``JointVecEnv.step`` adds ``start`` back where actions reach the env."""
    if isinstance(space, gym.spaces.Discrete) and int(space.start) != 0:
        return gym.spaces.Discrete(int(space.n))
    return space


def common_bound(cfg: TeacherConfig, agents: tuple[str, ...]) -> int:
    """Joint vector steps between the moments every learner is between rollouts (the lcm of their lengths)."""
    lcm = 1
    for agent in agents:
        algo = cfg.algo_of(agent)
        lcm = math.lcm(lcm, _chunk(algo, getattr(cfg, SETTINGS[algo])))
    return lcm


def aligned_vec_steps(cfg: TeacherConfig, agents: tuple[str, ...]) -> int:
    """Joint vector steps so every learner ends exactly on a rollout bound, at least ``steps / n_envs``."""
    lcm = common_bound(cfg, agents)
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
    """Training wall time, summed over the sessions a resumed stage took."""
    episodes: int
    resumed_at: list[int] = field(default_factory=list)
    """Joint steps at which training continued from a checkpoint (empty: trained in one go)."""


def learner_specs(
    cfg: TeacherConfig, spec: EnvSpec, vec_steps: int, model_dir: Path, tb_dir: Path | None, plan: Plan | None = None
) -> list[LearnerSpec]:
    """One learner per agent; learner i's SB3 seed is node (TEACHERS, LEARNER, i) of the run's seed tree."""
    specs = []
    for i, agent in enumerate(spec.agents):
        specs.append(
            LearnerSpec(
                agent=agent,
                algo_cls=ALGOS[cfg.algo_of(agent)],
                kwargs=learner_kwargs(cfg, agent),
                seed=int_seed(cfg.seed, TEACHERS, LEARNER, i),
                n_envs=cfg.n_envs,
                observation_space=spec.observation_spaces[agent],
                action_space=learner_action_space(spec.action_spaces[agent]),
                total_timesteps=vec_steps * cfg.n_envs,
                save_path=str(model_dir / f"{agent}.zip"),
                tb_dir=str(tb_dir) if tb_dir is not None else None,
                torch_threads=cfg.torch_threads,
                plan=plan,
            )
        )
    return specs


def refuse_turns_for_recurrent(factory: Callable[[], Any], cfg: TeacherConfig, agents: Any) -> None:
    """A RecurrentPPO learner steps its LSTM on every observation it gets, its waiting turns included, while the
    lab moves a state only when its agent acts (``policy.memory``): in a turn-based env the two would differ."""
    if not any(cfg.algo_of(a) == "recurrent_ppo" for a in agents):
        return
    env = make_parallel(factory)
    turns = isinstance(env, TurnBasedParallel)
    env.close()
    if turns:
        raise UserError("recurrent_ppo teachers cannot train in a turn-based env yet (their LSTM would step on "
                        "waiting turns while training, not while acting); use ppo or maskable_ppo")  # fmt: skip


def train_teachers(
    factory: Callable[[], Any],
    cfg: TeacherConfig,
    *,
    out_dir: Path | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train every agent's learner together; save ``out_dir/teachers/AGENT.zip`` when ``out_dir`` is given."""
    venv = open_joint_vec_env(factory, cfg.n_envs, autoreset=True, workers=cfg.env_workers)
    try:
        cfg.validate(venv.agents, venv.spec.action_spaces)
        refuse_turns_for_recurrent(factory, cfg, venv.agents)
        unmasked = sorted(a for a in venv.spec.masked if cfg.algo_of(a) != "maskable_ppo")
        if unmasked:
            warn_user(
                f"agents {unmasked} have action masks but learn with a maskless algorithm, so their teachers try "
                "illegal actions while training (the env's penalty is their only teacher); use maskable_ppo"
            )
        vec_steps = aligned_vec_steps(cfg, venv.agents)
        folder = Path(out_dir) / CHECKPOINTS if out_dir is not None and cfg.checkpoint_every >= 0 else None
        mark = _resumable(latest(folder), vec_steps, venv.agents, cfg.n_envs)
        tidy(folder, list(venv.agents), mark)
        at = mark["joint_steps"] if mark else 0
        bar = progress_bar(
            total=vec_steps * cfg.n_envs, initial=at * cfg.n_envs, desc="teachers", unit="step", progress=progress
        )
        # a resumed stage starts fresh episodes: its copies' seeds come from the step it resumes at
        seeds = int_seeds(cfg.seed, TEACHERS, ENV_COPY, *([at] if at else []), n=cfg.n_envs)
        coordinator = Coordinator(
            venv, seeds, lambda _: bar.update(cfg.n_envs), joint_steps=at, episodes=mark["episodes"] if mark else 0
        )
        tb_dir = out_dir / "tb" if (out_dir is not None and cfg.tensorboard) else None
        bound = common_bound(cfg, venv.agents)
        plan = (
            Plan(str(folder), every_steps(cfg.checkpoint_every, cfg.steps, cfg.n_envs, bound), bound, at)
            if folder
            else None
        )
        before = mark["seconds"] if mark else 0.0
        resumed = [*mark.get("resumed_at", []), at] if mark else []
        start = time.perf_counter()

        def record(step: int) -> dict[str, Any]:
            seconds = before + time.perf_counter() - start
            return {"episodes": coordinator.episodes, "seconds": round(seconds, 3), "resumed_at": resumed,
                    "vec_steps": vec_steps, "n_envs": cfg.n_envs, "agents": list(venv.agents)}  # fmt: skip

        if out_dir is not None:  # learners' final saves left by a command killed outright (this one holds the lock)
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            for stale in Path(out_dir).glob(f"{LEARNER_SAVES}*"):
                shutil.rmtree(stale, ignore_errors=True)
        with (  # final saves on the run's own disk: a full-disk line names the disk that filled
            tempfile.TemporaryDirectory(prefix=LEARNER_SAVES, dir=out_dir) as tmp,
            Keeper(plan, list(venv.agents), record) as keeper,
        ):
            specs = learner_specs(cfg, venv.spec, vec_steps, Path(tmp), tb_dir, plan)
            try:
                run_learners(coordinator, specs, keeper)
            except BaseException:  # the learners are stopped: what a cut-off save left is not a checkpoint
                tidy(folder, list(venv.agents), latest(folder))
                raise
            seconds = before + time.perf_counter() - start
            bar.close()
            models = {s.agent: s.algo_cls.load(s.save_path, device="cpu") for s in specs}
            if out_dir is not None:
                for s in specs:
                    atomic_write(
                        Path(out_dir) / "teachers" / f"{s.agent}.zip",
                        lambda t, src=s.save_path: shutil.copyfile(src, t),
                        suffix=".tmp.zip",
                        durable=True,  # the checkpoints are deleted next: a crash must not lose both
                    )
                    faults.point("teacher-saved")
    finally:
        venv.close()
    joint = coordinator.joint_steps
    result = TrainResult(models, joint, joint * cfg.n_envs * len(models), seconds, coordinator.episodes, resumed)
    if out_dir is not None:
        write_manifest(cfg, Path(out_dir), result)
        if folder is not None and folder.exists():  # the teachers are saved: the stage's checkpoints are spent
            shutil.rmtree(folder)
            if not any(folder.parent.iterdir()):
                folder.parent.rmdir()
    if keeper.stop_asked is not None:  # asked too late to stop the learners: the stage finished, the run stops
        raise KeyboardInterrupt
    return result


def _resumable(mark: dict[str, Any] | None, vec_steps: int, agents: tuple[str, ...], n_envs: int) -> dict | None:
    """A checkpoint this stage can continue from, refused where the budget, agents or env copies differ."""
    if mark is None:
        return None
    if (mark.get("vec_steps"), mark.get("agents"), mark.get("n_envs")) != (vec_steps, list(agents), n_envs):
        raise UserError(
            "the teacher checkpoint in this run folder was made with another budget, agents or n_envs; restore the "
            f"settings it was made with, or move the folder {CHECKPOINTS} out of the run folder to train the teachers "
            "afresh"
        )
    return mark


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
            "resumed_at_joint_step": result.resumed_at,
            "view": cfg.view,
        },
        durable=True,
    )
