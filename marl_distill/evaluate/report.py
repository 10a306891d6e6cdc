"""report.md and plots from metrics.json: what a person reads after a run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marl_distill.evaluate.stats import agent_mean
from marl_distill.io import write_text
from marl_distill.plotting import pyplot, save_figure

CORE = ("teacher", "random")


def fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def table(metrics: Mapping[str, Any]) -> str:
    """One row per policy: returns with CI, normalized return, agreement, KL, size, speed."""
    head = (
        "| policy | team return (95% CI) | episodes | normalized | action agreement | joint agreement "
        "| action MSE | KL(teacher‖student) | mixed-team min | acting params | µs / joint step |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, m in metrics.items():
        if not isinstance(m, dict) or "team_return" not in m:
            continue
        tr = m["team_return"]
        lo, hi = tr["ci95"]
        mixed = m.get("mixed_team", {}).get("min_normalized_return")
        rows.append(
            f"| {name} | {tr['mean']:.2f} [{lo:.2f}, {hi:.2f}] | {tr['episodes']} | {fmt(m.get('normalized_return'))} "
            f"| {fmt(agent_mean(m.get('action_agreement')), 3)} | {fmt(m.get('joint_action_agreement'), 3)} "
            f"| {fmt(agent_mean(m.get('action_mse')), 4)} "
            f"| {fmt(agent_mean(m.get('kl_teacher_student')), 4)} | {fmt(mixed)} | {fmt(m.get('params'))} "
            f"| {fmt(m.get('latency_us_per_joint_step'), 0)} |"
        )
    return head + "\n".join(rows) + "\n"


def mixed_table(metrics: Mapping[str, Any]) -> str:
    lines = []
    for name, m in metrics.items():
        mixed = m.get("mixed_team") if isinstance(m, dict) else None
        if not mixed:
            continue
        lines.append(f"\n**{name}** ({mixed['episodes']} episodes per mix; agents listed act by the student):\n")
        lines.append("| students in the team | normalized return |\n|---|---|")
        lines += [f"| {mix} | {value:.2f} |" for mix, value in mixed["by_mix"].items()]
        for folder, cross in m.get("cross_seed", {}).items():
            lines.append(
                f"\n**{name} × {name} of {folder}** (cross-seed play; agents listed act by the other run's):\n"
            )
            lines.append("| other run's students | normalized return |\n|---|---|")
            lines += [f"| {mix} | {value:.2f} |" for mix, value in cross["by_mix"].items()]
    return "\n".join(lines) + "\n" if lines else ""


def plot_returns(metrics: Mapping[str, Any], path: Path) -> Path:
    """Team return per policy with 95% CI error bars."""
    plt = pyplot()
    names = [n for n, m in metrics.items() if isinstance(m, dict) and "team_return" in m]
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
    ax.set_title(f"Team return, mean and 95% CI ({metrics[names[0]]['team_return']['episodes']} episodes)")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return path


def write_report(run_dir: Path, metrics: Mapping[str, Any], title: str, notes: str = "") -> Path:
    plot = plot_returns(metrics, Path(run_dir) / "plots" / "returns.png")
    text = (
        f"# {title}\n\n{notes}\n\n## Returns, agreement, size and speed\n\n{table(metrics)}\n"
        "Normalized return: (R − R_random) / (R_teacher − R_random) on the same episode seeds. Agreement and KL are "
        "measured on the states the student visits. Latency: batch 1, one CPU thread; teachers through SB3 "
        "`predict`.\n\n"
        f"![team return]({plot.relative_to(run_dir).as_posix()})\n\n"
    )
    mixed = mixed_table(metrics)
    if mixed:
        text += "## Mixed teams\n" + mixed
    return write_text(Path(run_dir) / "report.md", text)
