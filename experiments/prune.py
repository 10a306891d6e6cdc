"""Pruning the size sweep's students, beside students of the same width trained from scratch (same seeds).

    marl-distill benchmark experiments/size_sweep.toml --out runs/size_sweep
    python3 experiments/prune.py runs/size_sweep --task simple_spread --from w32-d1 --widths 4 8 16

For every seed of TASK, each student (shared, per-agent) of the setting FROM is

* structurally pruned to each width (``marl_distill.compress.prune.structured``: the hidden units of smallest
  incoming-weight norm go), then fine-tuned by distillation for ``--finetune-epochs`` epochs (``pruned-W+ft``);
* magnitude-pruned at each ``--sparsity`` (smallest |w| of every weight matrix zeroed; no fine-tune).

The control for a fine-tune: the sweep's own student of that width (setting ``w{W}-d{depth}``, same task and seed),
trained from scratch, fine-tuned the same way (``scratch-W+ft``). Both fine-tunes use the same seeds of the run's
seed tree, so with teacher-driven sampling they see the same teacher-labelled states; both end with the same
gradient steps at width W, and the pruned one has had FROM's training before (the gradient-steps column says how
many in all). Every policy plays the run's evaluation episodes (its seeds; the teachers and random policy are
those of metrics.json) through ``evaluate_all``. The table: per policy, the IQM over seeds of the normalized
return with its 95% CI (trimmed-mean t, as the benchmark report) and the mean joint agreement with the teachers;
for ``pruned-W+ft``, the per-seed paired difference to ``scratch-W+ft``, mean with its Student-t 95% CI. Writes
``prune_TASK_FROM.json`` in the sweep folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl_distill.compress.prune import magnitude, nonzero_params, structured
from marl_distill.distillation.trainer import RECORD, distill_one, student_seeds
from marl_distill.evaluation import evaluate_all
from marl_distill.evaluation.stats import iqm_ci, t_ci
from marl_distill.pipeline.runner import cooperative, env_factory, load_run_config, load_students, load_teachers
from marl_distill.students import StudentTeam
from marl_distill.utils.files import read_json, write_json
from marl_distill.utils.workers import run_jobs, usable_cpus


def one_seed(run: Path, widths: list[int], sparsities: list[float], epochs: int) -> dict[str, dict[str, Any]]:
    """Metrics of every policy of one seed's run (keys like ``shared/pruned-8+ft``); the from-scratch students of
    each width come from the sweep's ``w{W}-d{depth}`` setting of the same task and seed."""
    cfg = load_run_config(run)
    torch.set_num_threads(cfg.torch_threads)  # as the sweep distilled them (and forking needs one thread)
    factory, spec = env_factory(cfg)
    teachers = load_teachers(cfg, run, spec)
    students = load_students(cfg, run, spec)
    depth = len(cfg.distill.hidden)
    policies: dict[str, StudentTeam] = {}
    steps: dict[str, int] = {}
    tunes = []
    for kind, team in students.items():
        source_steps = read_json(run / "students" / kind / RECORD)["grad_steps"]
        for w in widths:
            scratch_dir = run.parent.parent / f"w{w}-d{depth}" / run.name / "students" / kind
            small = dataclasses.replace(cfg.distill, hidden=[w] * depth, epochs=epochs, students=[kind])
            starts = {"pruned": (structured(team.net, [w] * depth), source_steps)}
            if (scratch_dir / RECORD).is_file():
                scratch = StudentTeam.load(scratch_dir, spec)
                starts["scratch"] = (scratch.net, read_json(scratch_dir / RECORD)["grad_steps"])
            for start, (net, before) in starts.items():
                name = f"{kind}/{start}-{w}"
                policies[name], steps[name] = StudentTeam(spec, net), before
                job = partial(distill_one, factory, teachers, net.meta, small, init=net, **student_seeds(small, kind))
                tunes.append((f"{name}+ft", before, job))
        for sp in sparsities:
            policies[f"{kind}/magnitude-{sp:g}"] = StudentTeam(spec, magnitude(team.net, sp))
            steps[f"{kind}/magnitude-{sp:g}"] = source_steps
    for (name, before, _), result in zip(tunes, run_jobs([job for *_, job in tunes], usable_cpus())):
        policies[name], steps[name] = result.student, before + result.summary["grad_steps"]
    eval_cfg = dataclasses.replace(cfg.evaluate, mixed_teams=False, onnx=False, int8=False, cross_play=[])
    metrics = evaluate_all(  # whether the agents share a goal, as the run itself decided (normalized returns need it)
        factory, teachers, policies, eval_cfg, progress=False, workers=usable_cpus(), cooperative=cooperative(cfg)
    )
    out = {}
    for name, team in policies.items():
        m = metrics[name]
        out[name] = {
            "normalized_return": m["normalized_return"],
            "joint_action_agreement": m.get("joint_action_agreement"),
            "params": m["params"],
            "nonzero_params": nonzero_params(team.net),
            "weight_bytes": m["weight_bytes"],
            "macs_per_joint_step": m["macs_per_joint_step"],
            "grad_steps": steps[name],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="a finished size-sweep benchmark folder")
    parser.add_argument("--task", default="simple_spread")
    parser.add_argument("--from", dest="source", default="w32-d1", help="the setting whose students are pruned")
    parser.add_argument("--widths", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.8, 0.9])
    parser.add_argument("--finetune-epochs", type=int, default=10)
    args = parser.parse_args()
    seeds = sorted((args.sweep / "runs" / args.task / args.source).glob("seed_*"))
    if not seeds:
        raise SystemExit(f"no runs under {args.sweep / 'runs' / args.task / args.source}; run the size sweep first")
    per_seed = {s.name: one_seed(s, args.widths, args.sparsity, args.finetune_epochs) for s in seeds}
    names = list(next(iter(per_seed.values())))
    rows = {}
    for name in names:
        vals = [per_seed[s][name] for s in per_seed]
        row = {
            "normalized_return": iqm_ci(np.array([v["normalized_return"] for v in vals], dtype=float)),
            "joint_action_agreement": float(np.mean([v["joint_action_agreement"] for v in vals])),
            **{k: vals[0][k] for k in ("params", "nonzero_params", "weight_bytes", "macs_per_joint_step")},
            "grad_steps": sorted({v["grad_steps"] for v in vals}),
        }
        kind, what = name.split("/")
        if what.startswith("pruned-") and what.endswith("+ft"):
            rival = f"{kind}/scratch-{what.removeprefix('pruned-')}"
            if all(rival in per_seed[s] for s in per_seed):
                theirs = [per_seed[s][rival]["normalized_return"] for s in per_seed]
                diff = [v["normalized_return"] - t for v, t in zip(vals, theirs)]
                row["minus_scratch_ft"] = t_ci(np.array(diff, dtype=float))
        rows[name] = row
    result = {"task": args.task, "from": args.source, "finetune_epochs": args.finetune_epochs, "rows": rows}
    result["seeds"] = [s.name for s in seeds]
    write_json(args.sweep / f"prune_{args.task}_{args.source}.json", result)
    print(table(result))
    print(json.dumps({"written": str(args.sweep / f"prune_{args.task}_{args.source}.json")}))


def table(result: dict[str, Any]) -> str:
    """The printed table, from the JSON alone (docs/results/render.py renders the results page with it)."""
    seeds = len(result.get("seeds", [])) or "?"
    lines = [
        f"{result['task']}: students of {result['from']} pruned; {seeds} seeds; IQM [95% CI] over seeds\n",
        "| policy | normalized return | joint agreement | params (non-zero) | MACs | gradient steps | "
        "pruned+ft − scratch+ft |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        nr = r["normalized_return"]
        ci = "[{:.2f}, {:.2f}]".format(*nr["ci95"]) if nr["ci95"][0] is not None else ""
        vs = ""
        if "minus_scratch_ft" in r:
            d = r["minus_scratch_ft"]
            vs = "{:+.2f} [{:+.2f}, {:+.2f}]".format(d["mean"], *d["ci95"])
        lines.append(
            f"| {name} | {nr['iqm']:.2f} {ci} | {r['joint_action_agreement']:.3f} | "
            f"{r['params']:,} ({r['nonzero_params']:,}) | {r['macs_per_joint_step']:,} | "
            f"{', '.join(f'{x:,}' for x in r['grad_steps'])} | {vs} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
