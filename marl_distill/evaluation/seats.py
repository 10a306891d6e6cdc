"""Per-seat figures, for games whose agents do not share one goal (zero-sum, mixed, general-sum).

A team sum means something only where the agents are paid for one goal; in a zero-sum game it is constant and
says nothing. There the headline is each agent's seat: the return of whoever sits in it, with its interval,
against the teachers in every other seat. The teachers' figure is the teacher team's own; random's and each
student's come from plays where only that seat changes hands, on the same episode seeds, so every seat figure is
paired with the teachers' episode by episode. Normalized per seat: (R − R_random) / (R_teacher − R_random) in
that seat, null unless the teacher beats random there significantly. Where a seat's episode returns are outcomes
(-1, 0, 1 only) they are also given as win / draw / loss rates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from marl_distill.evaluation.rollout import Rollouts
from marl_distill.evaluation.stats import excludes_zero, mean_ci, normalized, paired_diff

OUTCOMES = (-1.0, 0.0, 1.0)


def shared_goal(declared: bool | None, rolls: Sequence[Rollouts]) -> dict[str, Any]:
    """Do the agents share one goal? ``declared`` (``env.cooperative``) decides where set; otherwise they do when
    every agent's episode returns are identical in ``rolls`` (the teachers' and random's plays)."""
    if declared is not None:
        return {"value": bool(declared), "why": "declared by env.cooperative, the env or its registry entry"}
    firsts = [next(iter(roll.per_agent.values())) for roll in rolls]  # within each play, every agent alike
    same = all(np.allclose(r, first, atol=1e-6) for roll, first in zip(rolls, firsts) for r in roll.per_agent.values())
    why = (
        "every agent's return was identical"
        if same
        else "the agents' returns differ; set env.cooperative = true if they share one goal anyway"
    )
    return {"value": same, "why": why}


def _seat(own: np.ndarray, teacher: np.ndarray, random: np.ndarray, significant: bool, outcomes: bool, seed: int):
    """One policy in one seat: its return, normalized between random's and the teacher's in that seat (null
    unless the teacher beats random there significantly), and win / draw / loss where returns are outcomes."""
    lo, hi = float(random.mean()), float(teacher.mean())
    out: dict[str, Any] = {"return": mean_ci(own, seed=seed)}
    out["normalized"] = normalized(float(own.mean()), lo, hi) if significant else None
    if outcomes:
        out["win_draw_loss"] = {"win": float(np.mean(own > 0)), "draw": float(np.mean(own == 0)),
                                "loss": float(np.mean(own < 0))}  # fmt: skip
    return out


def per_seat(
    agents: Sequence[str],
    teacher: Rollouts,
    random_in: Mapping[str, Rollouts],
    students_in: Mapping[str, Mapping[str, Rollouts]],
    seed: int,
) -> dict[str, dict[str, Any]]:
    """metrics.json's ``per_seat`` for the teachers, random and every student: ``random_in[agent]`` and
    ``students_in[name][agent]`` are plays where only ``agent``'s seat is taken by random / the student."""
    out: dict[str, dict[str, Any]] = {"teacher": {}, "random": {}, **{name: {} for name in students_in}}
    for a in agents:
        t, r = teacher.per_agent[a], random_in[a].per_agent[a]
        gap = paired_diff(t, r)
        gap["significant"] = excludes_zero(gap)
        seats = {name: plays[a].per_agent[a] for name, plays in students_in.items()}
        values = np.unique(np.concatenate([t, r, *seats.values()]))
        outcomes = bool(np.isin(values, OUTCOMES).all())
        args = (t, r, gap["significant"], outcomes, seed)
        out["teacher"][a] = {**_seat(t, *args), "gap_over_random": gap}
        out["random"][a] = _seat(r, *args)
        for name, own in seats.items():
            out[name][a] = {**_seat(own, *args), "paired_diff": paired_diff(own, t)}
    return out
