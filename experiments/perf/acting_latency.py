"""Acting cost of a run's teachers and students, like for like: every policy through the same numpy runtime.

For each policy of RUN_DIR (the teacher team, each student) on the same real visited observations (a few
teacher episodes on the run's evaluation seeds):

* numpy, batch 1: microseconds per joint step (every agent's action), the median of ``--repeats`` calls, one
  joint observation per call, teachers' actor MLPs and students through ``marl_distill.policy.numpy_mlp`` — the
  headline;
* SB3 predict, batch 1 (teachers only): the same through ``model.predict``, what an SB3 user pays — another
  runtime, so never compared with the students' numpy figure as if it were the same thing;
* numpy, batch 1,024: microseconds per joint step when 1,024 joint steps are acted at once (compute, not call
  overhead);
* MACs per joint step, acting parameters, and weight bytes.

Each latency is measured in ``--rounds`` rounds (the policies' order rotates between rounds, so a slow patch of
the machine hits all of them); the table shows the mean over rounds with its 95% Student-t interval, and the
teacher/student ratios are computed per round, then averaged with the same interval. CPU, torch and BLAS at one
thread throughout.

    python experiments/perf/acting_latency.py runs/quickstart --repeats 300 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl_distill.evaluation.metrics import episode_seeds_of
from marl_distill.evaluation.rollout import run_episodes
from marl_distill.evaluation.speed import BATCH, BLAS_ONE_THREAD, WARMUP, batch_repeats, timed_rounds
from marl_distill.evaluation.stats import mean_t_ci
from marl_distill.pipeline.runner import env_factory, load_run_config, load_students, load_teachers

LATENCIES = {
    "latency_us_per_joint_step": "numpy b=1",
    "latency_us_sb3_predict": "SB3 predict b=1",
    "latency_us_batch": f"numpy b={BATCH:,}",
}


def fmt(x: float) -> str:
    """Three significant figures at most, no exponent: 0.812, 31.0, 681."""
    return f"{x:,.0f}" if abs(x) >= 99.95 else f"{x:#.3g}"


def fmt_ci(m: float, lo: float, hi: float) -> str:
    return fmt(m) if np.isnan(lo) else f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"


def cpu_name() -> str:
    """The CPU model (Linux) and its logical CPU count: latencies mean little without it."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.machine()}, {os.cpu_count()} logical CPUs"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="a run folder (config.toml, teachers/, students/)")
    p.add_argument("--repeats", type=int, default=300, help="batch-1 joint steps timed per policy per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds (each a fresh median per policy)")
    p.add_argument("--episodes", type=int, default=8, help="teacher episodes played to gather observations")
    p.add_argument("--json", type=Path, default=None, help="also write every round's figures to this file")
    args = p.parse_args(argv)

    cfg = load_run_config(args.run_dir)
    factory, spec = env_factory(cfg)
    policies: dict[str, Any] = {"teacher": load_teachers(cfg, args.run_dir, spec)}
    policies.update(load_students(cfg, args.run_dir, spec))
    seed = cfg.evaluate.seed
    roll = run_episodes(  # the run's own evaluation episodes (the first few): what evaluate times on
        factory,
        policies["teacher"],
        seeds=episode_seeds_of(cfg.evaluate)[: args.episodes],
        n_envs=args.episodes,
        rng=np.random.default_rng(seed),
    )
    obs = roll.observations
    rows = min(len(o) for o in obs.values())
    names = list(policies)
    rounds = timed_rounds(policies, obs, repeats=args.repeats, rounds=args.rounds)

    print(
        f"{cfg.env.id} ({len(spec.agents)} agents) from {args.run_dir}: acting cost per joint step (all agents)\n"
        f"runtime: numpy {np.__version__} (float32) for every policy's MLPs (teachers' SB3 actors read into it); "
        f"SB3 predict on torch {torch.__version__} as its own column\n"
        f"CPU {cpu_name()}; torch 1 thread, {BLAS_ONE_THREAD}\n"
        f"batch 1: median of {args.repeats} calls after {WARMUP} warm-up, cycling {rows} visited joint observations "
        f"({args.episodes} teacher episodes: the first of the run's evaluation seeds); batch {BATCH:,}: median of "
        f"{batch_repeats(args.repeats)} calls / {BATCH:,}\n"
        f"latencies: mean over {args.rounds} rounds [95% Student-t interval], microseconds per joint step\n"
    )
    summary: dict[str, Any] = {}
    head = f"{'policy':<12} {'runtime':<8}" + "".join(f" {label:>24}" for label in LATENCIES.values())
    print(head + f" {'MACs':>9} {'params':>8} {'weight B':>9}")
    for name in names:
        last = rounds[-1][name]
        row = {
            key: mean_t_ci([r[name][key] for r in rounds]) for key in LATENCIES if all(key in r[name] for r in rounds)
        }
        summary[name] = {**{k: v for k, v in last.items() if not k.startswith("latency_us")}, **row}
        cells = "".join(f" {fmt_ci(*row[key]) if key in row else '-':>24}" for key in LATENCIES)
        runtime = last.get("acting_runtime", "?")
        print(
            f"{name:<12} {runtime.split(' ')[0]:<8}{cells} {last.get('macs_per_joint_step') or '-':>9} "
            f"{last.get('params', '-'):>8} {last.get('weight_bytes', '-'):>9}"
        )
        if runtime != "numpy":
            print(f"  {name}: {runtime}")

    print("\nteacher / student (ratio per round, mean [95% t-interval]; >1: the student is cheaper)")
    ratio_cols = {
        "like for like, numpy b=1": ("latency_us_per_joint_step", "latency_us_per_joint_step"),
        f"like for like, numpy b={BATCH:,}": ("latency_us_batch", "latency_us_batch"),
        "SB3 predict / numpy b=1 (runtimes differ)": ("latency_us_sb3_predict", "latency_us_per_joint_step"),
    }
    print(f"{'student':<12}" + "".join(f" {label:>42}" for label in ratio_cols) + f" {'MACs':>7} {'params':>7}")
    teacher = summary["teacher"]
    for name in names[1:]:
        cells = ""
        for label, (t_key, s_key) in ratio_cols.items():
            per_round = [r["teacher"].get(t_key, np.nan) / r[name].get(s_key, np.nan) for r in rounds]
            summary[name][f"ratio {label}"] = mean_t_ci(per_round)
            cells += f" {fmt_ci(*mean_t_ci(per_round)) if np.all(np.isfinite(per_round)) else '-':>42}"
        macs = teacher.get("macs_per_joint_step"), summary[name].get("macs_per_joint_step")
        mac_ratio = f"{macs[0] / macs[1]:.1f}" if all(macs) else "-"
        print(f"{name:<12}{cells} {mac_ratio:>7} {teacher['params'] / summary[name]['params']:>7.1f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": {**vars(args), "run_dir": str(args.run_dir), "json": str(args.json)},
                    "blas": BLAS_ONE_THREAD,
                    "summary": summary,
                    "rounds": rounds,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
