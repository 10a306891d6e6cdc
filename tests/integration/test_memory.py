"""A world that needs memory: on recall, a GRU student distilled from privileged (global-view) teachers keeps
what its own view shows only at the start, and an MLP student given the same teachers, budget and seeds cannot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from marl_distill import config as config_mod
from marl_distill.env.registry import resolve
from marl_distill.pipeline import api, runner

WORLD = {"N": 2, "symbols": 4, "cue_steps": 1, "max_cycles": 8}
PAID_STEPS = WORLD["max_cycles"] - WORLD["cue_steps"]
MEMORYLESS_BOUND = WORLD["N"] * PAID_STEPS / WORLD["symbols"]
"""The team's expected return can be no higher for a policy without memory (recall's module doc)."""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("memory") / "run"
    cfg = config_mod.build(
        {
            "name": "recall",
            "env": {"id": "recall", "kwargs": WORLD},
            "teachers": {"steps": 16_000, "n_envs": 8, "view": "global",
                         "ppo": {"n_steps": 64, "batch_size": 256, "learning_rate": 0.003, "gamma": 0.9}},
            "distill": {"students": ["shared"], "arch": "gru", "hidden": [32], "samples": 4000, "epochs": 30},
            "evaluate": {"episodes": 60, "mixed_teams": False, "latency_repeats": 5},
        }
    )  # fmt: skip
    runner.run(cfg, folder, progress=False, workers=1)
    api.distill(folder, name="mlp", student="shared", arch="mlp", progress=False)
    api.evaluate(folder, workers=1, progress=False)
    return folder


def test_gru_student_remembers_what_an_mlp_student_cannot(run):
    metrics = json.loads((run / "metrics.json").read_text())
    teacher, gru, mlp = (metrics[k]["team_return"] for k in ("teacher", "shared", "mlp"))
    assert teacher["mean"] >= 0.95 * WORLD["N"] * PAID_STEPS  # the privileged teachers solve it without memory
    assert gru["ci95"][0] > mlp["ci95"][1]  # intervals apart
    assert metrics["shared"]["normalized_return"] >= 0.9
    assert mlp["ci95"][0] <= MEMORYLESS_BOUND  # no better than the bound allows
    record = json.loads((run / "students" / "shared" / "distill.json").read_text())
    assert (record["arch"], record["seq_len"], record["sampling"]) == ("gru", 16, "student")
    assert "gru (sequences of 16 steps" in (run / "report.md").read_text()


def test_a_loaded_gru_student_plays_episode_after_episode_in_a_users_loop(run):
    student = api.load_student(run / "students" / "shared")  # acts on the local view, carries its own state
    env = resolve("recall", WORLD)()
    returns = []
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        student.reset()
        total = 0.0
        while env.agents:
            obs, rewards, _, _, _ = env.step(student.act(obs))
            total += sum(rewards.values())
        returns.append(total)
    assert np.mean(returns) >= 0.9 * WORLD["N"] * PAID_STEPS
