"""Teachers trained on the batched replica against teachers trained on mpe2, both scored on mpe2 itself.

    python experiments/replica_vs_mpe2.py --seeds 5 --out runs/replica_vs_mpe2

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=Path("experiments/quickstart.toml"))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("runs/replica_vs_mpe2"))
    args = p.parse_args(argv)
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
