"""How small a student can go: every policy of a task by acting weight bytes, the Pareto front of normalized
return against size, and the smallest student that holds a return threshold.

Rows come from a benchmark's aggregated summary (``summary.aggregate``): IQM normalized return over runs with its
trimmed-mean t CI, medians of weight bytes (acting weights at their stored precision: float32, or int8 plus
scales for quantized graphs) and MACs per joint step. A teacher-int8 row appears once per setting in a grid (the
same teachers under every setting); it is shown once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marl_distill.evaluation.report import ci_cell, fmt

HOLD = 0.95
"""The normalized-return IQM a student must reach to "hold" the team's return."""
TEACHER_INT8 = "teacher-int8"


def candidates(rows: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Students (fp32 and int8) with a size and a normalized IQM, plus the teachers (fp32, int8 once)."""
    out: dict[str, Mapping[str, Any]] = {}
    for policy, r in rows.items():
        if policy == "random" or not r.get("weight_bytes") or r["normalized_return"]["iqm"] is None:
            continue
        if policy.endswith("/" + TEACHER_INT8):
            out.setdefault(TEACHER_INT8, r)
            continue
        out[policy] = r
    return dict(sorted(out.items(), key=lambda kv: (kv[1]["weight_bytes"], kv[0])))


def is_student(policy: str) -> bool:
    return policy not in ("teacher", TEACHER_INT8)


def pareto(points: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Policies no other policy beats on both size (fewer bytes) and normalized IQM (higher), smallest first."""
    front, best = [], float("-inf")
    order = sorted(points, key=lambda p: (points[p]["weight_bytes"], -points[p]["normalized_return"]["iqm"]))
    for policy in order:  # smallest first; of equal sizes the highest first, so a tie's lower one is dominated
        if points[policy]["normalized_return"]["iqm"] > best:
            front.append(policy)
            best = points[policy]["normalized_return"]["iqm"]
    return front


def smallest_holding(rows: Mapping[str, Any], hold: float = HOLD, *, by: str = "iqm") -> str | None:
    """The student with the fewest acting weight bytes whose IQM normalized return (``by="iqm"``), or the lower
    bound of its 95% CI (``by="ci_low"``, the stricter reading), is at least ``hold``."""
    for policy, r in candidates(rows).items():
        nr = r["normalized_return"]
        value = nr["iqm"] if by == "iqm" else nr["ci95"][0]
        if is_student(policy) and value is not None and value >= hold:
            return policy
    return None


def size_section(rows: Mapping[str, Any], hold: float = HOLD) -> str:
    """report.md's size table for one task: every policy by bytes, its share of the teachers' fp32 bytes and its
    MAC reduction, the Pareto front marked, and the smallest student holding ``hold``."""
    points = candidates(rows)
    teacher = rows.get("teacher", {})
    t_bytes, t_macs = teacher.get("weight_bytes"), teacher.get("macs_per_joint_step")
    if not t_bytes or len(points) < 3:
        return ""
    front = set(pareto(points))
    head = ["policy", "weight bytes", "% of teachers' fp32", "MACs / joint step", "× fewer MACs"]
    head += ["normalized return, IQM [95% CI]", "joint agreement", "Pareto"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for policy, r in points.items():
        macs = r.get("macs_per_joint_step")
        cells = [policy, f"{int(r['weight_bytes']):,}", f"{100 * r['weight_bytes'] / t_bytes:.2f}%"]
        cells += [f"{int(macs):,}" if macs else "–", fmt(t_macs / macs, 1) if macs and t_macs else "–"]
        agreement = r.get("joint_action_agreement", {}).get("mean")
        cells += [ci_cell(r["normalized_return"], 3, key="iqm"), fmt(agreement, 3)]
        cells.append("●" if policy in front else "")
        lines.append("| " + " | ".join(cells) + " |")
    best = smallest_holding(rows, hold)
    n_students = sum(is_student(p) for p in points)
    if best is None:
        verdict = f"No student reaches an IQM normalized return of {hold}."
    else:
        r = points[best]
        macs = r.get("macs_per_joint_step")
        verdict = (
            f"Smallest of {n_students} students with IQM normalized return ≥ {hold}: **{best}**, "
            f"{ci_cell(r['normalized_return'], 3, key='iqm')}, {int(r['weight_bytes']):,} weight bytes "
            f"({100 * r['weight_bytes'] / t_bytes:.2f}% of the teachers' fp32 actors)"
            + (f", {t_macs / macs:.1f}× fewer MACs per joint step." if macs and t_macs else ".")
        )
    strict = smallest_holding(rows, hold, by="ci_low")
    if strict is None:
        verdict += f" No student's 95% CI lower bound reaches {hold}."
    elif strict != best:
        r = points[strict]
        verdict += (
            f" Read strictly (its CI's lower bound ≥ {hold}): **{strict}**, "
            f"{ci_cell(r['normalized_return'], 3, key='iqm')}, {int(r['weight_bytes']):,} bytes "
            f"({100 * r['weight_bytes'] / t_bytes:.2f}%)."
        )
    note = (
        "Weight bytes: the acting weights at their stored precision (int8 rows: int8 weights plus their scales and "
        "zero points); medians over runs. MACs are the same for a student and its int8 copy. ● marks the Pareto "
        "front (no other policy is both smaller and higher). Every student was screened on the same seeds and "
        "episodes that give its interval, so the named one is the best-looking of many: its figure leans "
        "optimistic, and neither reading corrects for the number of candidates."
    )
    return "\n".join(lines) + "\n\n" + verdict + "\n\n" + note + "\n"
