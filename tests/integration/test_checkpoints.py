"""Checkpoints inside teacher training: a stop saves every learner at a common bound, resuming reaches the same
budget with DQN's replay buffer back, and a diverged learner stops the stage with one line."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import torch
from stable_baselines3 import DQN, PPO

from marl_distill.env.registry import resolve
from marl_distill.errors import UserError
from marl_distill.teachers.checkpoint import MARK, latest, load_learner, paths
from marl_distill.teachers.config import TeacherConfig
from marl_distill.teachers.train import CHECKPOINTS, train_teachers

GAME = ("marl_distill_envs.matrix_games:penalty_game", {"k": 25.0, "rounds": 5})


def _interrupt_after_first_checkpoint(folder) -> None:
    """SIGINT to this process once a checkpoint is marked (as a terminal's Ctrl-C would send it)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not (folder / MARK).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


def test_a_stopped_dqn_and_ppo_team_resumes_to_the_same_budget(tmp_path):
    factory = resolve(*GAME)
    cfg = TeacherConfig(
        algo="ppo",
        agent_algo={"agent_1": "dqn"},
        steps=6000,
        n_envs=4,
        checkpoint_every=400,
        ppo={"n_steps": 20, "batch_size": 40},
        dqn={"buffer_size": 40000, "learning_starts": 200, "train_freq": 4},
        tensorboard=False,
    )
    folder = tmp_path / CHECKPOINTS
    _interrupt_after_first_checkpoint(folder)
    with pytest.raises(KeyboardInterrupt):
        train_teachers(factory, cfg, out_dir=tmp_path)
    mark = latest(folder)
    step = mark["joint_steps"]
    assert step > 0 and step % 20 == 0 and not (tmp_path / "teachers").exists()
    files = {p.name for p in folder.iterdir()}
    assert files == {MARK, *(p.name for a in ("agent_0", "agent_1") for p in paths(folder, a, step).values())} - {
        paths(folder, "agent_0", step)["replay"].name  # PPO keeps no replay buffer
    }

    dqn, _ = load_learner(DQN, None, str(folder), "agent_1", step)
    assert dqn.num_timesteps == step * 4 and dqn.replay_buffer.size() == step  # every transition so far, kept

    result = train_teachers(factory, cfg, out_dir=tmp_path)
    assert result.resumed_at == [step] and result.joint_steps == 1500
    manifest = json.loads((tmp_path / "teachers" / "teachers.json").read_text())
    assert manifest["resumed_at_joint_step"] == [step] and manifest["transitions_per_learner"] == 6000
    assert DQN.load(tmp_path / "teachers" / "agent_1.zip").num_timesteps == 6000
    assert PPO.load(tmp_path / "teachers" / "agent_0.zip").num_timesteps == 6000
    assert not folder.exists()


def test_a_diverging_teacher_stops_the_stage_with_one_line(tmp_path):
    cfg = TeacherConfig(steps=4000, n_envs=4, ppo={"n_steps": 20, "batch_size": 40, "learning_rate": 1e30})
    with pytest.raises(UserError, match=r"teacher 'agent_\d' diverged: its weights became NaN or infinite"):
        train_teachers(resolve(*GAME), cfg, out_dir=tmp_path)
    assert not (tmp_path / "teachers").exists()


def test_a_checkpoint_of_another_budget_is_refused(tmp_path):
    factory = resolve(*GAME)
    cfg = TeacherConfig(steps=8000, n_envs=4, checkpoint_every=400, ppo={"n_steps": 20, "batch_size": 40})
    _interrupt_after_first_checkpoint(tmp_path / CHECKPOINTS)
    with pytest.raises(KeyboardInterrupt):
        train_teachers(factory, cfg, out_dir=tmp_path)
    cfg.steps = 16000
    with pytest.raises(UserError, match="another budget"):
        train_teachers(factory, cfg, out_dir=tmp_path)


def test_a_killed_learner_ends_the_stage_in_one_line_and_resume_continues(tmp_path):
    """SIGKILL (what the out-of-memory killer sends) to one learner process after a checkpoint."""
    import multiprocessing

    from marl_distill.errors import RunFailed

    factory = resolve(*GAME)
    cfg = TeacherConfig(steps=4000, n_envs=4, checkpoint_every=400, ppo={"n_steps": 20, "batch_size": 40})
    folder = tmp_path / CHECKPOINTS

    def kill() -> None:
        while not (folder / MARK).exists():
            time.sleep(0.02)
        victim = next(p for p in multiprocessing.active_children() if p.name == "learner-agent_1")
        os.kill(victim.pid, signal.SIGKILL)

    threading.Thread(target=kill, daemon=True).start()
    with pytest.raises(RunFailed, match="learner agent_1 died"):
        train_teachers(factory, cfg, out_dir=tmp_path)
    step = latest(folder)["joint_steps"]
    result = train_teachers(factory, cfg, out_dir=tmp_path)
    assert result.resumed_at == [step] and result.joint_steps * 4 == 4000


def test_an_interrupted_distillation_resumes_at_its_last_round_with_the_same_student(tmp_path):
    """Student-driven sampling in 3 rounds: Ctrl-C during round 2, then the same call finishes from round 2's
    start, and the student equals one distilled without a stop (weights, curves, budget)."""
    from helpers import teachers_for, three_targets

    from marl_distill.distillation import DistillConfig, distill
    from marl_distill.distillation.resume import FOLDER

    teachers = teachers_for(three_targets, steps=2000, seed=3)
    cfg = DistillConfig(students=["per-agent"], hidden=[16], samples=3000, epochs=30, sampling="student", seed=1)
    whole = distill(three_targets, teachers, cfg, out_dir=tmp_path / "whole", progress=False)["per-agent"]
    assert not (tmp_path / "whole" / "checkpoints").exists()

    saved = tmp_path / "cut" / FOLDER / "per-agent.pt"

    def watch() -> None:
        while not saved.exists():
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        distill(three_targets, teachers, cfg, out_dir=tmp_path / "cut", progress=False)
    assert saved.exists() and not (tmp_path / "cut" / "students" / "per-agent").exists()
    cut = distill(three_targets, teachers, cfg, out_dir=tmp_path / "cut", progress=False)["per-agent"]
    assert cut.history == whole.history and cut.summary == whole.summary
    for a, b in zip(cut.student.net.state_dict().values(), whole.student.net.state_dict().values()):
        assert torch.equal(a, b)
    assert not saved.exists()


def test_a_killed_env_worker_is_named_in_one_line():
    import numpy as np

    from marl_distill.env.subproc_joint_vec_env import SubprocJointVecEnv
    from marl_distill.errors import RunFailed

    venv = SubprocJointVecEnv(resolve(*GAME), 4, 2)
    try:
        venv.reset([0, 1, 2, 3])
        os.kill(venv.procs[1].pid, signal.SIGKILL)
        venv.procs[1].join()
        with pytest.raises(RunFailed, match="env worker process died"):
            venv.step({a: np.zeros(4, dtype=np.int64) for a in venv.agents})
    finally:
        venv.close()
