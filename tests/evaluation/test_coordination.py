"""Mixed teams catch what returns miss: two conventions, each fine alone, that break when mixed."""

from __future__ import annotations

import numpy as np
import pytest
from marl_distill_envs.matrix_games import penalty_game
from worlds import FixedActions

from marl_distill.distillation import DistillConfig, distill
from marl_distill.evaluation import EvalConfig, evaluate_all
from marl_distill.policy.spec import EnvSpec


def Convention(spec: EnvSpec, first: int) -> FixedActions:  # noqa: N802 - reads as the policy it builds
    """A fixed joint policy for the penalty game: agent_0 plays ``first``, agent_1 plays ``2 - first``.

    (0, 2) and (2, 0) both pay 10; a team that mixes the two conventions plays (0, 0) or (2, 2) and pays -k.
    """
    return FixedActions(spec, {"agent_0": first, "agent_1": 2 - first})


def test_mixed_teams_expose_a_convention_that_returns_hide():
    factory = lambda: penalty_game(k=25.0, rounds=5)  # noqa: E731
    spec = EnvSpec.of(factory())
    teacher_a, teacher_b = Convention(spec, 0), Convention(spec, 2)
    # a real student, distilled from convention B, then judged against teacher A
    student_b = distill(
        factory, teacher_b, DistillConfig(students=["shared"], samples=2_000, epochs=10), progress=False
    )["shared"].student
    metrics = evaluate_all(
        factory,
        teacher_a,
        {"student_b": student_b},
        EvalConfig(episodes=20, mixed_episodes=20, latency_repeats=5, latency_rounds=1),
        progress=False,
    )
    m = metrics["student_b"]
    assert m["normalized_return"] > 0.95  # on its own the student plays a perfect convention: returns look fine
    assert m["per_agent_return"] == metrics["teacher"]["per_agent_return"]  # per-agent returns match too
    assert m["joint_action_agreement"] < 0.05  # ... but never the teacher's
    assert m["mixed_team"]["min_normalized_return"] < -1.0  # and next to a teacher it miscoordinates
    assert np.isclose(m["mixed_team"]["by_mix"]["agent_0"], m["mixed_team"]["by_mix"]["agent_1"])
    worst = m["mixed_team"]["team_return_by_mix"][m["mixed_team"]["worst_mix"]]  # with its own interval
    assert worst["ci95"][0] <= worst["mean"] <= worst["ci95"][1] and worst["episodes"] == 20
    assert m["paired_diff"]["mean"] == pytest.approx(0.0, abs=0.5)  # alone it scores what the teachers score


def test_cross_seed_play_exposes_students_whose_conventions_drifted():
    factory = lambda: penalty_game(k=25.0, rounds=5)  # noqa: E731
    spec = EnvSpec.of(factory())
    cfg = DistillConfig(students=["shared"], samples=2_000, epochs=10)
    # two "seeds" of the same pipeline that settled on different conventions
    student_a = distill(factory, Convention(spec, 0), cfg, progress=False)["shared"].student
    student_b = distill(factory, Convention(spec, 2), cfg, progress=False)["shared"].student
    metrics = evaluate_all(
        factory,
        Convention(spec, 0),
        {"shared": student_a},
        EvalConfig(episodes=20, mixed_episodes=20, latency_repeats=5, latency_rounds=1),
        cross_play={"seed_b": {"shared": student_b}},
        cross_teachers={"seed_b": Convention(spec, 2)},
        progress=False,
    )
    m = metrics["shared"]
    assert m["normalized_return"] > 0.95 and m["mixed_team"]["min_normalized_return"] > 0.95  # fine with its own
    assert m["cross_seed"]["seed_b"]["min_normalized_return"] < -1.0  # but not with the other seed's student
    # ... and the teachers of the two seeds miscoordinate just as badly: the drift was theirs, not distillation's
    teachers = metrics["teacher"]["cross_seed"]["seed_b"]
    assert set(teachers["by_mix"]) == {"agent_0", "agent_1"}
    assert teachers["min_normalized_return"] == pytest.approx(m["cross_seed"]["seed_b"]["min_normalized_return"])
    assert teachers["paired_diff_by_mix"][teachers["worst_mix"]]["mean"] < 0
