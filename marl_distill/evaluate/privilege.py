"""Privileged teachers against local ones: what the global view is worth, and how much of it local students keep.

A benchmark grid whose tasks share an env and differ in the teachers' view (``teachers.view``) gives, per seed and
on the same evaluation episodes (a run's episode seeds come from its run seed, whatever the view): local-view
teachers L, privileged teachers G, the random policy R, and students distilled from each. Per seed this module
forms the privilege gap G − L, every policy's return minus L, its return normalized against each teacher team
((x − R) / (T − R)), and the fraction of the gap a student from G recovers, (S − L) / (G − L); each is averaged
over seeds with a Student-t interval over seeds (paired: both sides of a difference share the seed's episodes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from marl_distill.evaluate.report import ci_cell
from marl_distill.evaluate.stats import METHODS, t_ci

LOCAL = "local"


def task_views(runs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(env, task) -> the teachers' view its runs record (local for runs made before views existed)."""
    out = {}
    for run in runs:
        meta = run["metrics"]["_meta"]
        out[(meta["env"], run["task"])] = (meta.get("views") or {}).get("teachers", LOCAL)
    return out


def pairs(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(env, local task, privileged task) for every env that has tasks of both kinds."""
    views = task_views(runs)
    found = []
    for env in sorted({e for e, _ in views}):
        local = sorted(t for (e, t), v in views.items() if e == env and v == LOCAL)
        other = sorted(t for (e, t), v in views.items() if e == env and v != LOCAL)
        found += [(env, local[0], t) for t in other] if local else []
    return found


def _series(by_seed: Mapping[str, Mapping[str, Any]], seeds: Sequence[str]) -> np.ndarray:
    return np.array([by_seed.get(s, {}).get("team_return", np.nan) for s in seeds], dtype=float)


def _guarded(by_seed: Mapping[str, Mapping[str, Any]], seeds: Sequence[str]) -> np.ndarray:
    """Per seed: whether that run's teachers were significantly above random (its normalized return exists)."""
    return np.array([by_seed.get(s, {}).get("normalized_return") is not None for s in seeds])


def compare(results: Mapping[str, Any], env: str, local: str, privileged: str) -> dict[str, Any]:
    """The comparison of one pair of tasks, over the seeds both have (see the module docstring). A return
    normalized against a team is left out for a seed where that team was not significantly above random (the
    guard every normalized figure obeys); the gap recovered is null unless the privilege gap is significant."""
    lt, gt = results[env][local], results[env][privileged]
    seeds = sorted(set(lt["teacher"]) & set(gt["teacher"]))
    L, G, R = _series(lt["teacher"], seeds), _series(gt["teacher"], seeds), _series(lt["random"], seeds)
    L_over = np.where(_guarded(lt["teacher"], seeds), L - R, np.nan)
    G_over = np.where(_guarded(gt["teacher"], seeds), G - R, np.nan)
    gap = G - L
    gap_ci = t_ci(gap)
    significant = gap_ci["ci95"][0] is not None and gap_ci["ci95"][0] > 0
    policies = {"random": R, "teachers (local view)": L, "teachers (privileged)": G}
    sources = {"random": "", "teachers (local view)": local, "teachers (privileged)": privileged}
    for task, table in ((local, lt), (privileged, gt)):
        for name in sorted(p for p in table if "/" in p):
            policies[f"{name} from {task}"] = _series(table[name], seeds)
            sources[f"{name} from {task}"] = task
    rows = {}
    for name, x in policies.items():
        row: dict[str, Any] = {
            "team_return": t_ci(x),
            "minus_local_teachers": t_ci(x - L),
            "normalized_vs_local": t_ci((x - R) / L_over),
            "normalized_vs_privileged": t_ci((x - R) / G_over),
        }
        if sources[name] == privileged and "/" in name:
            row["gap_recovered"] = t_ci((x - L) / gap) if significant else None
            row["gap_recovered_ratio_of_means"] = float(np.mean(x - L) / np.mean(gap)) if significant else None
            entries = gt[name.split(" from ")[0]]
            row["agreement_with_privileged"] = t_ci([entries[s].get("action_agreement", np.nan) for s in seeds])
            row["kl_privileged_student"] = t_ci([entries[s].get("kl_teacher_student", np.nan) for s in seeds])
        rows[name] = row
    lo_l, hi_l = rows["teachers (local view)"]["team_return"]["ci95"]
    lo_g, hi_g = rows["teachers (privileged)"]["team_return"]["ci95"]
    return {
        "env": env,
        "local_task": local,
        "privileged_task": privileged,
        "seeds": seeds,
        "privilege_gap": gap_ci,
        "privilege_gap_significant": significant,
        "teacher_cis_apart": None if None in (hi_l, lo_g) else bool(lo_g > hi_l or lo_l > hi_g),
        "rows": rows,
    }


def _cell(block: Mapping[str, Any] | None, digits: int, seeds: int) -> str:
    """``ci_cell``, saying how many seeds a figure stands on when the guard left some out."""
    runs = (block or {}).get("runs") or 0
    return ci_cell(block, digits) + (f" ({runs} of {seeds} seeds)" if 0 < runs < seeds else "")


def section(comparisons: Sequence[Mapping[str, Any]]) -> str:
    """report.md's section for every pair of tasks: one table and the privilege gap."""
    out = []
    for c in comparisons:
        gap = c["privilege_gap"]
        apart = {True: "do not overlap", False: "overlap", None: "cannot be compared"}[c["teacher_cis_apart"]]
        out.append(
            f"\n## Privileged teachers: {c['privileged_task']} against {c['local_task']} (`{c['env']}`, "
            f"{len(c['seeds'])} seeds)\n\nPrivilege gap (privileged − local-view teachers, paired per seed): "
            f"{ci_cell(gap, 2)}; the two teams' return intervals {apart}."
            + ("" if c["privilege_gap_significant"] else " Not significantly above 0, so no gap-recovered figure.")
            + "\n"
        )
        head = [
            "policy",
            "team return",
            "− local teachers",
            "normalized vs local teachers",
            "normalized vs privileged",
            "gap recovered",
            "agreement with privileged",
            "KL(privileged ‖ student)",
        ]
        out.append("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        n = len(c["seeds"])
        for name, r in c["rows"].items():
            cells = [
                name,
                _cell(r["team_return"], 2, n),
                _cell(r["minus_local_teachers"], 2, n),
                _cell(r["normalized_vs_local"], 3, n),
                _cell(r["normalized_vs_privileged"], 3, n),
                _cell(r.get("gap_recovered"), 3, n),
                _cell(r.get("agreement_with_privileged"), 3, n),
                _cell(r.get("kl_privileged_student"), 3, n),
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append(
            "\nEvery figure is a mean over seeds with a 95% "
            f"{METHODS['runs_mean']}; differences and ratios are formed per seed first, on the episodes both sides "
            "share. Gap recovered: (student − local teachers) / (privileged − local teachers) per seed (the ratio of "
            "the means is in privilege.json); agreement and KL are measured on the states the student team visits. "
            "A normalized figure leaves out seeds whose reference team was not significantly above random.\n"
        )
    return "\n".join(out)
