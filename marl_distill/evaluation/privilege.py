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

from marl_distill.evaluation.report import ci_cell
from marl_distill.evaluation.stats import METHODS, ratio_ci, t_ci

LOCAL = "local"


def _setups(runs: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(env, task) -> what its runs record: the teachers' view, the comparable setup (env arguments and teacher
    settings but the view) and every student's distillation record (its view included), by setting/kind."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        meta = run["metrics"]["_meta"]
        task = out.setdefault((meta["env"], run["task"]), {"records": {}})
        task["teachers"] = (meta.get("views") or {}).get("teachers", LOCAL)
        task["setup"] = run.get("setup") or meta.get("setup")
        # what fixes a run's evaluation episodes: its episode-seed root and how many it played
        played = (run["metrics"].get("teacher") or {}).get("team_return") or {}
        task.setdefault("episodes", {})[str(run.get("seed"))] = (meta.get("eval_seed"), played.get("episodes"))
        for kind, record in (meta.get("students") or {}).items():
            seen = task["records"].setdefault(f"{run['setting']}/{kind}", [])
            if _budget(record) not in seen:  # every distinct record over the seeds
                seen.append(_budget(record))
    return out


BUDGET = ("kind", "hidden", "arch", "seq_len", "burn_in", "loss", "temperature", "alpha", "sampling", "rounds",
          "grad_steps", "batch_size", "labelled_states_per_agent", "holdout", "early_stopping")  # fmt: skip
"""The distill.json keys two students must share to be compared as the same student."""


def _budget(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's budget and what its students act on: their view, and their memory where they carry one (a
    recurrent student is no more a memoryless local-view student than a history:K one, so it is labelled as such
    and gets no gap recovered: its memory alone may beat memoryless local-view teachers)."""
    view = (record.get("views") or {}).get("students", LOCAL)
    arch = record.get("arch") or "mlp"
    return {**{k: record.get(k) for k in BUDGET}, "view": view if arch == "mlp" else f"{view} + {arch} memory"}


def pairs(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(env, local task, privileged task) for every two tasks that differ only in the teachers' view: the same env,
    env arguments and teacher settings (the students' views are labelled in the table)."""
    return _pairs(_setups(runs))


def _pairs(seen: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    found = []
    for (env, priv), p in sorted(seen.items()):
        if p["teachers"] == LOCAL or p["setup"] is None:
            continue
        for (env2, loc), q in sorted(seen.items()):
            if env2 == env and q["teachers"] == LOCAL and q["setup"] == p["setup"]:
                found.append((env, loc, priv))
    return found


def _student_views(task: Mapping[str, Any]) -> dict[str, str]:
    """setting/kind -> the view those students act on."""
    return {name: records[0]["view"] for name, records in task["records"].items()}


def differences(runs: Sequence[Mapping[str, Any]], env: str, local: str, privileged: str) -> list[str]:
    """Students of one name whose distillation differs between the two tasks (a confound the table must state)."""
    seen = _setups(runs)
    return _differences(seen[(env, local)], seen[(env, privileged)])


def _differences(local: Mapping[str, Any], privileged: Mapping[str, Any]) -> list[str]:
    a, b = local["records"], privileged["records"]
    out = []
    for name in sorted(set(a) & set(b)):
        if len(a[name]) > 1 or len(b[name]) > 1:
            out.append(f"{name}: distilled with different settings in different seeds")
            continue
        keys = [k for k in a[name][0] if a[name][0][k] != b[name][0][k]]
        out += [f"{name}: {k} {a[name][0][k]} (local) vs {b[name][0][k]} (privileged)" for k in keys]
    return out


def _series(by_seed: Mapping[str, Mapping[str, Any]], seeds: Sequence[str]) -> np.ndarray:
    return np.array([by_seed.get(s, {}).get("team_return", np.nan) for s in seeds], dtype=float)


def _guarded(by_seed: Mapping[str, Mapping[str, Any]], seeds: Sequence[str]) -> np.ndarray:
    """Per seed: whether that run's teachers were significantly above random (its normalized return exists)."""
    return np.array([by_seed.get(s, {}).get("normalized_return") is not None for s in seeds])


def compare(
    results: Mapping[str, Any], env: str, local: str, privileged: str, student_views: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The comparison of one pair of tasks, over the seeds both have (see the module docstring). A return
    normalized against a team is left out for a seed where that team was not significantly above random (the
    guard every normalized figure obeys); the gap recovered is null unless the privilege gap is significant, and
    given only for students on the local view (``student_views``: setting/kind -> view in the privileged task; a
    student with memory would otherwise count what memory adds as privilege recovered)."""
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
            local_view = (student_views or {}).get(name.split(" from ")[0], LOCAL) == LOCAL
            row["gap_recovered"] = ratio_ci(x - L, gap) if significant and local_view else None
            if significant and local_view:
                row["gap_recovered_per_seed"] = [None if not np.isfinite(v) else float(v) for v in (x - L) / gap]
            entries = gt[name.split(" from ")[0]]
            row["agreement_with_privileged"] = t_ci([entries.get(s, {}).get("action_agreement", np.nan) for s in seeds])
            row["kl_privileged_student"] = t_ci([entries.get(s, {}).get("kl_teacher_student", np.nan) for s in seeds])
        rows[name] = row
    lo_l, hi_l = rows["teachers (local view)"]["team_return"]["ci95"]
    lo_g, hi_g = rows["teachers (privileged)"]["team_return"]["ci95"]
    return {
        "env": env,
        "local_task": local,
        "privileged_task": privileged,
        "seeds": seeds,
        "privilege_gap": gap_ci,
        "privilege_gap_per_seed": [float(v) for v in gap],
        "privilege_gap_significant": significant,
        "teacher_cis_apart": None if None in (hi_l, lo_g) else bool(lo_g > hi_l or lo_l > hi_g),
        "same_episodes": all(lt["teacher"][s].get("episodes") == gt["teacher"][s].get("episodes") for s in seeds),
        "rows": rows,
    }


def comparisons(results: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of tasks that differ only in the teachers' view, compared, with the students' confounds."""
    seen = _setups(runs)
    out = []
    for env, local, privileged in _pairs(seen):
        views = {task: _student_views(seen[(env, task)]) for task in (local, privileged)}
        c = compare(results, env, local, privileged, views[privileged])
        c["same_episodes"] = c["same_episodes"] and _same_episodes(seen[(env, local)], seen[(env, privileged)])
        confounds = _differences(seen[(env, local)], seen[(env, privileged)])
        if not c["same_episodes"]:
            confounds.append("the two tasks did not evaluate the same episodes (episode seeds or counts differ)")
        teachers = seen[(env, privileged)]["teachers"]
        out.append({**c, "student_differences": confounds, "student_views": views, "privileged_view": teachers})
    return out


def _same_episodes(local: Mapping[str, Any], privileged: Mapping[str, Any]) -> bool:
    """Did every seed both tasks ran play the same episodes (episode-seed root and count) on both sides?"""
    a, b = local.get("episodes", {}), privileged.get("episodes", {})
    return all(a[seed] == b[seed] for seed in set(a) & set(b))


def _label(name: str, views: Mapping[str, Mapping[str, str]]) -> str:
    """A student row's name with its view where that is not the local one."""
    base, _, task = name.partition(" from ")
    view = (views.get(task) or {}).get(base, LOCAL)
    if not task or view == LOCAL:
        return name
    return f"{base} ({view}) from {task}" if "memory" in view else f"{base} ({view} view) from {task}"


def _cell(block: Mapping[str, Any] | None, digits: int, seeds: int, key: str = "mean") -> str:
    """``ci_cell``, saying how many seeds a figure stands on when the guard left some out."""
    runs = (block or {}).get("runs") or 0
    return ci_cell(block, digits, key=key) + (f" ({runs} of {seeds} seeds)" if 0 < runs < seeds else "")


def _seeds(values: Sequence[float | None]) -> str:
    return ", ".join("–" if v is None else f"{v:.2f}" for v in values)


def section(comparisons: Sequence[Mapping[str, Any]]) -> str:
    """report.md's section for every pair of tasks: the privilege gap, one table, the per-seed values."""
    out = []
    for c in comparisons:
        gap = c["privilege_gap"]
        apart = {True: "do not overlap", False: "overlap", None: "cannot be compared"}[c["teacher_cis_apart"]]
        out.append(
            f"\n## Privileged teachers ({c.get('privileged_view', 'global')} view): {c['privileged_task']} against "
            f"{c['local_task']} (`{c['env']}`, "
            f"{len(c['seeds'])} seeds)\n\nPrivilege gap (privileged − local-view teachers, paired per seed): "
            f"{ci_cell(gap, 2)}, per seed {_seeds(c['privilege_gap_per_seed'])}; the two teams' return intervals "
            f"over seeds {apart}."
            + ("" if c["privilege_gap_significant"] else " Not significantly above 0, so no gap-recovered figure.")
            + "\n"
        )
        confounds = [f"- **Not like for like:** {line}." for line in c.get("student_differences") or []]
        out += [*confounds, ""] if confounds else []
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
                _label(name, c.get("student_views") or {}),
                _cell(r["team_return"], 2, n),
                _cell(r["minus_local_teachers"], 2, n),
                _cell(r["normalized_vs_local"], 3, n),
                _cell(r["normalized_vs_privileged"], 3, n),
                _cell(r.get("gap_recovered"), 3, n, key="ratio"),
                _cell(r.get("agreement_with_privileged"), 3, n),
                _cell(r.get("kl_privileged_student"), 3, n),
            ]
            out.append("| " + " | ".join(cells) + " |")
        per_seed = [f"{name}: {_seeds(r['gap_recovered_per_seed'])}" for name, r in c["rows"].items()
                    if "gap_recovered_per_seed" in r]  # fmt: skip
        per_seed_text = f" Per seed: {'; '.join(per_seed)}." if per_seed else ""
        memory = any("memory" in v for views in (c.get("student_views") or {}).values() for v in views.values())
        above = [r for r in c["rows"].values() if (r.get("gap_recovered") or {}).get("ratio", 0) > 1]
        if above:  # more than the gap: the students beat the privileged teachers, which is not privilege kept
            per_seed_text += (
                " A fraction above 1 puts the students above the privileged teachers themselves; whether "
                "significantly is the privileged task's own paired − teachers figure."
            )
        out.append(
            f"\nGap recovered ({'memoryless ' if memory else ''}local-view students only): Σ(student − local "
            "teachers) / Σ(privileged − local "
            "teachers) over seeds, which weighs each seed by its gap, with "
            f"{METHODS['runs_ratio']}.{per_seed_text} Every other figure is a mean over seeds with "
            f"a {METHODS['runs_mean']}. Differences are formed per seed, on the episodes both sides share (the two "
            "teacher teams do not share training randomness: their inputs differ). Agreement and KL are measured on "
            "the states the student team visits. A normalized figure leaves out seeds whose reference team was not "
            "significantly above random.\n"
        )
    return "\n".join(out)
