"""Teachers trained on the batched replica against teachers trained on mpe2, both scored on mpe2 itself.

    python experiments/replica_vs_mpe2.py --seeds 5 --out runs/replica_vs_mpe2
    python experiments/replica_vs_mpe2.py --benchmarks runs/benchmark_mpe2 runs/benchmark_fast --out runs/pair

(The second form compares two benchmark folders of one grid, cell by cell: see ``benchmark_pair``.)

For each run seed, the quickstart's teachers (experiments/quickstart.toml's ``[teachers]``, its env kwargs) are
trained twice with that seed, once on ``simple_spread`` (mpe2) and once on ``simple_spread_fast`` (the replica),
and both teams then play the same ``--episodes`` episode seeds on mpe2's ``simple_spread`` through the lab's own
evaluation (greedy actions). Prints each team's mean team return (summed over agents) per seed, the mean over
seeds with its 95% Student-t interval (over seeds), the paired difference replica - mpe2 with its interval, and
whether the two teams' zips hold the same weights. Writes everything to ``OUT/replica_vs_mpe2.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import marl_distill as md
from marl_distill import config as config_mod
from marl_distill.env.registry import resolve
from marl_distill.evaluation.rollout import run_episodes
from marl_distill.evaluation.stats import mean_t_ci
from marl_distill.pipeline import runner
from marl_distill.utils.provenance import provenance

SIDES = {"mpe2": "simple_spread", "replica": "simple_spread_fast"}
HERE = Path(__file__).resolve().parent


def same_weights(a: Path, b: Path) -> bool:
    """Whether two teams' saved policies hold bit-identical parameters."""
    from stable_baselines3 import PPO

    zips = sorted((a / "teachers").glob("*.zip"))
    assert zips, f"no teachers in {a}"
    for zip_a in zips:
        x = PPO.load(zip_a, device="cpu").policy.state_dict()
        y = PPO.load(b / "teachers" / zip_a.name, device="cpu").policy.state_dict()
        if any(not torch.equal(x[k], y[k]) for k in x):
            return False
    return True


def team_returns(folder: Path, kwargs: dict, seeds: list[int]) -> np.ndarray:
    """Per-episode team returns of ``folder``'s teachers on mpe2's simple_spread, greedy, on ``seeds``."""
    cfg = runner.load_run_config(folder)
    factory, spec = runner.env_factory(cfg)
    teachers = runner.load_teachers(cfg, folder, spec)
    mpe2 = resolve(SIDES["mpe2"], kwargs)
    out = run_episodes(mpe2, teachers, seeds=seeds, n_envs=16, rng=np.random.default_rng(0))
    return np.sum([r for r in out.per_agent.values()], axis=0)


def table(result: dict) -> str:
    """The comparison as markdown (what the results page renders from replica_vs_mpe2.json)."""

    def cell(f: dict) -> str:
        return f"{f['mean']:.2f} [{f['ci95'][0]:.2f}, {f['ci95'][1]:.2f}]"

    first, last = result["episode_seeds"]
    lines = [
        f"Team return (summed over agents) on mpe2's simple_spread, greedy, episode seeds {first}-{last}; per seed a "
        "95% t-interval over episodes, over seeds a 95% t-interval over the seeds' means.",
        "",
        "| run seed | trained on mpe2 | trained on the replica | difference | same weights |",
        "|---:|---|---|---:|---|",
    ]
    for r in result["per_seed"]:
        diff = r["replica"]["mean"] - r["mpe2"]["mean"]
        same = "yes" if r["same_weights"] else "no"
        lines.append(f"| {r['seed']} | {cell(r['mpe2'])} | {cell(r['replica'])} | {diff:+.3f} | {same} |")
    over = result["over_seeds"]
    n = len(result["per_seed"])
    lines.append(f"| mean of {n} | {cell(over['mpe2'])} | {cell(over['replica'])} | {cell(over['replica - mpe2'])} | |")
    return "\n".join(lines)


TIMED = ("latency", "speedup", "seconds", "bytes_on_disk", "onnx_bytes", "folder")
"""Record keys that differ between two runs of the same policies: timings (latencies, speed-ups), file sizes (SB3
zips hold episode times, ONNX files their producer's details) and where the run folder is."""


def benchmark_pair(mpe2_dir: Path, replica_dir: Path) -> dict:
    """Two benchmarks of the same grid, one on mpe2's tasks and one on their replicas, cell by cell (tasks matched
    by name): how many (task, policy, seed) records are equal once timings and file sizes are set aside, and the
    largest difference in team and normalized return."""

    def by_task(folder: Path) -> dict:
        results = json.loads((folder / "results.json").read_text())
        return {task: (env, cells) for env, tasks in results.items() for task, cells in tasks.items()}

    a, b = by_task(mpe2_dir), by_task(replica_dir)
    rows = []
    for task in sorted(set(a) & set(b)):
        (env_a, cells_a), (env_b, cells_b) = a[task], b[task]
        equal = total = 0
        worst = {"team_return": 0.0, "normalized_return": 0.0}
        for policy, seeds in cells_a.items():
            for seed, rec in seeds.items():
                other = cells_b.get(policy, {}).get(seed)
                total += 1
                if other is None:
                    continue
                same = {k: v for k, v in rec.items() if not any(w in k for w in TIMED)}
                equal += same == {k: v for k, v in other.items() if not any(w in k for w in TIMED)}
                for key in worst:
                    if isinstance(rec.get(key), float) and isinstance(other.get(key), float):
                        worst[key] = max(worst[key], abs(rec[key] - other[key]))
        rows.append({"task": task, "mpe2_env": env_a, "replica_env": env_b, "records": total, "equal": equal,
                     "max_abs_diff": worst})  # fmt: skip
    return {"mpe2": str(mpe2_dir), "replica": str(replica_dir), "tasks": rows, "provenance": provenance()}


def pair_table(result: dict) -> str:
    """``benchmark_pair``'s comparison as markdown (the results page renders it from benchmark_pair.json)."""
    lines = [
        f"`{result['mpe2']}` (mpe2) against `{result['replica']}` (replicas): every (policy, seed) record of a task, "
        "timings and file sizes aside.",
        "",
        "| task | envs | records equal | largest team-return difference | largest normalized-return difference |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["tasks"]:
        d = r["max_abs_diff"]
        lines.append(f"| {r['task']} | `{r['mpe2_env']}` / `{r['replica_env']}` | {r['equal']} of {r['records']} | "
                     f"{d['team_return']:.3g} | {d['normalized_return']:.3g} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=Path("experiments/quickstart.toml"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("runs/replica_vs_mpe2"))
    p.add_argument("--benchmarks", type=Path, nargs=2, metavar=("MPE2", "REPLICA"),
                   help="instead: compare two benchmark folders of one grid, on mpe2 and on the replicas")  # fmt: skip
    args = p.parse_args(argv)
    if args.benchmarks:
        pair = benchmark_pair(*args.benchmarks)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "benchmark_pair.json").write_text(json.dumps(pair, indent=1))
        print(pair_table(pair))
        print(f"wrote {args.out / 'benchmark_pair.json'}")
        return 0
    cfg = config_mod.load(args.config)
    kwargs = dict(cfg.env.kwargs)
    episode_seeds = [10_000 + k for k in range(args.episodes)]
    rows = []
    for seed in range(args.seeds):
        row: dict = {"seed": seed}
        for side, env_id in SIDES.items():
            folder = args.out / f"{side}_seed{seed}"
            if not (folder / "teachers" / "teachers.json").exists():
                md.train_teachers(
                    env_id, out=folder, teachers=cfg.teachers, env_kwargs=kwargs, seed=seed, progress=False
                )
            returns = team_returns(folder, kwargs, episode_seeds)
            m, lo, hi = mean_t_ci(returns)
            row[side] = {"mean": m, "ci95": [lo, hi]}
        row["same_weights"] = same_weights(args.out / f"mpe2_seed{seed}", args.out / f"replica_seed{seed}")
        rows.append(row)
        print(f"seed {seed}: mpe2-trained {row['mpe2']['mean']:.2f} [{row['mpe2']['ci95'][0]:.2f}, "
              f"{row['mpe2']['ci95'][1]:.2f}], replica-trained {row['replica']['mean']:.2f} "
              f"[{row['replica']['ci95'][0]:.2f}, {row['replica']['ci95'][1]:.2f}], "
              f"same weights: {row['same_weights']}", flush=True)  # fmt: skip
    summary = {}
    for side in SIDES:
        summary[side] = mean_t_ci([r[side]["mean"] for r in rows])
    summary["replica - mpe2"] = mean_t_ci([r["replica"]["mean"] - r["mpe2"]["mean"] for r in rows])
    for name, (m, lo, hi) in summary.items():
        print(f"{name:>15}: {m:8.3f}  [{lo:.3f}, {hi:.3f}]  (mean over {len(rows)} seeds, 95% t-interval)")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"config": str(args.config), "episode_seeds": [episode_seeds[0], episode_seeds[-1]], "per_seed": rows,
              "over_seeds": {k: {"mean": v[0], "ci95": [v[1], v[2]]} for k, v in summary.items()},
              "provenance": provenance()}  # fmt: skip
    (args.out / "replica_vs_mpe2.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out / 'replica_vs_mpe2.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
