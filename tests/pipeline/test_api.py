"""The Python API: the CLI's commands as functions on one code path, and trained teams acting on raw env
observations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, untimed

import marl_distill as md
from marl_distill.cli import cli


def test_the_api_and_the_cli_write_the_same_run(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    off = "evaluate.onnx=false"
    metrics = md.run(tmp_path / "tiny.toml", out=tmp_path / "api", overrides=[off], progress=False)
    assert cli(["run", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "cli"), "--set", off]) == 0
    from_cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert untimed(metrics) == untimed(from_cli)
    records = metrics["_meta"]["students"]  # both students fitted on the run's teacher-driven states, labelled once
    assert (
        records["shared"]["shared_labels"]
        and records["shared"]["labels_digest"] == records["per-agent"]["labels_digest"]
    )
    with pytest.raises(md.UserError, match="did you mean evaluate.episodes"):
        md.run(tmp_path / "tiny.toml", out=tmp_path / "x", overrides=["evaluate.episode=3"])
    assert not (tmp_path / "x").exists()


def test_train_distill_evaluate_and_act_on_raw_observations(tmp_path):
    from marl_distill_envs.matrix_games import penalty_game

    teachers = md.TeacherConfig(steps=2000, n_envs=4, ppo={"n_steps": 50, "batch_size": 100, "learning_rate": 0.003})
    run = md.train_teachers("penalty_game", out=tmp_path / "run", teachers=teachers, env_kwargs={"rounds": 5})
    folder, changed = md.distill(run, student="per-agent", samples=1000, epochs=10, hidden=[16], progress=False)
    assert folder == run / "students" / "per-agent" and "distill.hidden: [32] -> [16]" in changed
    metrics = md.evaluate(run, episodes=10, progress=False)
    assert metrics["per-agent"]["joint_action_agreement"] >= 0.9

    loaded = md.load_run(run)
    assert set(loaded.students) == {"per-agent"} and loaded.metrics["per-agent"] == metrics["per-agent"]
    student, team = loaded.students["per-agent"], md.load_teachers(run)
    env = penalty_game(rounds=5)  # the user's own env, its own observations
    observations, _ = env.reset(seed=0)
    agree = 0
    while env.agents:
        actions = student.act(observations)
        assert set(actions) == set(env.agents) and all(env.action_space(a).contains(x) for a, x in actions.items())
        agree += actions == team.act(observations)
        observations, *_ = env.step(actions)
    assert agree >= 4  # the student acts as its teachers do on (nearly) every step of the episode
    copies = [penalty_game(rounds=5).reset(seed=k)[0] for k in range(6)]  # six copies acted on in one call
    together = student.act_batch({a: np.stack([o[a] for o in copies]) for a in env.possible_agents})
    assert all(together[a].shape == (6,) for a in env.possible_agents)
    assert [{a: int(x[k]) for a, x in together.items()} for k in range(6)] == [student.act(o) for o in copies]
    one_mask = {a: np.ones(env.action_space(a).n, dtype=bool) for a in env.possible_agents}
    with pytest.raises(md.UserError, match=r"needs \(6, actions\), one row of legal actions per copy"):
        student.act_batch({a: np.stack([o[a] for o in copies]) for a in env.possible_agents}, masks=one_mask)
    assert all(len(x) == 2 for x in student.act_batch({a: np.stack([copies[0][a]] * 2) for a in copies[0]}).values())
    one_row = {a: m[None] for a, m in one_mask.items()}  # act takes one copy's mask as (actions,) or (1, actions)
    assert student.act(copies[0], masks=one_row) == student.act(copies[0], masks=one_mask) == student.act(copies[0])
    with pytest.raises(md.UserError, match=r"needs \(1, actions\)"):
        student.act_batch({a: copies[0][a][None] for a in copies[0]}, masks=one_mask)
    observations, _ = env.reset(seed=1)
    sampled = student.act(observations, deterministic=False)  # a draw from the student's distribution
    assert all(env.action_space(a).contains(x) for a, x in sampled.items())
    with pytest.raises(md.UserError, match="no agent 'nobody'"):
        student.act({"nobody": np.zeros(3)})
    with pytest.raises(md.UserError, match="this run's students: per-agent"):  # a misspelt student is named
        md.load_student(run / "students" / "per-agnet")


def test_a_warning_names_the_callers_line_not_a_line_of_the_package(tmp_path):
    """Python names the line ``stacklevel`` frames up; through md's layers a fixed level named the runner."""
    teachers = md.TeacherConfig(steps=200, n_envs=2, ppo={"n_steps": 50, "batch_size": 50})
    with pytest.warns(UserWarning, match="maskless algorithm") as warned:  # tictactoe masks actions; PPO does not
        md.train_teachers("pettingzoo.classic.tictactoe_v3:env", out=tmp_path / "run", teachers=teachers)
    ours = [w for w in warned if "maskless" in str(w.message)]
    assert {Path(w.filename).resolve() for w in ours} == {Path(__file__).resolve()}, [w.filename for w in ours]
