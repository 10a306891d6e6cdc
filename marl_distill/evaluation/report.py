"""report.md and plots from metrics.json: what a person reads after a run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marl_distill.evaluation.stats import METHODS, agent_mean
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
    n = block.get("episodes", block.get("runs"))
    if block.get("distinct_values") == 1 and n != 1:
        return f"{mean} (all {n} equal)"
    lo, hi = block.get("ci95") or (None, None)
    if lo is None or hi is None:
        return f"{mean} (no CI)"
    return f"{mean} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _policies(metrics: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(n, m) for n, m in metrics.items() if isinstance(m, dict) and "team_return" in m]


def _worst_mix(mixed: Mapping[str, Any] | None) -> str:
    """The worst mix's team return with its CI, and beside it the unmixed student team on the same episodes."""
    if not mixed:
        return "–"
    worst = mixed.get("worst_mix")
    block = (mixed.get("team_return_by_mix") or {}).get(worst)
    if block is None:
        return fmt(mixed.get("min_normalized_return"))
    alone = mixed.get("unmixed_team_return") or {}
    who = {"base": "teachers", "other": "all students"}
    beside = ", ".join(f"{who[k]} {fmt(alone[k]['mean'])}" for k in who if k in alone)
    beside = f"; on these {mixed['episodes']} episodes {beside}" if beside else ""
    return f"{ci_cell(block)} ({worst}{beside})"


def table(metrics: Mapping[str, Any]) -> str:
    """The headline, one row per policy: team return with CI, paired difference to the teachers, normalized
    return, joint agreement, the worst mixed team and acting size (the rest is in ``details``)."""
    lines = [
        "| policy | team return (95% CI) | − teachers, paired (95% CI) | normalized | joint agreement "
        "| mixed team, worst (95% CI) | acting params |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in _policies(metrics):
        norm = fmt(m.get("normalized_return"))
        if "normalized_above_1_05" in m.get("flags", []):
            norm += " ⚠"
        lines.append(
            f"| {name} | {ci_cell(m['team_return'])} | {ci_cell(m.get('paired_diff'))} | {norm} "
            f"| {fmt(m.get('joint_action_agreement'), 3)} | {_worst_mix(m.get('mixed_team'))} "
            f"| {_count(m.get('params'))} |"
        )
    return "\n".join(lines) + "\n"


def details(metrics: Mapping[str, Any]) -> str:
    """Per policy: episodes, agreement and KL averaged over agents, and the acting path's cost."""
    lines = [
        "| policy | episodes | action agreement | action MSE | KL(teacher‖student) | MACs / joint step "
        "| µs / joint step | µs / joint step, batch 1,024 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in _policies(metrics):
        lines.append(
            f"| {name} | {m['team_return']['episodes']} | {fmt(agent_mean(m.get('action_agreement')), 3)} "
            f"| {fmt(agent_mean(m.get('action_mse')), 4)} | {fmt(agent_mean(m.get('kl_teacher_student')), 4)} "
            f"| {_count(m.get('macs_per_joint_step'))} | {fmt(m.get('latency_us_per_joint_step'), 1)} "
            f"| {fmt(m.get('latency_us_batch'), 2)} |"
        )
    return "\n".join(lines) + "\n"


def seat_table(metrics: Mapping[str, Any]) -> str:
    """The headline where agents do not share one goal: each policy in each seat against the teachers in the
    others, normalized in that seat, with win / draw / loss where returns are outcomes."""
    lines = [
        "| policy | seat | return against the teachers (95% CI) | normalized (seat) | win / draw / loss "
        "| action agreement |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in _policies(metrics):
        for seat, s in (m.get("per_seat") or {}).items():
            wdl = s.get("win_draw_loss")
            wdl = " / ".join(f"{wdl[k]:.2f}" for k in ("win", "draw", "loss")) if wdl else "–"
            agree = (m.get("action_agreement") or {}).get(seat)
            lines.append(
                f"| {name} | {seat} | {ci_cell(s['return'])} | {fmt(s.get('normalized'))} | {wdl} | {fmt(agree, 3)} |"
            )
    return "\n".join(lines) + "\n"


def _count(x: float | None) -> str:
    return "–" if x is None else f"{int(x):,}"


def guards(metrics: Mapping[str, Any]) -> str:
    """What the numbers above cannot be read as: a null normalized return and why, students suspiciously above
    their teachers, a second runtime's latency (labelled, never the headline)."""
    lines = []
    teacher = metrics.get("teacher", {})
    gaps = {f" in seat {s}": b["gap_over_random"] for s, b in (teacher.get("per_seat") or {}).items()}
    for where, gap in (gaps if _by_seat(metrics) else {"": teacher.get("gap_over_random")}).items():
        if gap is not None:
            hi = (gap.get("ci95") or [None, None])[1]
            below = hi is not None and hi < 0
            state = "significant" if gap.get("significant") else "**below random**" if below else "**not significant**"
            lines.append(f"- Teachers − random{where}, paired on the same episodes: {ci_cell(gap)} ({state}).")
    reason = (metrics.get("_meta", {}).get("normalized_return") or {}).get("reason")
    if reason and not _by_seat(metrics):  # per seat, the reading under the table says it
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
        why = metrics.get("_meta", {}).get("onnx_not_exported")
        return f"## Exported (ONNX)\n\nNot exported: {why}.\n\n" if why else ""
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
        f"Intervals: returns — {METHODS['episodes']}; − teachers and mixed-team differences — "
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
            alone = mixed.get("unmixed_team_return") or {}
            who = {"base": "the teachers alone", "other": "the students alone"}
            beside = "; ".join(f"{who[k]} {ci_cell(alone[k])}" for k in who if k in alone)
            beside = f"; on those episodes {beside}" if beside else ""
            lines.append(
                f"\n**{name}** ({mixed['episodes']} episodes per mix; agents listed act by the student{beside}):\n"
            )
            lines += _mix_rows(mixed, "students in the team")
        for folder, cross in m.get("cross_seed", {}).items():
            who = "teachers" if name == "teacher" else name
            lines.append(
                f"\n**{who} × {who} of {folder}** (cross-seed play, {cross['episodes']} episodes per mix; agents "
                "listed act by the other run's; base team: this run's):\n"
            )
            lines += _mix_rows(cross, f"other run's {who}")
    return "\n".join(lines) + "\n" if lines else ""


def _err(block: Mapping[str, Any]) -> tuple[float, float]:
    """Distances from the mean to the CI's ends; none where every episode gave one value (no estimate)."""
    lo, hi = block.get("ci95") or (None, None)
    if lo is None or hi is None or block.get("distinct_values") == 1:
        return 0.0, 0.0
    return block["mean"] - lo, hi - block["mean"]


def plot_returns(metrics: Mapping[str, Any], path: Path) -> Path:
    """Each policy's return as a point with its 95% CI: the team return, or where agents do not share one goal
    each seat's return against the teachers (one marker per seat)."""
    plt = pyplot()
    rows = [(n, m) for n, m in _policies(metrics) if not _by_seat(metrics) or m.get("per_seat")]
    seats = sorted({seat for _, m in rows for seat in (m.get("per_seat") or {})}) if _by_seat(metrics) else []
    series = [(s, [m["per_seat"][s]["return"] for _, m in rows]) for s in seats]
    series = series or [("team", [m["team_return"] for _, m in rows])]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(rows) + 2), 3.8))
    step = 0.5 / len(series)
    for i, (label, blocks) in enumerate(series):
        x = [k + (i - (len(series) - 1) / 2) * step for k in range(len(rows))]
        errs = list(zip(*(_err(b) for b in blocks)))
        ax.errorbar(x, [b["mean"] for b in blocks], yerr=errs, fmt="o", capsize=5, label=label)
    ax.set_xticks(range(len(rows)), [n for n, _ in rows], rotation=20 if len(rows) > 5 else 0)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    episodes = series[0][1][0].get("episodes")
    if seats:
        ax.set_ylabel("seat return, against the teachers")
        ax.legend(title="seat", fontsize="small")
        ax.set_title(f"Return per seat, mean and 95% CI ({episodes} episodes)")
    else:
        ax.set_ylabel("team return (sum over agents)")
        ax.set_title(f"Team return, mean and 95% CI ({episodes} episodes)")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return path


def _by_seat(metrics: Mapping[str, Any]) -> bool:
    """Do the agents not share one goal (per-seat figures are the headline)?"""
    return (metrics.get("_meta", {}).get("shared_goal") or {}).get("value") is False


SEATS = (
    "The agents do not share one goal ({why}). So the headline is per seat: each policy sits in one seat while "
    "the teachers hold the others (the teachers' row is the teacher team itself), on the same episode seeds. "
    "Normalized (seat): (R − R_random) / (R_teacher − R_random) in that seat, null unless the teacher beats random "
    "there significantly. Team sums stay in metrics.json but are not scored. Agreement and KL are measured on the "
    "states the student team visits."
)
TEAM = (
    "Normalized return: (R − R_random) / (R_teacher − R_random) on the same episode seeds, null unless the "
    "teachers beat random significantly on them; ⚠ marks a student above 1.05. − teachers: the policy's team "
    "return minus the teachers' on each shared episode seed. Mixed team, worst: the lowest team return over the "
    "mixes (agents named act by the student, the rest by the teachers), played on the first mixed_episodes "
    "episodes only, so the teachers and the all-student team on those same episodes stand beside it. Agreement "
    "and KL are measured on the states the student visits."
)
COSTS = (
    "Averages over agents. Latency: batch 1, one CPU thread, every policy through the same numpy path (teachers' "
    "actor networks included); the batch column acts 1,024 joint steps at once."
)


def summary_lines(metrics: Mapping[str, Any]) -> list[str]:
    """What a command prints after evaluating: a line per policy (per policy and seat where the agents do not
    share one goal)."""
    lines = []
    for name, m in _policies(metrics):
        if _by_seat(metrics):  # no shared goal: each seat against the teachers in the others
            lines += [f"{name:>10}: {seat}: return {ci_cell(s['return'])}  normalized {fmt(s['normalized'], 3)}"
                      for seat, s in m.get("per_seat", {}).items()]  # fmt: skip
            continue
        tr = m["team_return"]
        extra = f"  joint agreement {m['joint_action_agreement']:.3f}" if "joint_action_agreement" in m else ""
        lines.append(
            f"{name:>10}: team return {tr['mean']:8.2f} [{tr['ci95'][0]:.2f}, {tr['ci95'][1]:.2f}]"
            f"  normalized {fmt(m.get('normalized_return'), 3)}  params {m.get('params')}{extra}"
        )
    return lines


def report_text(metrics: Mapping[str, Any], *, title: str = "", notes: str = "", plot: str = "") -> str:
    """report.md from metrics.json alone, so that a results page renders the same text from a committed
    metrics.json (docs/results/render.py) as the run wrote beside it; ``plot``: the returns plot's path."""
    if _by_seat(metrics):
        why = metrics["_meta"]["shared_goal"].get("why", "")
        head, reading = seat_table(metrics), SEATS.format(why=why)
    else:
        head, reading = table(metrics), TEAM
    text = f"# {title}\n\n{notes}\n\n" if title else ""
    text += (
        f"## Returns\n\n{head}\n{reading} {intervals()}\n"
        + (f"![returns]({plot})\n\n" if plot else "")
        + f"{guards(metrics)}\n## Agreement, size and speed\n\n{details(metrics)}\n{COSTS}\n\n"
        f"{deployment_table(metrics)}"
    )
    mixed = "" if _by_seat(metrics) else mixed_table(metrics)  # team sums of mixes mean nothing there
    if mixed:
        text += (
            "## Mixed teams\n\nTeam return with its 95% CI (percentile bootstrap over episodes), normalized return, "
            "and the paired difference to the base team on the same episode seeds (Student-t over episodes).\n" + mixed
        )
    return text


def write_report(run_dir: Path, metrics: Mapping[str, Any], title: str, notes: str = "") -> Path:
    plot = plot_returns(metrics, Path(run_dir) / "plots" / "returns.png")
    text = report_text(metrics, title=title, notes=notes, plot=plot.relative_to(run_dir).as_posix())
    return write_text(Path(run_dir) / "report.md", text)
