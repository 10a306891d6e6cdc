"""The size table's choices: the Pareto front and the smallest student that holds 0.95."""

from __future__ import annotations

from marl_distill.evaluation.size import candidates, pareto, size_section, smallest_holding


def row(iqm: float, lo: float, nbytes: int, macs: int = 100) -> dict:
    return {"normalized_return": {"iqm": iqm, "ci95": [lo, iqm + 0.05]}, "weight_bytes": nbytes,
            "macs_per_joint_step": macs, "joint_action_agreement": {"mean": 0.5}}  # fmt: skip


ROWS = {
    "teacher": row(1.0, 0.98, 10_000, 5_000),
    "random": {"normalized_return": {"iqm": 0.0, "ci95": [0.0, 0.0]}, "weight_bytes": 0},
    "w4/shared": row(0.80, 0.60, 100, 50),
    "w4/teacher-int8": row(1.0, 0.97, 3_000, 5_000),
    "w8/teacher-int8": row(1.0, 0.97, 3_000, 5_000),  # the same teachers under another setting: shown once
    "w8/shared-int8": row(0.96, 0.90, 150, 90),
    "w8/shared": row(0.95, 0.93, 400, 90),  # dominated by the int8 copy: smaller and higher
    "w16/per-agent": row(0.97, 0.96, 900, 300),  # the same size as w16/shared and lower: off the front
    "w16/shared": row(0.99, 0.90, 900, 300),
}


def test_pareto_front_and_smallest_student_that_holds():
    points = candidates(ROWS)
    assert list(points)[0] == "w4/shared" and "random" not in points
    assert sum(p.endswith("teacher-int8") for p in points) == 1
    assert pareto(points) == ["w4/shared", "w8/shared-int8", "w16/shared", "teacher-int8"]
    assert smallest_holding(ROWS) == "w8/shared-int8"  # w4 is smaller but does not hold
    assert smallest_holding(ROWS, by="ci_low") == "w16/per-agent"  # w8's interval reaches below 0.95
    assert smallest_holding(ROWS, 0.999) is None
    text = size_section(ROWS)
    assert "Smallest of 5 students" in text and "**w8/shared-int8**" in text
    assert "**w16/per-agent**" in text and "1.50%" in text
