"""A benchmark's results across runs: results.json / results.csv (one record per run), summary.json and report.md
(IQM and bootstrap CIs over seeds), and the plots in grid_plots.

results.json nests env -> task -> policy -> run -> metrics, the nesting marl-eval uses (its metrics are lists per
evaluation step; ours are one scalar per run, per-agent values averaged). A policy is ``teacher``, ``random`` or
``SETTING/STUDENT``; a run is ``seed_S``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marl_distill.evaluate import grid_plots
from marl_distill.evaluate.report import fmt
from marl_distill.evaluate.stats import agent_mean, iqm_ci, mean_ci
from marl_distill.io import write_json, write_text

REFERENCE = ("teacher", "random")
MEAN_KEYS = ("joint_action_agreement", "action_mse", "kl_teacher_student", "mixed_team_min", "cross_seed_min")
"""Per-run scalars summarised by their mean and CI over runs."""
CSV_FIELDS = (
    "team_return",
    "team_return_ci_lo",
    "team_return_ci_hi",
    "episodes",
    "normalized_return",
    "action_agreement",
    "joint_action_agreement",
    "kl_teacher_student",
    "action_mse",
    "mixed_team_min",
    "cross_seed_min",
    "params",
    "bytes_on_disk",
    "latency_us_per_joint_step",
)


def flatten(m: Mapping[str, Any]) -> dict[str, Any]:
    """One policy's metrics.json entry as scalars (per-agent values averaged over agents), plus mixed teams."""
    tr = m["team_return"]
    out = {
        "team_return": tr["mean"],
        "team_return_ci_lo": tr["ci95"][0],
        "team_return_ci_hi": tr["ci95"][1],
        "episodes": tr["episodes"],
        "normalized_return": m.get("normalized_return"),
        "action_agreement": agent_mean(m.get("action_agreement")),
        "joint_action_agreement": m.get("joint_action_agreement"),
        "kl_teacher_student": agent_mean(m.get("kl_teacher_student")),
        "action_mse": agent_mean(m.get("action_mse")),
        "mixed_team_min": (m.get("mixed_team") or {}).get("min_normalized_return"),
        "mixed_team": (m.get("mixed_team") or {}).get("by_mix"),
        "cross_seed_min": min((c["min_normalized_return"] for c in m.get("cross_seed", {}).values()), default=None),
        "params": m.get("params"),
        "bytes_on_disk": m.get("bytes_on_disk"),
        "latency_us_per_joint_step": m.get("latency_us_per_joint_step"),
    }
    return {k: v for k, v in out.items() if v is not None}


def collect(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """env -> task -> policy -> run -> flattened metrics; teacher and random come from each seed's first run."""
    results: dict[str, Any] = {}
    for run in runs:
        metrics, seed = run["metrics"], f"seed_{run['seed']}"
        task = results.setdefault(metrics["_meta"]["env"], {}).setdefault(run["task"], {})
        for name, m in metrics.items():
            if name.startswith("_") or not isinstance(m, dict):
                continue
            policy = name if name in REFERENCE else f"{run['setting']}/{name}"
            if policy in REFERENCE and seed in task.get(policy, {}):
                continue
            task.setdefault(policy, {})[seed] = {**flatten(m), "folder": run["folder"]}
    return results


def aggregate(results: Mapping[str, Any]) -> dict[str, Any]:
    """Per env, task and policy: IQM of normalized return and means of the rest, with 95% CIs over runs."""
    out: dict[str, Any] = {}
    for env, tasks in results.items():
        for task, policies in tasks.items():
            teacher_lat = {r: v.get("latency_us_per_joint_step") for r, v in policies.get("teacher", {}).items()}
            rows = {}
            for policy, by_run in policies.items():
                vals = list(by_run.values())

                def col(key: str, vals: list = vals) -> np.ndarray:
                    return np.array([v[key] for v in vals if v.get(key) is not None], dtype=float)

                speedups = [
                    teacher_lat[r] / v["latency_us_per_joint_step"]
                    for r, v in by_run.items()
                    if teacher_lat.get(r) and v.get("latency_us_per_joint_step")
                ]
                row: dict[str, Any] = {
                    "runs": len(vals),
                    "episodes": int(col("episodes").min()),
                    "normalized_return": iqm_ci(col("normalized_return")),
                    "normalized_return_mean": _ci(col("normalized_return")),
                    "team_return": _ci(col("team_return")),
                }
                for key in MEAN_KEYS:
                    if len(col(key)):
                        row[key] = _ci(col(key))
                for key in ("params", "bytes_on_disk", "latency_us_per_joint_step"):
                    if len(col(key)):
                        row[key] = float(np.median(col(key)))
                if policy != "teacher" and speedups:
                    row["speedup_vs_teacher"] = float(np.median(speedups))
                mixes = [v["mixed_team"] for v in vals if "mixed_team" in v]
                if mixes:
                    row["mixed_team"] = {k: float(np.mean([m[k] for m in mixes])) for k in mixes[0]}
                rows[policy] = row
            out.setdefault(env, {})[task] = rows
    return out


def _ci(values: np.ndarray) -> dict[str, Any]:
    return mean_ci(values, count="runs") if len(values) else {"mean": None, "ci95": [None, None], "runs": 0}


def to_csv(results: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("env", "task", "policy", "run", *CSV_FIELDS, "folder"))
    for env, tasks in results.items():
        for task, policies in tasks.items():
            for policy, by_run in policies.items():
                for run, v in by_run.items():
                    writer.writerow((env, task, policy, run, *(v.get(k, "") for k in CSV_FIELDS), v["folder"]))
    return buf.getvalue()


def _mean_cell(d: Mapping[str, Any] | None, digits: int = 2) -> str:
    if not d or d.get("mean") is None:
        return "–"
    lo, hi = d["ci95"]
    return f"{d['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def task_table(rows: Mapping[str, Any]) -> str:
    """One row per policy of one task: what README's headline table shows (the cross-seed column only for tasks
    that played it)."""
    cross = any("cross_seed_min" in r for r in rows.values())
    head = ["policy", "normalized return, IQM [95% CI]", "normalized, mean [95% CI]", "team return, mean [95% CI]"]
    head += ["joint agreement", "mixed-team min", *(["cross-seed min"] if cross else [])]
    head += ["acting params", "bytes on disk", "µs / joint step", "× faster"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for policy, r in rows.items():
        nr = r["normalized_return"]
        iqm = "–" if nr["iqm"] is None else f"{nr['iqm']:.3f} [{nr['ci95'][0]:.3f}, {nr['ci95'][1]:.3f}]"
        size = r.get("params")
        cells = [policy, iqm, _mean_cell(r["normalized_return_mean"], 3), _mean_cell(r["team_return"])]
        cells += [fmt(r.get("joint_action_agreement", {}).get("mean"), 3), fmt(r.get("mixed_team_min", {}).get("mean"))]
        if cross:
            cells.append(fmt(r.get("cross_seed_min", {}).get("mean")))
        cells += ["–" if size is None else str(int(size)), _int(r.get("bytes_on_disk"))]
        cells += [fmt(r.get("latency_us_per_joint_step"), 0), fmt(r.get("speedup_vs_teacher"), 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _int(x: float | None) -> str:
    return "–" if x is None else f"{int(x):,}"


def write_summary(
    out: Path, title: str, runs: Sequence[Mapping[str, Any]], *, seeds: Sequence[int], command: str = ""
) -> dict[str, Any]:
    """results.json, results.csv, summary.json, plots/*.png and report.md for a finished grid."""
    out = Path(out)
    results = collect(runs)
    summary = aggregate(results)
    write_json(out / "results.json", results)
    write_text(out / "results.csv", to_csv(results))
    write_json(out / "summary.json", summary)
    plots = grid_plots.write_all(out, summary, runs)
    text = [f"# {title}\n"]
    if command:
        text.append(f"Reproduce: `{command}`\n")
    text.append(
        f"Seeds {list(seeds)}: each seed trains its own teachers and distills its own students. Normalized return: "
        "(R − R_random) / (R_teacher − R_random) on the same episode seeds, 0 = random, 1 = teacher; its IQM "
        "(mean of the middle 50% of runs) and every mean carry 95% percentile-bootstrap CIs over runs. Agreement is "
        "measured on the states each student visits. Mixed-team min: the worst team of this student and the "
        "teachers; cross-seed min: the worst team of this student and the same setting's student of another seed "
        "(tasks listed in cross_seed). Latency: batch 1, one CPU thread, teachers through SB3 "
        "`predict`; × faster is the median over seeds of teacher latency / policy latency. Bytes on disk: SB3 zips "
        "for teachers (value nets and optimizer state included), weights.pt for students.\n"
    )
    for env, tasks in summary.items():
        for task, rows in tasks.items():
            eps = rows.get("teacher", {}).get("episodes")
            text.append(f"\n## {task} (`{env}`; {rows['teacher']['runs']} runs, {eps} episodes per policy per run)\n")
            text.append(task_table(rows))
    text.append("\n## Plots\n")
    text += [f"\n![{p.stem}](plots/{p.name})\n" for p in plots]
    write_text(out / "report.md", "\n".join(text))
    return summary
