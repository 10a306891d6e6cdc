"""Teacher-driven states are labelled once per run: every memoryless student of the run, of any kind or size, is
fitted and scored on the same states and held-out episodes; students that act while collecting gather their own."""

from __future__ import annotations

import pytest
import torch
from helpers import teachers_for, three_targets

from marl_distill.distillation import DistillConfig, distill
from marl_distill.distillation.labels import shared_labels


@pytest.fixture(scope="module")
def fixed_teachers():
    return teachers_for(three_targets, seed=2)


def small(**settings) -> DistillConfig:
    return DistillConfig(**{"students": ["shared", "per-agent"], "hidden": [8], "samples": 1_200, "epochs": 2,
                            "seed": 5, **settings})  # fmt: skip


def test_a_runs_students_share_its_teacher_driven_states(fixed_teachers):
    both = distill(three_targets, fixed_teachers, small(), progress=False)
    records = {k: r.summary for k, r in both.items()}
    assert all(r["shared_labels"] for r in records.values())
    assert records["shared"]["labels_digest"] == records["per-agent"]["labels_digest"]
    # a student added later with other settings that leave collection alone sees the very same states
    later = distill(three_targets, fixed_teachers, small(students=["per-agent"], hidden=[4]), progress=False)
    assert later["per-agent"].summary["labels_digest"] == records["per-agent"]["labels_digest"]
    # and a per-agent student alone is the one distilled beside a shared student (nothing depends on who else ran)
    alone = distill(three_targets, fixed_teachers, small(students=["per-agent"]), progress=False)
    for p, q in zip(alone["per-agent"].student.net.parameters(), both["per-agent"].student.net.parameters()):
        assert torch.equal(p, q)
    # other collection settings, or another run seed, label other states
    for other in (small(samples=1_000), small(seed=6)):
        got = distill(three_targets, fixed_teachers, other, progress=False)
        assert got["shared"].summary["labels_digest"] != records["shared"]["labels_digest"]


def test_the_shared_states_are_the_teachers_own_and_split_by_whole_episodes(fixed_teachers):
    labels = shared_labels(three_targets, fixed_teachers, small())
    assert labels is not None and labels.held is not None
    assert len(labels.train) + len(labels.held) == 1_200
    assert not set(labels.train.episode.tolist()) & set(labels.held.episode.tolist())
    for agent, obs in labels.train.obs.items():  # labels are the teachers' logits on exactly these observations
        expected = fixed_teachers.logits({agent: obs})[agent]
        torch.testing.assert_close(labels.train.teacher_logits[agent], expected)


@pytest.mark.parametrize("settings", [{"sampling": "student", "iterations": 2}, {"arch": "gru", "seq_len": 4}])
def test_students_that_act_or_remember_while_collecting_gather_their_own(fixed_teachers, settings):
    """Student-driven states depend on the student; a recurrent student records its own state on every row."""
    assert shared_labels(three_targets, fixed_teachers, small(**settings)) is None
    got = distill(three_targets, fixed_teachers, small(**settings), progress=False)
    assert not any(r.summary["shared_labels"] for r in got.values())
    assert got["shared"].summary["labels_digest"] != got["per-agent"].summary["labels_digest"]
