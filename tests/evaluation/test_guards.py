"""Guards on published numbers: no normalized figure without a real teacher-random gap, flags on students above
their teachers, paired differences that are exact where they must be, and seeded worlds whose episodes vary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from marl_distill_envs.matrix_games import penalty_game
from worlds import FixedActions

from marl_distill.evaluation import EvalConfig, evaluate_all, run_episodes
from marl_distill.evaluation.report import write_report
from marl_distill.policy.joint import RandomPolicy
from marl_distill.policy.spec import EnvSpec

FAST = EvalConfig(episodes=40, mixed_episodes=20, latency_repeats=5, latency_rounds=1)


def factory():
    return penalty_game(k=25.0, rounds=5)


SPEC = EnvSpec.of(factory())


def Fixed(first: int, second: int) -> FixedActions:  # noqa: N802 - reads as the policy it builds
    """agent_0 always plays ``first``, agent_1 ``second``."""
    return FixedActions(SPEC, {"agent_0": first, "agent_1": second})


def test_normalized_return_is_null_with_the_reason_when_teachers_are_no_better_than_random(tmp_path):
    with pytest.warns(UserWarning, match="normalized return is null"):
        metrics = evaluate_all(factory, RandomPolicy(SPEC), {"student": Fixed(0, 2)}, FAST, progress=False)
    gap = metrics["teacher"]["gap_over_random"]
    assert not gap["significant"] and gap["ci95"][0] <= 0 <= gap["ci95"][1]
    for name in ("teacher", "random", "student"):
        assert metrics[name]["normalized_return"] is None, name
    assert metrics["student"]["mixed_team"]["min_normalized_return"] is None
    assert "not significantly above random" in metrics["_meta"]["normalized_return"]["reason"]
    report = write_report(tmp_path, metrics, "null").read_text()
    assert "Normalized return is null" in report and "not significant" in report


def test_paired_difference_is_exact_on_shared_episode_seeds(tmp_path):
    teacher = Fixed(0, 2)  # pays 10 x 0.1 per agent per round: team return 10 every episode
    metrics = evaluate_all(factory, teacher, {"copy": Fixed(0, 2), "timid": Fixed(1, 1)}, FAST, progress=False)
    assert metrics["copy"]["paired_diff"] == {"mean": 0.0, "ci95": [0.0, 0.0], "episodes": 40, "distinct_values": 1}
    timid = metrics["timid"]["paired_diff"]  # (1, 1) pays 2 x 0.1: team return 2, so -8 on every episode
    assert timid["mean"] == pytest.approx(-8.0) and timid["ci95"] == pytest.approx([-8.0, -8.0])
    # the worst mix carries its team return's CI; here every episode is alike, and the report says so
    mixed = metrics["timid"]["mixed_team"]
    worst = mixed["team_return_by_mix"][mixed["worst_mix"]]
    assert worst["distinct_values"] == 1 and worst["ci95"] == [worst["mean"], worst["mean"]]
    assert mixed["paired_diff_by_mix"][mixed["worst_mix"]]["mean"] == pytest.approx(worst["mean"] - 10.0)
    assert metrics["teacher"]["team_return"]["distinct_values"] == 1
    report = write_report(tmp_path, metrics, "paired").read_text()
    assert "10.00 (all 40 equal)" in report and "-8.00 (all 40 equal)" in report


def test_a_student_far_above_its_teachers_is_flagged(tmp_path):
    weak = Fixed(1, 1)  # team return 2, still well above random (about -3.1)
    metrics = evaluate_all(factory, weak, {"better": Fixed(0, 2)}, FAST, progress=False)
    assert metrics["teacher"]["gap_over_random"]["significant"]
    assert metrics["better"]["normalized_return"] > 1.05
    assert metrics["better"]["flags"] == ["normalized_above_1_05"]
    assert "⚠ better" in write_report(tmp_path, metrics, "flag").read_text()


def test_matrix_game_episodes_vary_with_the_seed_and_repeat_with_it():
    env = factory()
    first = [tuple(env.reset(seed=s)[0]["agent_0"]) for s in range(60)]
    assert len(set(first)) >= 8  # 9 previous joint actions + "none" to start from
    assert first == [tuple(env.reset(seed=s)[0]["agent_0"]) for s in range(60)]

    def copy_partner(obs):  # a deterministic policy that reads the start: play what the partner just played
        out = {}
        for agent, o in obs.items():
            lg = torch.zeros((len(o), 3))
            partner = o[:, 3:] if agent == "agent_0" else o[:, :3]
            lg[torch.arange(len(o)), torch.as_tensor(partner.argmax(1))] = 5.0
            out[agent] = lg
        return out

    policy = Fixed(0, 0)
    policy.logits = copy_partner
    roll = run_episodes(factory, policy, seeds=list(range(40)), n_envs=8, rng=np.random.default_rng(0))
    assert len(np.unique(roll.team)) > 1


def test_evaluation_seeds_come_from_the_run_seed():
    from marl_distill.evaluation.metrics import episode_seeds_of

    a, b = episode_seeds_of(EvalConfig(seed=0)), episode_seeds_of(EvalConfig(seed=1))
    assert len(set(a)) == len(a) == 200 and not set(a) & set(b)
    legacy = run_episodes(factory, RandomPolicy(SPEC), episodes=6, seed=7, n_envs=4, rng=np.random.default_rng(0))
    explicit = run_episodes(factory, RandomPolicy(SPEC), seeds=range(7, 13), n_envs=4, rng=np.random.default_rng(0))
    assert legacy.seeds == explicit.seeds == list(range(7, 13))
    np.testing.assert_array_equal(legacy.team, explicit.team)
