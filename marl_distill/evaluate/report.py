"""report.md and plots from metrics.json: what a person reads after a run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marl_distill.evaluate.stats import METHODS, agent_mean
from marl_distill.utils.files import write_text
from marl_distill.utils.plotting import pyplot, save_figure

CORE = ("teacher", "random")


def fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def ci_cell(block: Mapping[str, Any] | None, digits: int = 2, key: str = "mean") -> str:
    """``mean [lo, hi]``; "(all N equal)" in place of an interval when every value was the same (a CI over copies
    of one outcome is no estimate), "(no CI)" where there is none (one run)."""
    if not block or block.get(key) is None:
        return "–"
    mean = f"{block[key]:.{digits}f}"
    if block.get("distinct_values") == 1:
        n = block.get("episodes", block.get("runs"))
        return f"{mean} (all {n} equal)"
    lo, hi = block.get("ci95") or (None, None)
    if lo is None or hi is None:
        return f"{mean} (no CI)"
    return f"{mean} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _policies(metrics: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(n, m) for n, m in metrics.items() if isinstance(m, dict) and "team_return" in m]


def _worst_mix(mixed: Mapping[str, Any] | None) -> str:
    """The worst mix's team return with its CI, and its normalized value."""
    if not mixed:
        return "–"
    worst = mixed.get("worst_mix")
    block = (mixed.get("team_return_by_mix") or {}).get(worst)
    if block is None:
        return fmt(mixed.get("min_normalized_return"))
    return f"{ci_cell(block)} ({worst}; normalized {fmt(mixed.get('min_normalized_return'))})"


def table(metrics: Mapping[str, Any]) -> str:
    """One row per policy: returns with CI, paired difference to the teachers, normalized return, agreement, KL,
    worst mixed team, size and like-for-like speed."""
    head = (
        "| policy | team return (95% CI) | episodes | − teachers, paired (95% CI) | normalized | action agreement "
        "| joint agreement | action MSE | KL(teacher‖student) | mixed team, worst (team return, 95% CI) "
        "| acting params | MACs / joint step | µs / joint step | µs / joint step, batch 1,024 |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, m in _policies(metrics):
        tr = m["team_return"]
        norm = fmt(m.get("normalized_return"))
        if "normalized_above_1_05" in m.get("flags", []):
            norm += " ⚠"
        rows.append(
            f"| {name} | {ci_cell(tr)} | {tr['episodes']} | {ci_cell(m.get('paired_diff'))} | {norm} "
            f"| {fmt(agent_mean(m.get('action_agreement')), 3)} | {fmt(m.get('joint_action_agreement'), 3)} "
            f"| {fmt(agent_mean(m.get('action_mse')), 4)} | {fmt(agent_mean(m.get('kl_teacher_student')), 4)} "
            f"| {_worst_mix(m.get('mixed_team'))} | {_count(m.get('params'))} | {_count(m.get('macs_per_joint_step'))} "
            f"| {fmt(m.get('latency_us_per_joint_step'), 1)} | {fmt(m.get('latency_us_batch'), 2)} |"
        )
    return head + "\n".join(rows) + "\n"


def _count(x: float | None) -> str:
    return "–" if x is None else f"{int(x):,}"


def guards(metrics: Mapping[str, Any]) -> str:
    """What the numbers above cannot be read as: a null normalized return and why, students suspiciously above
    their teachers, a second runtime's latency (labelled, never the headline)."""
    lines = []
    teacher = metrics.get("teacher", {})
    gap = teacher.get("gap_over_random")
    if gap is not None:
        state = "significant" if gap.get("significant") else "**not significant**"
        lines.append(f"- Teachers − random, paired on the same episodes: {ci_cell(gap)} ({state}).")
    reason = (metrics.get("_meta", {}).get("normalized_return") or {}).get("reason")
    if reason:
        lines.append(f"- **Normalized return is null** for every policy: {reason}.")
    above = [n for n, m in _policies(metrics) if "normalized_above_1_05" in m.get("flags", [])]
    if above:
        lines.append(
            f"- ⚠ {', '.join(above)}: normalized return above 1.05 — better than the teachers by more than noise "
            "usually explains; check the teachers are trained and the paired difference's CI."
        )
    runtimes = {
        n: m.get("acting_runtime")
        for n, m in _policies(metrics)
        if m.get("acting_runtime") and m.get("latency_us_per_joint_step") is not None
    }
    if len(set(runtimes.values())) > 1:
        lines.append(
            "- ⚠ Not like for like: policies acted through different runtimes ("
            + "; ".join(f"{n}: {r}" for n, r in runtimes.items())
            + "), so no speed-up is reported between them."
        )
    speed = [f"{n} {m['speedup_vs_teacher']:.2f}×" for n, m in _policies(metrics) if m.get("speedup_vs_teacher")]
    if speed:
        lines.append(
            "- Like-for-like speed-up over the teachers (teacher µs / student µs, batch 1, same runtime and process): "
            + ", ".join(speed)
            + "."
        )
    sb3 = teacher.get("latency_us_sb3_predict")
    if sb3 is not None:
        lines.append(
            f"- Teachers through SB3 `predict` (another runtime, what an SB3 user pays): {sb3:.0f} µs per joint step; "
            "the table compares every policy through the same numpy path."
        )
    return "\n".join(lines) + "\n" if lines else ""


def deployment_table(metrics: Mapping[str, Any]) -> str:
    """Every exported policy in onnxruntime: bytes of its weights at their stored precision, of the whole graph,
    and its latency per joint step (one session.run, batch 1, one thread), with the speed-up over the teachers'
    fp32 graph in the same runtime. Empty when nothing was exported."""
    rows = [(n, m) for n, m in _policies(metrics) if m.get("latency_us_onnx") is not None]
    if not rows:
        return ""
    lines = [
        "| policy | weight bytes | ONNX file bytes | µs / joint step (onnxruntime) | × teachers (onnxruntime) |",
        "|---|---|---|---|---|",
    ]
    for n, m in rows:
        speed = "1 (reference)" if n == "teacher" else fmt(m.get("speedup_vs_teacher_onnx"), 2)
        lines.append(
            f"| {n} | {_count(m.get('weight_bytes'))} | {_count(m.get('onnx_bytes'))} "
            f"| {fmt(m.get('latency_us_onnx'), 1)} | {speed} |"
        )
    skipped = metrics.get("_meta", {}).get("onnx_skipped") or {}
    note = "".join(f"\n- not exported: {n} ({why})" for n, why in skipped.items())
    return (
        "## Exported (ONNX)\n\nThe graph takes raw observations and returns env-ready actions (marl-distill export); "
        "int8 rows are onnxruntime's dynamic quantization of that graph, evaluated on the same episodes above.\n\n"
        + "\n".join(lines)
        + "\n"
        + note
        + "\n"
    )


def intervals() -> str:
    """One sentence per interval method used in this report."""
    return (
        f"Intervals: team return — {METHODS['episodes']}; − teachers and mixed-team differences — "
        f'{METHODS["paired"]}. Where every episode gave the same value the table says "all N equal" instead of '
        "an interval (a CI over copies of one outcome is no estimate).\n"
    )


def _mix_rows(block: Mapping[str, Any], label: str) -> list[str]:
    rows = [f"| {label} | team return (95% CI) | normalized | − base team, paired (95% CI) |", "|---|---|---|---|"]
    returns = block.get("team_return_by_mix", {})
    diffs = block.get("paired_diff_by_mix", {})
    for mix, value in block["by_mix"].items():
        rows.append(f"| {mix} | {ci_cell(returns.get(mix))} | {fmt(value)} | {ci_cell(diffs.get(mix))} |")
    return rows


def mixed_table(metrics: Mapping[str, Any]) -> str:
    lines = []
    for name, m in _policies(metrics):
        mixed = m.get("mixed_team")
        if mixed:
            lines.append(f"\n**{name}** ({mixed['episodes']} episodes per mix; agents listed act by the student):\n")
            lines += _mix_rows(mixed, "students in the team")
        for folder, cross in m.get("cross_seed", {}).items():
            who = "teachers" if name == "teacher" else name
            lines.append(
                f"\n**{who} × {who} of {folder}** (cross-seed play, {cross['episodes']} episodes per mix; agents "
                "listed act by the other run's; base team: this run's):\n"
            )
            lines += _mix_rows(cross, f"other run's {who}")
    return "\n".join(lines) + "\n" if lines else ""


def plot_returns(metrics: Mapping[str, Any], path: Path) -> Path:
    """Team return per policy with 95% CI error bars (none where every episode was equal)."""
    plt = pyplot()
    names = [n for n, _ in _policies(metrics)]
    means = [metrics[n]["team_return"]["mean"] for n in names]
    errs = [
        [m - metrics[n]["team_return"]["ci95"][0] for n, m in zip(names, means)],
        [metrics[n]["team_return"]["ci95"][1] - m for n, m in zip(names, means)],
    ]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(
        names,
        means,
        yerr=errs,
        capsize=6,
        color=["#4c72b0", "#999999", "#55a868", "#c44e52", "#8172b2"][: len(names)],
    )
    ax.set_ylabel("team return (sum over agents)")
    eps = metrics[names[0]]["team_return"]["episodes"]
    ax.set_title(f"Team return, mean and 95% CI\n(percentile bootstrap over {eps} episodes)")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return path


def write_report(run_dir: Path, metrics: Mapping[str, Any], title: str, notes: str = "") -> Path:
    plot = plot_returns(metrics, Path(run_dir) / "plots" / "returns.png")
    text = (
        f"# {title}\n\n{notes}\n\n## Returns, agreement, size and speed\n\n{table(metrics)}\n{guards(metrics)}\n"
        "Normalized return: (R − R_random) / (R_teacher − R_random) on the same episode seeds, null unless the "
        "teachers beat random significantly on them; ⚠ marks a student above 1.05. − teachers: the policy's team "
        "return minus the teachers' on each shared episode seed. Agreement and KL are measured on the states the "
        "student visits. Latency: batch 1, one CPU thread, every policy through the same numpy path (teachers' "
        "actor networks included); the batch column acts 1,024 joint steps at once. "
        f"{intervals()}\n"
        f"![team return]({plot.relative_to(run_dir).as_posix()})\n\n"
        f"{deployment_table(metrics)}"
    )
    mixed = mixed_table(metrics)
    if mixed:
        text += (
            "## Mixed teams\n\nTeam return with its 95% CI (percentile bootstrap over episodes), normalized return, "
            "and the paired difference to the base team on the same episode seeds (Student-t over episodes).\n" + mixed
        )
    return write_text(Path(run_dir) / "report.md", text)
