"""A benchmark's figures: returns with CI bars, agreement against student size, mixed-team heat maps and
distillation learning curves, one panel per task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marl_distill.evaluation import size
from marl_distill.utils.files import read_json
from marl_distill.utils.plotting import pyplot, save_figure


def _or(value: float | None, default: float) -> float:
    """A bound or value that may be null (one run, no normalized figure): ``default`` in its place."""
    return default if value is None else value


def _tasks(summary: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    return [(env, task, rows) for env, tasks in summary.items() for task, rows in tasks.items()]


def _panels(n: int, width: float, height: float) -> tuple[Any, list[Any]]:
    plt = pyplot()
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def normalized_rows(rows: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Label -> normalized-return block of a task: per policy, or per policy and seat where the agents do not
    share one goal ("policy · seat"); blocks with no value left out."""
    out = {}
    for policy, r in rows.items():
        seats = r.get("per_seat")
        blocks = (
            {f"{policy} · {s}": b["normalized"] for s, b in seats.items()}
            if seats
            else {policy: r["normalized_return"]}
        )
        out.update({label: b for label, b in blocks.items() if b.get("iqm") is not None})
    return out


def returns(path: Path, summary: Mapping[str, Any]) -> Path:
    """Normalized return per policy, or per policy and seat (IQM over runs, trimmed-mean t 95% CI bars, none below
    two runs); 0 = random, 1 = teacher."""
    tasks = _tasks(summary)
    n_pol = max(len(normalized_rows(rows)) for _, _, rows in tasks)
    fig, axes = _panels(len(tasks), 4.6, 1.2 + 0.38 * n_pol)
    for ax, (env, task, rows) in zip(axes, tasks):
        blocks = normalized_rows(rows)
        names = list(blocks)[::-1]
        iqm = np.array([blocks[p]["iqm"] for p in names])
        lo = np.array([_or(blocks[p]["ci95"][0], v) for p, v in zip(names, iqm)])
        hi = np.array([_or(blocks[p]["ci95"][1], v) for p, v in zip(names, iqm)])
        who = [p.split(" · ")[0] for p in names]
        colors = ["#999999" if p == "random" else "#4c72b0" if p == "teacher" else "#55a868" for p in who]
        ax.barh(names, iqm, xerr=[iqm - lo, hi - iqm], color=colors, capsize=4)
        ax.axvline(1.0, color="#4c72b0", lw=0.8, ls="--")
        ax.axvline(0.0, color="#999999", lw=0.8, ls="--")
        runs = rows["teacher"]["runs"]
        ax.set_title(f"{task} ({env})", fontsize=10)
        ax.set_xlabel(f"normalized return (0 = random, 1 = teacher)\nIQM over {runs} seeds, trimmed-mean t 95% CI")
    fig.tight_layout()
    return save_figure(fig, path)


def agreement_vs_size(path: Path, summary: Mapping[str, Any]) -> Path | None:
    """Joint action agreement with the teachers against acting parameters (Discrete tasks)."""
    points = [
        (task, policy, r["params"], r["joint_action_agreement"])
        for _, task, rows in _tasks(summary)
        for policy, r in rows.items()
        if policy not in ("teacher", "random") and "joint_action_agreement" in r and r.get("params")
    ]
    if not points:
        return None
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    tasks = sorted({p[0] for p in points})
    markers = "osD^v<>"
    for i, task in enumerate(tasks):
        mine = [p for p in points if p[0] == task]
        x = np.array([p[2] for p in mine])
        y = np.array([p[3]["mean"] for p in mine])
        err = np.array(
            [
                [p[3]["mean"] - _or(p[3]["ci95"][0], p[3]["mean"]), _or(p[3]["ci95"][1], p[3]["mean"]) - p[3]["mean"]]
                for p in mine
            ]
        ).T
        ax.errorbar(x, y, yerr=err, fmt=markers[i % len(markers)], capsize=3, label=task)
        for xi, yi, p in zip(x, y, mine):
            ax.annotate(p[1], (xi, yi), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("student acting parameters (log scale)")
    ax.set_ylabel("joint action agreement with teachers\n(fraction of student-visited steps)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Agreement vs student size (mean over seeds, Student-t 95% CI)")
    ax.legend(title="task", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def mixed_heatmap(path: Path, summary: Mapping[str, Any]) -> Path | None:
    """Normalized return of every mixed team (columns: agents acting by the student), mean over seeds; blank
    where no run had a normalized value."""
    tasks = [(env, task, rows) for env, task, rows in _tasks(summary) if any("mixed_team" in r for r in rows.values())]
    if not tasks:
        return None
    n_pol = max(sum("mixed_team" in r for r in rows.values()) for _, _, rows in tasks)
    n_mix = max(len(r["mixed_team"]) for _, _, rows in tasks for r in rows.values() if "mixed_team" in r)
    fig, axes = _panels(len(tasks), 1.6 + 0.75 * n_mix, 1.6 + 0.45 * n_pol)
    for ax, (env, task, rows) in zip(axes, tasks):
        names = [p for p, r in rows.items() if "mixed_team" in r]
        mixes = list(rows[names[0]]["mixed_team"])
        grid = np.array([[_or(rows[p]["mixed_team"].get(m), np.nan) for m in mixes] for p in names], dtype=float)
        low = np.nanmin(grid) if np.isfinite(grid).any() else 0.0
        im = ax.imshow(grid, vmin=min(0.0, low), vmax=1.0, cmap="RdYlGn", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(mixes)), [m.replace("+", "+\n") for m in mixes], fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("agents acting by the student (the rest by their teachers)")
        ax.set_title(f"{task} ({env})", fontsize=10)
        fig.colorbar(im, ax=ax, label="normalized return")
    fig.tight_layout()
    return save_figure(fig, path)


def learning_curves(path: Path, root: Path, runs: Sequence[Mapping[str, Any]]) -> Path | None:
    """Held-out agreement (or action MSE) per distillation epoch, mean over seeds with a min-max band."""
    curves: dict[str, dict[str, list[np.ndarray]]] = {}
    ylabel: dict[str, str] = {}
    for run in runs:
        for student in (Path(root) / run["folder"] / "students").glob("*/history.json"):
            history = read_json(student)
            if not history:
                continue
            key = "agreement" if history[0].get("agreement") is not None else "action_mse"
            ylabel[run["task"]] = "held-out agreement with teacher" if key == "agreement" else "held-out action MSE"
            label = f"{run['setting']}/{student.parent.name}"
            curves.setdefault(run["task"], {}).setdefault(label, []).append(np.array([h[key] for h in history]))
    if not curves:
        return None
    fig, axes = _panels(len(curves), 5.0, 3.6)
    for ax, (task, by_policy) in zip(axes, curves.items()):
        for label, ys in by_policy.items():
            width = max(len(y) for y in ys)
            padded = np.full((len(ys), width), np.nan)
            for i, y in enumerate(ys):
                padded[i, : len(y)] = y
            x = np.arange(1, width + 1)
            (line,) = ax.plot(x, np.nanmean(padded, axis=0), label=label, lw=1.2)
            ax.fill_between(x, np.nanmin(padded, axis=0), np.nanmax(padded, axis=0), color=line.get_color(), alpha=0.15)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("distillation epoch (all iterations)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(ylabel[task])
        ax.legend(fontsize=7)
    fig.suptitle("Distillation curves: mean over seeds, band = min to max (runs may stop early)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def size_pareto(path: Path, summary: Mapping[str, Any]) -> Path | None:
    """Normalized return (IQM over runs, trimmed-mean t 95% CI bars) against acting weight bytes (log scale) for
    every student, fp32 and int8, with the teachers (fp32 and int8) as reference points and the Pareto front."""
    tasks = [(e, t, rows, size.candidates(rows)) for e, t, rows in _tasks(summary)]
    tasks = [x for x in tasks if len(x[3]) >= 3]
    if not tasks:
        return None
    fig, axes = _panels(len(tasks), 5.6, 4.4)
    colors = {"shared": "#dd8452", "per-agent": "#55a868"}
    for ax, (env, task, rows, points) in zip(axes, tasks):
        for policy, r in points.items():
            nr = r["normalized_return"]
            y = nr["iqm"]
            err = [[y - _or(nr["ci95"][0], y)], [_or(nr["ci95"][1], y) - y]]
            int8 = policy.endswith("-int8")
            kind = policy.split("/")[-1].removesuffix("-int8")
            color = "#4c72b0" if not size.is_student(policy) else colors.get(kind, "#8172b3")
            marker = "*" if not size.is_student(policy) else "o"
            ax.errorbar(
                r["weight_bytes"],
                y,
                yerr=err,
                fmt=marker,
                ms=12 if marker == "*" else 6,
                color=color,
                mfc="white" if int8 else color,
                capsize=2,
                lw=0.8,
            )
        front = size.pareto(points)
        ax.plot(
            [points[p]["weight_bytes"] for p in front],
            [points[p]["normalized_return"]["iqm"] for p in front],
            color="#444444",
            lw=0.8,
            ls=":",
            drawstyle="steps-post",
        )
        best = size.smallest_holding(rows)
        if best is not None:
            ax.annotate(
                best,
                (points[best]["weight_bytes"], points[best]["normalized_return"]["iqm"]),
                xytext=(8, -16),
                textcoords="offset points",
                fontsize=8,
            )
        ax.axhline(size.HOLD, color="#999999", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_title(f"{task} ({env})", fontsize=10)
        ax.set_xlabel("acting weight bytes (log; int8 at stored precision)")
        ax.set_ylabel(f"normalized return, IQM over {rows['teacher']['runs']} seeds (95% CI)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", ls="", label=k) for k, c in colors.items()]
    handles += [
        Line2D([], [], color="#666666", marker="o", mfc="white", ls="", label="int8 (hollow)"),
        Line2D([], [], color="#4c72b0", marker="*", ms=10, ls="", label="teachers (fp32; int8 hollow)"),
    ]
    axes[-1].legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def write_all(root: Path, summary: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Every figure that has data, under root/plots (run folders are relative to root); returns their paths."""
    folder = Path(root) / "plots"
    made = [
        returns(folder / "returns.png", summary),
        agreement_vs_size(folder / "agreement_vs_size.png", summary),
        mixed_heatmap(folder / "mixed_teams.png", summary),
        learning_curves(folder / "learning_curves.png", root, runs),
        size_pareto(folder / "size_pareto.png", summary),
    ]
    return [p for p in made if p is not None]
