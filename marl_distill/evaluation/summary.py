"""A benchmark's results across runs: results.json / results.csv (one record per run), summary.json and report.md
(IQM and means over seeds with intervals whose coverage tests/evaluation/test_stats.py checks), and the plots in
benchmark_plots.

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

from marl_distill.evaluation import benchmark_plots, privilege
from marl_distill.evaluation.report import ci_cell, fmt
from marl_distill.evaluation.size import size_section
from marl_distill.evaluation.stats import METHODS, agent_mean, iqm_ci, t_ci
from marl_distill.utils.files import write_json, write_text

REFERENCE = ("teacher", "random")
MEAN_KEYS = (
    "paired_diff",
    "joint_action_agreement",
    "action_mse",
    "kl_teacher_student",
    "mixed_team_min",
    "cross_seed_min",
)
"""Per-run scalars summarised by their mean and Student-t CI over runs."""
COST_KEYS = (
    "params",
    "macs_per_joint_step",
    "weight_bytes",
    "bytes_on_disk",
    "latency_us_per_joint_step",
    "latency_us_batch",
    "latency_us_sb3_predict",
    "onnx_bytes",
    "latency_us_onnx",
    "speedup_vs_teacher_onnx",
)
"""Per-run size and speed, summarised by their median over runs."""
BUDGET_KEYS = ("grad_steps", "labelled_states_per_agent", "best_epoch", "epochs_run", "undertrained")
"""A student's distillation record (students/NAME/distill.json, copied to metrics.json's _meta) kept per run."""
CSV_FIELDS = (
    "team_return",
    "team_return_ci_lo",
    "team_return_ci_hi",
    "episodes",
    "normalized_return",
    "paired_diff",
    "action_agreement",
    "joint_action_agreement",
    "kl_teacher_student",
    "action_mse",
    "mixed_team_min",
    "cross_seed_min",
    *COST_KEYS,
    *BUDGET_KEYS,
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
        "paired_diff": (m.get("paired_diff") or {}).get("mean"),
        "flags": m.get("flags") or None,
        "action_agreement": agent_mean(m.get("action_agreement")),
        "joint_action_agreement": m.get("joint_action_agreement"),
        "kl_teacher_student": agent_mean(m.get("kl_teacher_student")),
        "action_mse": agent_mean(m.get("action_mse")),
        "mixed_team_min": (m.get("mixed_team") or {}).get("min_normalized_return"),
        "mixed_team": (m.get("mixed_team") or {}).get("by_mix"),
        "cross_seed_min": min(
            (
                c["min_normalized_return"]
                for c in m.get("cross_seed", {}).values()
                if c["min_normalized_return"] is not None
            ),
            default=None,
        ),
        **{k: m.get(k) for k in COST_KEYS},
        "speedup_vs_teacher": m.get("speedup_vs_teacher"),
        "acting_runtime": m.get("acting_runtime"),
        "per_seat": {
            seat: {"return": s["return"]["mean"], "normalized": s["normalized"]} for seat, s in m["per_seat"].items()
        }
        if m.get("per_seat")
        else None,  # fmt: skip
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
            record = metrics["_meta"].get("students", {}).get(name, {})
            budget = {k: record[k] for k in BUDGET_KEYS if record.get(k) is not None}
            task.setdefault(policy, {})[seed] = {**flatten(m), **budget, "folder": run["folder"]}
    return results


def aggregate(results: Mapping[str, Any]) -> dict[str, Any]:
    """Per env, task and policy: IQM of normalized return (trimmed-mean t CI) and means of the rest (Student-t
    CIs) over runs, medians of size and speed, the like-for-like speed-up, the distillation budget and how many
    runs were flagged (under-trained, above 1.05 normalized, normalized null)."""
    out: dict[str, Any] = {}
    for env, tasks in results.items():
        for task, policies in tasks.items():
            rows = {}
            for policy, by_run in policies.items():
                vals = list(by_run.values())

                def col(key: str, vals: list = vals) -> np.ndarray:
                    return np.array([v[key] for v in vals if v.get(key) is not None], dtype=float)

                speedups = [v["speedup_vs_teacher"] for v in vals if v.get("speedup_vs_teacher")]
                row: dict[str, Any] = {
                    "runs": len(vals),
                    "episodes": int(col("episodes").min()),
                    "normalized_return": iqm_ci(col("normalized_return")),
                    "normalized_return_mean": t_ci(col("normalized_return")),
                    "normalized_null_runs": sum(v.get("normalized_return") is None for v in vals),
                    "team_return": t_ci(col("team_return")),
                }
                for key in MEAN_KEYS:
                    if len(col(key)):
                        row[key] = t_ci(col(key))
                for key in COST_KEYS:
                    if len(col(key)):
                        row[key] = float(np.median(col(key)))
                if policy != "teacher" and speedups:
                    row["speedup_vs_teacher"] = float(np.median(speedups))
                if policy not in REFERENCE:
                    row["budget"] = {
                        k: sorted({v[k] for v in vals if k in v}) for k in ("grad_steps", "labelled_states_per_agent")
                    }
                    row["undertrained_runs"] = sum(bool(v.get("undertrained")) for v in vals)
                    row["above_1_05_runs"] = sum("normalized_above_1_05" in v.get("flags", []) for v in vals)
                seats = [v["per_seat"] for v in vals if "per_seat" in v]
                if seats:  # agents with no shared goal: each seat over runs, as the headline
                    row["per_seat"] = {
                        seat: {
                            "normalized": iqm_ci(_present([s[seat]["normalized"] for s in seats])),
                            "return": t_ci(_present([s[seat]["return"] for s in seats])),
                        }
                        for seat in seats[0]
                    }
                mixes = [v["mixed_team"] for v in vals if "mixed_team" in v]
                if mixes:
                    row["mixed_team"] = {k: _mean_present([m.get(k) for m in mixes]) for k in mixes[0]}
                rows[policy] = row
            out.setdefault(env, {})[task] = rows
    return out


def _present(values: Sequence[float | None]) -> np.ndarray:
    return np.array([v for v in values if v is not None], dtype=float)


def _mean_present(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


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


def seat_table(rows: Mapping[str, Any]) -> str:
    """A task whose agents do not share one goal: one row per policy and seat (that seat's return against the
    teachers in the others, normalized in the seat), with size and speed."""
    head = ["policy", "seat", "normalized (seat), IQM [95% CI]", "seat return, mean [95% CI]", "joint agreement"]
    head += ["acting params", "µs / joint step", "× faster"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for policy, r in rows.items():
        for seat, s in (r.get("per_seat") or {}).items():
            runs = s["normalized"].get("runs", 0)
            fewer = f" ({runs} of {r['runs']} runs; null in the rest)" if runs < r["runs"] else ""
            cells = [policy, seat, ci_cell(s["normalized"], 3, key="iqm") + fewer, ci_cell(s["return"])]
            cells += [fmt(r.get("joint_action_agreement", {}).get("mean"), 3), _int(r.get("params"))]
            cells += [fmt(r.get("latency_us_per_joint_step"), 1), fmt(r.get("speedup_vs_teacher"), 2)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def task_table(rows: Mapping[str, Any]) -> str:
    """One row per policy of one task: the benchmark results page's table (the cross-seed column only for tasks that
    played it); per seat where the agents do not share one goal."""
    if any("per_seat" in r for r in rows.values()):
        return seat_table(rows)
    cross = any("cross_seed_min" in r for r in rows.values())
    head = ["policy", "normalized return, IQM [95% CI]", "normalized, mean [95% CI]", "team return, mean [95% CI]"]
    head += ["− teachers, paired, mean [95% CI]", "joint agreement", "mixed-team min, normalized, mean [95% CI]"]
    head += ["cross-seed min, normalized, mean [95% CI]"] if cross else []
    head += ["acting params", "MACs / joint step", "bytes on disk", "µs / joint step", "× faster"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for policy, r in rows.items():
        cells = [policy, ci_cell(r["normalized_return"], 3, key="iqm"), ci_cell(r["normalized_return_mean"], 3)]
        cells += [ci_cell(r["team_return"]), ci_cell(r.get("paired_diff"))]
        cells += [fmt(r.get("joint_action_agreement", {}).get("mean"), 3), ci_cell(r.get("mixed_team_min"))]
        if cross:
            cells.append(ci_cell(r.get("cross_seed_min")))
        cells += [_int(r.get("params")), _int(r.get("macs_per_joint_step")), _int(r.get("bytes_on_disk"))]
        cells += [fmt(r.get("latency_us_per_joint_step"), 1), fmt(r.get("speedup_vs_teacher"), 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def task_notes(rows: Mapping[str, Any]) -> str:
    """Below each table: each setting's distillation budget, runs flagged, null normalized returns, and the
    teachers' SB3 latency (another runtime, so its own line)."""
    lines = []
    for policy, r in rows.items():
        if "budget" not in r or policy.endswith("-int8"):  # an int8 copy has its source's budget (or none)
            continue
        b = r["budget"]
        steps = ", ".join(f"{x:,}" for x in b["grad_steps"]) or "unknown"
        states = ", ".join(f"{x:,}" for x in b["labelled_states_per_agent"]) or "unknown"
        line = f"- {policy}: {steps} gradient steps, {states} labelled states per agent"
        if r["undertrained_runs"]:
            line += f"; **may be under-trained in {r['undertrained_runs']} of {r['runs']} runs**"
        if r["above_1_05_runs"]:
            line += f"; ⚠ above 1.05 normalized in {r['above_1_05_runs']} of {r['runs']} runs"
        lines.append(line + ".")
    nulls = rows.get("teacher", {}).get("normalized_null_runs")
    if "per_seat" in rows.get("teacher", {}):
        lines.append(
            "- The agents do not share one goal: team sums are not scored; each seat is (each policy in one seat, "
            "the teachers in the others), normalized per seat and null where the teacher did not beat random there."
        )
    elif nulls:
        lines.append(
            f"- Normalized return is null in {nulls} of {rows['teacher']['runs']} runs: their teachers were not "
            "significantly above random on the same episodes (see each run's report); the IQM and mean use the rest."
        )
    sb3 = rows.get("teacher", {}).get("latency_us_sb3_predict")
    if sb3 is not None:
        lines.append(f"- Teachers through SB3 `predict` (another runtime, not compared): {sb3:.0f} µs per joint step.")
    if not lines:
        return ""
    return "\nDistillation budget (gradient steps, labelled states per agent) and flags:\n\n" + "\n".join(lines) + "\n"


def paired_table(results: Mapping[str, Any], pairs: Sequence[tuple[str, str]]) -> str:
    """Per pair (A, B) of policies of one task: A − B team return per seed (each seed's cells share its teachers and
    its evaluation episode seeds), mean with a Student-t interval over seeds. Not corrected for the number of pairs:
    with many pairs, some intervals exclude 0 by chance."""
    lines = ["| task | difference | team return, A − B, mean over seeds [95% CI] | seeds |", "|---|---|---|---|"]
    for a, b in pairs:
        for tasks in results.values():
            for task, policies in tasks.items():
                if a not in policies or b not in policies:
                    continue
                seeds = [s for s in policies[a] if s in policies[b]]
                diff = [policies[a][s]["team_return"] - policies[b][s]["team_return"] for s in seeds]
                lines.append(f"| {task} | {a} − {b} | {ci_cell(t_ci(np.array(diff)))} | {len(seeds)} |")
    return "\n".join(lines) + "\n"


def headline(summary: Mapping[str, Any]) -> list[str]:
    """What ``marl-distill benchmark`` prints: per task, each student's normalized return (IQM over seeds), per
    seat where the agents do not share one goal."""
    lines = []
    for env, tasks in summary.items():
        for task, rows in tasks.items():
            lines.append(f"{task} ({env}): normalized return, IQM over seeds")
            blocks = benchmark_plots.normalized_rows({p: r for p, r in rows.items() if p not in REFERENCE})
            lines += [f"  {label:28s} {ci_cell(block, 3, key='iqm')}" for label, block in blocks.items()]
    return lines


def _int(x: float | None) -> str:
    return "–" if x is None else f"{int(x):,}"


def report_text(
    summary: Mapping[str, Any],
    comparisons: Sequence[Mapping[str, Any]],
    *,
    seeds: Sequence[int],
    title: str = "",
    command: str = "",
    plots: Sequence[Path] = (),
) -> str:
    """report.md from summary.json and privilege.json alone, so that a results page renders the same text from
    the committed JSON (docs/results/render.py) as the benchmark wrote beside its runs."""
    text = [f"# {title}\n"] if title else []
    if command:
        text.append(f"Reproduce: `{command}`\n")
    text.append(
        f"Seeds {list(seeds)}: each seed trains its own teachers and distills its own students. Normalized return: "
        "(R − R_random) / (R_teacher − R_random) on the same episode seeds, 0 = random, 1 = teacher, null in a run "
        "whose teachers are not significantly above random; IQM: the mean of the middle 50% of runs, a quarter "
        "trimmed from each end and rounded down (at 5 runs, the middle three). − teachers: "
        "the policy's team return minus its teachers' on the same episode seeds, per run. Agreement is measured on "
        "the states each student visits. Mixed-team min: the normalized return (0 = random, 1 = teachers, on the "
        "first mixed_episodes episode seeds) of the worst team of this student and the teachers; cross-seed min: "
        "the same for the worst team of this student and the same setting's student of another seed, and on the "
        "teacher row of this seed's teachers with another seed's (tasks listed in cross_seed), so "
        "conventions that drifted between teacher seeds are told apart from what distillation lost. Latency: batch "
        "1, one CPU thread, every policy through the same numpy acting path (teachers' actor networks included); "
        "× faster is like for like: the median over seeds of teacher latency / policy latency, both through that "
        "path and timed one after the other in the same evaluation process (no ratio where the runtimes differ, "
        "e.g. a teacher that falls back to torch). Bytes on disk: SB3 zips for teachers (value nets and optimizer "
        "state included), weights.pt for "
        "students.\n"
    )
    text.append(
        "Intervals, all 95%: means over runs (team return, normalized mean, − teachers, agreement, mixed-team and "
        f"cross-seed min) — {METHODS['runs_mean']}; the IQM over runs — {METHODS['runs_iqm']}; within one run "
        f"(its report) — {METHODS['episodes']}, and − teachers — {METHODS['paired']}. A percentile bootstrap over "
        "5 seeds covered the true mean only ~83% of the time in simulation, which is why it is not used across runs. "
        '"(no CI)": a single run; "(all N equal)": every value was the same.\n'
    )
    for env, tasks in summary.items():
        for task, rows in tasks.items():
            eps = rows.get("teacher", {}).get("episodes")
            text.append(f"\n## {task} (`{env}`; {rows['teacher']['runs']} runs, {eps} episodes per policy per run)\n")
            text.append(task_table(rows))
            text.append(task_notes(rows))
            sized = size_section(rows)
            if sized:
                text.append(f"\n### {task}: size against return\n\n" + sized)
    if comparisons:  # tasks that differ in the teachers' view: what privilege is worth, what students keep
        text.append(privilege.section(comparisons))
    if plots:
        text.append("\n## Plots\n")
        text += [f"\n![{p.stem}](plots/{p.name})\n" for p in plots]
    return "\n".join(text)


def write_summary(
    out: Path, title: str, runs: Sequence[Mapping[str, Any]], *, seeds: Sequence[int], command: str = ""
) -> dict[str, Any]:
    """results.json, results.csv, summary.json, plots/*.png and report.md for a finished grid (and privilege.json
    where tasks differ in the teachers' view)."""
    out = Path(out)
    results = collect(runs)
    summary = aggregate(results)
    write_json(out / "results.json", results)
    write_text(out / "results.csv", to_csv(results))
    write_json(out / "summary.json", summary)
    plots = benchmark_plots.write_all(out, summary, runs)
    comparisons = privilege.comparisons(results, runs)
    if comparisons:
        write_json(out / "privilege.json", comparisons)
    text = report_text(summary, comparisons, seeds=seeds, title=title, command=command, plots=plots)
    write_text(out / "report.md", text)
    return summary
