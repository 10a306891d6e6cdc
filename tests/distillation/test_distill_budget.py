"""Numbers a reviewer would sign: equal budgets across sampling schemes, held-out whole episodes, ensemble MSE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from worlds import TargetGame

from marl_distill.distillation import DistillConfig, distill
from marl_distill.distillation.collect import Buffer, Dataset, collect
from marl_distill.distillation.fit import fit, held_out
from marl_distill.distillation.losses import make_loss
from marl_distill.distillation.trainer import SUMMARY_KEYS, label_policy
from marl_distill.policy.joint import TeacherEnsemble
from marl_distill.policy.spec import EnvSpec
from marl_distill.students import StudentMeta, StudentNet
from marl_distill.teachers import TeacherConfig, TeacherTeam, train_teachers

ROUNDS = 5
"""TargetGame episodes last this many joint steps."""


def two_targets() -> TargetGame:
    return TargetGame(n_agents=2, rounds=ROUNDS)


@pytest.fixture(scope="module")
def dqn_teams() -> list[TeacherTeam]:
    """Two barely trained DQN teacher teams (different seeds): real teachers, cheap to build."""
    teams = []
    for seed in (0, 1):
        cfg = TeacherConfig(algo="dqn", steps=256, n_envs=4, seed=seed, dqn={"learning_starts": 64})
        teams.append(TeacherTeam(EnvSpec.of(two_targets()), train_teachers(two_targets, cfg, progress=False).models))
    return teams


def test_sampling_schemes_get_the_same_gradient_steps_and_labelled_states(dqn_teams, tmp_path):
    base = dict(students=["shared"], samples=1_001, epochs=3, batch_size=64, iterations=3, holdout=0.2)
    budget = DistillConfig(**base).total_grad_steps()
    assert budget == 3 * -(-800 // 64)  # epochs x the teacher-driven scheme's training rows over batch_size
    summaries = {}
    for sampling in ("teacher", "student", "mixed"):
        cfg = DistillConfig(**base, sampling=sampling)
        assert cfg.total_grad_steps() == budget  # the budget does not depend on the scheme
        result = distill(two_targets, dqn_teams[0], cfg, out_dir=tmp_path / sampling, progress=False)["shared"]
        summary = json.loads((tmp_path / sampling / "students" / "shared" / "distill.json").read_text())
        assert tuple(summary) == SUMMARY_KEYS and summary == result.summary
        history = json.loads((tmp_path / sampling / "students" / "shared" / "history.json").read_text())
        assert history[-1]["grad_steps"] == summary["grad_steps"] and len(history) == summary["epochs_run"]
        assert [h["grad_steps"] for h in history] == sorted({h["grad_steps"] for h in history})  # cumulative
        assert summary["undertrained"] == (summary["best_epoch"] == summary["epochs_run"])
        assert summary["rounds"] == (1 if sampling == "teacher" else 3)
        assert [r["grad_steps"] for r in result.rounds] == cfg.round_grad_steps()
        summaries[sampling] = summary
    for summary in summaries.values():
        assert summary["grad_steps"] == budget  # patience 0: every scheme spends the whole budget
        assert summary["labelled_states_per_agent"] == 1_001  # exactly, though 1,001 is no multiple of 8 copies
        assert summary["early_stopping"] is False


def test_held_out_rows_come_from_whole_episodes_disjoint_from_the_training_rows(dqn_teams):
    got = collect(two_targets, dqn_teams[0], samples=400, n_envs=8, seed=3, rng=np.random.default_rng(0))
    episodes = got.data.episode
    assert episodes is not None and len(episodes) == len(got.data) == 400
    ids, sizes = np.unique(episodes, return_counts=True)
    assert len(ids) == 400 // ROUNDS and set(sizes) == {ROUNDS}  # one id per env copy and episode
    train, held = got.data.split(0.2, np.random.default_rng(1))
    assert len(train) + len(held) == 400 and 0.15 <= len(held) / 400 <= 0.25
    assert set(train.episode).isdisjoint(held.episode)
    assert set(train.episode) | set(held.episode) == set(ids)
    # another draw holds out other episodes: the rng chooses them
    _, other = got.data.split(0.2, np.random.default_rng(2))
    assert set(other.episode) != set(held.episode)


def test_holdout_zero_turns_held_out_scoring_and_early_stopping_off(dqn_teams, tmp_path):
    cfg = DistillConfig(students=["per-agent"], samples=600, epochs=4, batch_size=64, holdout=0.0, patience=1)
    result = distill(two_targets, dqn_teams[0], cfg, out_dir=tmp_path, progress=False)["per-agent"]
    for row in result.history:
        assert row["held_loss"] is None and row["agreement"] is None and row["action_mse"] is None
    assert result.summary["grad_steps"] == cfg.total_grad_steps() == 4 * -(-600 // 64)  # the full budget
    assert result.summary["early_stopping"] is False
    assert result.summary["best_epoch"] == result.summary["epochs_run"] == 4  # the last weights are kept
    assert (tmp_path / "plots" / "distill_per-agent.png").exists()  # the plot copes without held-out rows


def test_fit_spends_its_steps_and_keeps_the_best_chunks_weights(dqn_teams):
    teachers = dqn_teams[0]
    data = collect(two_targets, teachers, samples=800, n_envs=8, seed=5, rng=np.random.default_rng(0)).data
    train, held = data.split(0.25, np.random.default_rng(0))
    # held-out labels that reverse the teachers' preferences: the better the fit, the worse the held-out loss,
    # so the best chunk is an early one and the budget's later chunks are spent without improving on it
    held = Dataset(held.obs, {a: -t for a, t in held.teacher_logits.items()}, episode=held.episode)
    spec = teachers.spec
    heads = {a: spec.head(a) for a in spec.agents}
    loss_fns = {a: make_loss("kl") for a in spec.agents}

    def run(patience: int):
        torch.manual_seed(0)
        net = StudentNet(StudentMeta.for_spec(spec, "shared", [16]))
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        kwargs = dict(steps=100, chunk=7, batch_size=32, patience=patience, rng=np.random.default_rng(0))
        return net, fit(net, train, held, loss_fns, heads, opt, **kwargs)

    net, fitted = run(patience=0)
    assert fitted.steps == 100 and len(fitted.history) == 15  # 14 chunks of 7 steps and one of 2
    assert [h["grad_steps"] for h in fitted.history][-2:] == [98, 100]
    losses = [h["held_loss"] for h in fitted.history]
    assert fitted.best == int(np.argmin(losses)) and fitted.best < len(losses) - 1
    assert held_out(net, held, loss_fns, heads)["held_loss"] == pytest.approx(min(losses), rel=1e-5)
    _, stopped = run(patience=1)
    assert stopped.steps < 100 and stopped.steps == stopped.history[-1]["grad_steps"]  # the steps it took


def test_buffers_keep_each_rows_episode_id_through_reservoir_sampling():
    buf = Buffer(500, np.random.default_rng(0))
    for chunk in range(6):
        ids = np.arange(chunk * 300, (chunk + 1) * 300)
        rows = ids.astype(np.float32)[:, None]
        buf.add(Dataset({"a": rows}, {"a": torch.as_tensor(rows)}, episode=ids // 5))
    kept = buf.data
    assert kept.episode is not None and len(kept) == 500
    np.testing.assert_array_equal(kept.episode, kept.obs["a"][:, 0].astype(np.int64) // 5)


def test_mse_on_an_ensemble_of_dqn_teams_regresses_on_their_mean_raw_q_values(dqn_teams):
    ensemble = TeacherEnsemble(dqn_teams)
    obs = {a: np.random.default_rng(4).random((32, 5), dtype=np.float32) for a in ensemble.spec.agents}
    targets = label_policy(ensemble, "mse")
    for agent, logits in targets.logits(obs).items():
        with torch.no_grad():
            q = [team.models[agent].policy.q_net(torch.as_tensor(obs[agent])) for team in dqn_teams]
        torch.testing.assert_close(logits * targets.logit_scale(agent), torch.stack(q).mean(dim=0))
    # kl and ce keep matching the members' averaged distributions
    mixture = label_policy(ensemble, "kl").logits(obs)
    for agent, logits in mixture.items():
        probs = torch.stack([torch.softmax(team.logits(obs)[agent], -1) for team in dqn_teams]).mean(dim=0)
        torch.testing.assert_close(logits.exp(), probs)
    cfg = DistillConfig(students=["per-agent"], loss="mse", samples=500, epochs=2, batch_size=64)
    history = distill(two_targets, ensemble, cfg, progress=False)["per-agent"].history
    assert history[0]["loss"] < 1.0, history[0]  # raw Q of barely trained nets is small; Q/0.01 is 10^4x larger


def test_a_minibatch_where_no_agent_acted_spends_its_step_without_fitting_or_logging():
    """Rows kept for alignment (another agent's turn) are never fitted; a batch made only of them leaves the weights
    as they were and logs no loss, and the budget is still spent (the loop ends)."""
    from marl_distill.policy.distributions import Categorical

    agents = ["a", "b"]
    net = StudentNet(StudentMeta("shared", agents, dict.fromkeys(agents, 3), dict.fromkeys(agents, 2), [4]))
    rng = np.random.default_rng(0)
    obs = {a: rng.normal(size=(40, 3)).astype(np.float32) for a in agents}
    labels = {a: torch.randn(40, 2) for a in agents}
    idle = Dataset(obs, labels, acting={a: np.zeros(40, dtype=bool) for a in agents})
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=0.1, foreach=True)
    heads = {a: Categorical(2) for a in agents}
    losses = {a: make_loss("kl") for a in agents}
    done = fit(net, idle, None, losses, heads, opt, steps=6, chunk=3, batch_size=8, patience=0, rng=rng)
    assert done.steps == 6 and [row["loss"] for row in done.history] == [None, None]
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    acted = Dataset(obs, labels, acting={"a": np.ones(40, dtype=bool), "b": np.zeros(40, dtype=bool)})
    done = fit(net, acted, None, losses, heads, opt, steps=6, chunk=3, batch_size=8, patience=0, rng=rng)
    assert all(row["loss"] > 0 for row in done.history)  # agent a's rows are fitted, b's skipped
    assert not all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
