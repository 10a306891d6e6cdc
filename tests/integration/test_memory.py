"""A world that needs memory: on recall, GRU students distilled from RecurrentPPO teachers, or from privileged
(global-view) MLP teachers, keep what their own view shows only at the start; MLP students given the same
teachers, budget and seeds cannot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sb3_contrib import RecurrentPPO

from marl_distill import config as config_mod
from marl_distill.env.registry import resolve
from marl_distill.errors import UserError
from marl_distill.pipeline import api, runner

WORLD = {"N": 2, "symbols": 4, "cue_steps": 1, "max_cycles": 8}
PAID_STEPS = WORLD["max_cycles"] - WORLD["cue_steps"]
MEMORYLESS_BOUND = WORLD["N"] * PAID_STEPS / WORLD["symbols"]
"""The team's expected return can be no higher for a policy without memory (recall's module doc)."""


def recall_run(folder: Path, world: dict, teachers: dict, mlp_kinds: tuple[str, ...]) -> Path:
    """A recall run with ``teachers``, a shared GRU student, and an MLP student of each of ``mlp_kinds`` at the
    same budget (named mlp-KIND), all evaluated together."""
    cfg = config_mod.build(
        {
            "name": "recall",
            "env": {"id": "recall", "kwargs": world},
            "teachers": {"n_envs": 8, **teachers},
            "distill": {"students": ["shared"], "arch": "gru", "hidden": [32], "samples": 4000, "epochs": 30},
            "evaluate": {"episodes": 60, "mixed_teams": False, "latency_repeats": 5, "latency_rounds": 1},
        }
    )
    runner.run(cfg, folder, progress=False, workers=1)
    for kind in mlp_kinds:
        api.distill(folder, name=f"mlp-{kind}", student=kind, arch="mlp", progress=False)
    api.evaluate(folder, workers=1, progress=False)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Privileged (global-view) MLP teachers: they need no memory, the cues are in the state."""
    ppo = {"n_steps": 64, "batch_size": 256, "learning_rate": 0.003, "gamma": 0.9}
    teachers = {"steps": 16_000, "view": "global", "ppo": ppo}
    return recall_run(tmp_path_factory.mktemp("memory") / "run", WORLD, teachers, ("shared",))


def test_gru_student_remembers_what_an_mlp_student_cannot(run):
    metrics = json.loads((run / "metrics.json").read_text())
    teacher, gru, mlp = (metrics[k]["team_return"] for k in ("teacher", "shared", "mlp-shared"))
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


def test_a_gru_student_acts_on_many_copies_at_once_as_on_each_alone(run):
    """act_batch keeps one state per copy: the actions of four copies in one call are those of four students
    each playing its own copy, over two episodes (the second after ``reset(copies)``)."""
    batch = api.load_student(run / "students" / "shared")
    alone = [api.load_student(run / "students" / "shared") for _ in range(4)]
    envs = [resolve("recall", WORLD)() for _ in range(4)]
    for episode in range(2):
        obs = [env.reset(seed=10 * episode + k)[0] for k, env in enumerate(envs)]
        batch.reset(np.arange(4))
        for student in alone:
            student.reset()
        hits = 0
        while envs[0].agents:
            together = batch.act_batch({a: np.stack([o[a] for o in obs]) for a in envs[0].agents})
            for k, (env, student) in enumerate(zip(envs, alone)):
                one = student.act(obs[k])
                assert {a: int(together[a][k]) for a in one} == {a: int(x) for a, x in one.items()}
                obs[k], rewards, _, _, _ = env.step(one)
                hits += sum(rewards.values()) > 0
        assert hits > 0
    three = {a: np.stack([o[a] for o in obs[:3]]) for a in envs[0].possible_agents}
    with pytest.raises(UserError, match="holds the states of 4 copies but got 3"):
        batch.act_batch(three)  # silently zeroed states would cut the four episodes short
    with pytest.raises(UserError, match="pass a 0/1 mask as .astype"):
        batch.reset(np.array([0, 1, 1, 0]))  # numpy would read these as indices 0 and 1
    with pytest.raises(UserError, match="pass a 0/1 mask as .astype"):
        batch.reset(np.array([1, 0, 0, 1]))  # distinct, yet still a mask: indices 1 and 0 would reset other copies
    # A bool mask restarts exactly its copies: copies 1 and 2 act as fresh students, 0 and 3 carry on.
    first = [envs[k].reset(seed=100 + k)[0] for k in range(4)]
    for student in alone:
        student.reset()
    second = [envs[k].step(alone[k].act(first[k]))[0] for k in range(4)]  # alone[k] has stepped once
    batch.reset()
    batch.act_batch({a: np.stack([o[a] for o in first]) for a in envs[0].possible_agents})
    batch.reset(np.array([False, True, True, False]))
    together = batch.act_batch({a: np.stack([o[a] for o in second]) for a in envs[0].possible_agents})
    for k in (1, 2):
        alone[k].reset()
    for k in range(4):
        assert {a: int(together[a][k]) for a in second[k]} == {a: int(x) for a, x in alone[k].act(second[k]).items()}
    batch.reset()
    assert all(len(x) == 3 for x in batch.act_batch(three).values())  # after reset(), another number of copies


SHORT = {"N": 2, "symbols": 3, "cue_steps": 1, "max_cycles": 6}


@pytest.fixture(scope="module")
def recurrent_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RecurrentPPO teachers on the local view (they need their memory too), a GRU student and two MLP ones."""
    ppo = {"n_steps": 32, "batch_size": 64, "n_epochs": 4, "learning_rate": 0.003, "gamma": 0.9,
           "policy_kwargs": {"lstm_hidden_size": 16}}  # fmt: skip
    teachers = {"algo": "recurrent_ppo", "steps": 6000, "ppo": ppo}
    return recall_run(tmp_path_factory.mktemp("memory") / "recurrent", SHORT, teachers, ("shared", "per-agent"))


def test_gru_student_of_recurrent_teachers_beats_every_mlp_student(recurrent_run):
    metrics = json.loads((recurrent_run / "metrics.json").read_text())
    best = (SHORT["max_cycles"] - SHORT["cue_steps"]) * SHORT["N"]
    assert metrics["teacher"]["team_return"]["mean"] >= 0.9 * best  # the LSTM teachers remember
    gru = metrics["shared"]["team_return"]
    mlps = [metrics[f"mlp-{kind}"]["team_return"] for kind in ("shared", "per-agent")]
    assert gru["ci95"][0] > max(m["ci95"][1] for m in mlps)
    assert metrics["shared"]["normalized_return"] >= 0.9
    assert metrics["teacher"]["acting_runtime"].startswith("torch")  # the LSTM acts through torch, said so


def test_recurrent_teachers_reload_with_plain_sb3_contrib(recurrent_run):
    env = resolve("recall", SHORT)()
    model = RecurrentPPO.load(recurrent_run / "teachers" / "agent_0.zip", device="cpu")  # nothing of ours
    obs, _ = env.reset(seed=3)
    state, start, hits = None, np.ones(1, dtype=bool), 0
    while env.agents:
        action, state = model.predict(obs["agent_0"], state=state, episode_start=start, deterministic=True)
        start = np.zeros(1, dtype=bool)
        obs, rewards, _, _, _ = env.step({"agent_0": int(action), "agent_1": 0})
        hits += env.t > SHORT["cue_steps"] and int(action) == env.cues[0]
    assert hits == SHORT["max_cycles"] - SHORT["cue_steps"]  # it recalls its cue at every paid step
