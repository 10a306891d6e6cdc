"""Where a run's wall time goes: teacher training, distillation and evaluation of one experiment, each timed.

    python3 experiments/perf/pipeline_stages.py experiments/quickstart.toml --out /tmp/qs [--workers 1]

Runs the experiment's stages one after another into a new folder (as ``marl-distill run`` does) and prints each
stage's wall time, and distillation + evaluation as a share of the whole. ``--workers`` sets the processes that
distill students and play evaluation episodes side by side (default: one per usable core; 1 is the sequential
path). Compare two builds by running this script from each on an otherwise idle machine; their metrics.json must
be equal timings aside (``python3 experiments/perf/pipeline_stages.py --compare A/metrics.json B/metrics.json``);
each build trains its own teachers, so compare their ``teachers/*.zip`` too when metrics differ. Imports made on
first use are charged to the stage that first needs them, as in a real run.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path
from typing import Any

from marl_distill import config as config_mod
from marl_distill.pipeline import runner

TIMING_WORDS = ("latency", "speedup", "seconds")


def untimed(x: Any, skip: tuple[str, ...] = ()) -> Any:
    """``x`` without its timings (keys naming latency, speed-up or seconds) and without the keys in ``skip``."""
    if isinstance(x, dict):
        return {k: untimed(v, skip) for k, v in x.items() if not any(w in k for w in TIMING_WORDS) and k not in skip}
    if isinstance(x, list):
        return [untimed(v, skip) for v in x]
    return x


def time_stages(cfg: Any, folder: Path, workers: int | None = None) -> dict[str, float]:
    """Run ``cfg``'s stages one after another into the new run folder ``folder``; each stage's wall seconds."""
    runner.prepare_dir(folder, resume=False)
    config_mod.save(cfg, folder / runner.CONFIG)
    kw = {"workers": workers} if "workers" in inspect.signature(runner.stage_distill).parameters else {}
    times = {}
    for stage, fn in (
        ("teachers", runner.stage_teachers),
        ("distill", runner.stage_distill),
        ("evaluate", runner.stage_evaluate),
    ):
        start = time.perf_counter()
        fn(cfg, folder, progress=False, **({} if stage == "teachers" else kw))
        times[stage] = time.perf_counter() - start
    return times


def compare(a: Path, b: Path) -> int:
    same = untimed(json.loads(a.read_text())) == untimed(json.loads(b.read_text()))
    print("metrics equal (timings aside)" if same else "metrics DIFFER")
    return 0 if same else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, nargs="?")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.config is None or args.out is None:
        parser.error("give a CONFIG and --out (or --compare A B)")
    times = time_stages(config_mod.load(args.config), args.out, args.workers)
    total = sum(times.values())
    for stage, t in times.items():
        print(f"{stage:<9} {t:7.1f} s  {100 * t / total:5.1f}%")
    cheap = times["distill"] + times["evaluate"]
    print(f"{'total':<9} {total:7.1f} s; distill + evaluate {cheap:.1f} s = {100 * cheap / total:.1f}% of the run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
