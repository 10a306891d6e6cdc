"""Action spaces the lab must carry end to end: Discrete with a start, and Box actions without finite bounds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from worlds import ShiftedTargetGame, UnboundedTarget

from marl_distill.cli import cli
from marl_distill.distillation import DistillConfig, distill
from marl_distill.evaluation import EvalConfig, evaluate_all
from marl_distill.policy.joint import RandomPolicy, select_actions
from marl_distill.policy.spec import EnvSpec
from marl_distill.teachers import TeacherConfig, TeacherTeam, train_teachers


def test_discrete_actions_with_a_start_reach_the_env_shifted_and_are_learned():
    # ShiftedTargetGame raises on any action outside Discrete(3, start=1): teachers, students and the random
    # baseline all pick 0..2 internally, and only the env sees 1..3
    ShiftedTargetGame.moves = 0
    cfg = TeacherConfig(steps=4_000, n_envs=8, seed=0, ppo={"n_steps": 64, "batch_size": 128, "learning_rate": 3e-3})
    models = train_teachers(ShiftedTargetGame, cfg, progress=False).models
    assert all(m.action_space == gym.spaces.Discrete(3) for m in models.values())  # SB3 counts from 0
    teachers = TeacherTeam(EnvSpec.of(ShiftedTargetGame()), models)
    students = distill(ShiftedTargetGame, teachers, DistillConfig(students=["shared"], samples=2_000, epochs=10))
    metrics = evaluate_all(
        ShiftedTargetGame,
        teachers,
        {k: r.student for k, r in students.items()},
        EvalConfig(episodes=40, mixed_teams=False, latency_repeats=5, latency_rounds=1),
        progress=False,
    )
    random, teacher = metrics["random"]["team_return"]["mean"], metrics["teacher"]["team_return"]["mean"]
    assert random < 5.0 and teacher > 8.0, (random, teacher)  # 2 agents x 5 rounds: chance 1/3, perfect 10
    assert metrics["shared"]["team_return"]["mean"] > 8.0
    assert ShiftedTargetGame.moves >= 2 * 4_000  # every one of them legal


def test_unbounded_box_actions_are_refused_before_training_and_random_actions_stay_finite(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli(["train-teachers", "worlds:UnboundedTarget", "--out", str(out), "--steps", "64", "--n-envs", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "agent_0" in err and "finite" in err
    assert not (out / "teachers").exists()
    spec = EnvSpec.of(UnboundedTarget())
    obs = {a: np.zeros((256, 1), np.float32) for a in spec.agents}
    actions, _ = select_actions(RandomPolicy(spec), obs, np.random.default_rng(0))
    for act in actions.values():
        assert np.isfinite(act).all() and (act[:, 1] >= 0).all() and (np.abs(act[:, 2]) <= 1).all()
        assert act.std(axis=0).min() > 0.3  # still random in every dimension
