"""The quickstart on mpe2 and on its batched replica, side by side: where the time goes, and how fast each steps.

    python experiments/perf/mpe_replica_speed.py --repeats 3 --out /tmp/replica_speed   # also writes speed.json

Each repeat measures, the order of the two sides alternating between repeats:

1. **Env stepping**: mpe2's ``simple_spread_v3.parallel_env(N=3)`` (one env, PettingZoo API) against the replica's
   vector face with ``--copies`` copies (one numpy call a joint step); random actions are drawn inside the timed
   loop on both sides and episodes restart when they end. Agent-steps/s.
2. **The quickstart's stages** (``--config``, default experiments/quickstart.toml) run into a fresh folder on each
   side: the same config, seeds and workers, only ``env.id`` differing (``simple_spread`` vs
   ``simple_spread_fast``). Each stage's wall time, the teachers stage's agent-steps/s, distillation + evaluation
   as a share of the run, and whether the two sides' metrics.json are equal (timings aside).
3. **The ceiling of teacher training**: the same ``[teachers]`` settings through the same lab path on a *free
   world* (the replica's spaces, nothing simulated: a step costs a few microseconds), so the ratio replica/free
   says how much of training the env still takes. For reference, the same learners alone: one SB3 learner per
   agent, each in its own process on a free VecEnv, no lockstep (what learning itself costs on these cores).

Figures are means with 95% Student-t intervals over repeats; a ratio is the mean of the per-repeat ratios, with
its interval. ``--out`` keeps both sides' run folders and writes every figure to ``speed.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from marl_distill_envs.fast_mpe import FastMPEEnv, SpreadBatch
from mpe2 import simple_spread_v3

from marl_distill import config as config_mod
from marl_distill.env.registry import resolve
from marl_distill.evaluation.stats import mean_t_ci
from marl_distill.pipeline import runner
from marl_distill.teachers.train import train_teachers

HERE = Path(__file__).resolve()
SIDES = {"mpe2": "simple_spread", "replica": "simple_spread_fast"}
TIMING_WORDS = ("latency", "speedup", "seconds")
SKIPPED = ("env", "bytes_on_disk")
"""Keys left out when the two sides' metrics are compared: the env id, and the teachers' zip size (SB3 stores
each learner's recent episode infos, wall-clock times included, so zips of equal weights differ in size)."""


class FreeBatch(SpreadBatch):
    """simple_spread's agents and spaces with nothing simulated: every step hands back the same arrays."""

    def step(self, actions: Any) -> tuple[dict, dict, np.ndarray, np.ndarray]:
        self.t += 1
        return self._same_obs, self._zero_rewards, self._never, self.t >= self.max_cycles

    def reset(self, seeds: Any = None, copies: Any = None) -> dict[str, np.ndarray]:
        if not hasattr(self, "_same_obs"):
            self._same_obs = super().reset(seeds, copies)
            self._zero_rewards = {a: np.zeros(self.n_copies) for a in self.agents}
            self._never = np.zeros(self.n_copies, dtype=bool)
        self.t[np.arange(self.n_copies) if copies is None else np.asarray(copies, dtype=int)] = 0
        return self._same_obs


def free_world(**kwargs: Any) -> FastMPEEnv:
    """The free world as an env spec: ``experiments/perf/mpe_replica_speed.py:free_world``."""
    return FastMPEEnv(FreeBatch, **kwargs)


# --- 1. env stepping -----------------------------------------------------------------------------------------
def mpe2_rate(seconds: float, seed: int) -> float:
    env = simple_spread_v3.parallel_env(N=3, max_cycles=25)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step({a: int(rng.integers(5)) for a in env.agents})
        steps += 3
        if not env.agents:
            env.reset()
    return steps / (time.perf_counter() - start)


def replica_rate(copies: int, seconds: float, seed: int) -> float:
    world = SpreadBatch(copies, N=3, max_cycles=25)
    world.reset([seed + i for i in range(copies)])
    rng = np.random.default_rng(seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated = world.step({a: rng.integers(5, size=copies) for a in world.agents})
        steps += 3 * copies
        ended = np.flatnonzero(terminated | truncated)
        if len(ended):
            world.reset(copies=ended)
    return steps / (time.perf_counter() - start)


# --- 2. the quickstart's stages ------------------------------------------------------------------------------
def quickstart(cfg_path: Path, env_id: str, folder: Path) -> dict[str, float]:
    cfg = config_mod.load(cfg_path)
    cfg.env.id = env_id
    runner.prepare_dir(folder, resume=False)
    config_mod.save(cfg, folder / runner.CONFIG)
    times = {}
    for stage, fn in (
        ("teachers", runner.stage_teachers),
        ("distill", runner.stage_distill),
        ("evaluate", runner.stage_evaluate),
    ):
        start = time.perf_counter()
        fn(cfg, folder, progress=False)
        times[stage] = time.perf_counter() - start
    times["total"] = sum(times.values())
    manifest = json.loads((folder / "teachers" / "teachers.json").read_text())
    agent_steps = manifest["transitions_per_learner"] * len(manifest["agents"])
    times["teacher_agent_steps_per_s"] = agent_steps / times["teachers"]
    times["distill_evaluate_share"] = (times["distill"] + times["evaluate"]) / times["total"]
    return times


def untimed(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: untimed(v) for k, v in x.items() if not any(w in k for w in TIMING_WORDS) and k not in SKIPPED}
    if isinstance(x, list):
        return [untimed(v) for v in x]
    return x


# --- 3. the ceiling of teacher training ----------------------------------------------------------------------
def lab_training_rate(cfg_path: Path, env: str) -> float:
    """Agent-steps/s of the lab's teacher training (learning only, as ``TrainResult.seconds`` times it)."""
    cfg = config_mod.load(cfg_path)
    result = train_teachers(resolve(env, dict(cfg.env.kwargs)), cfg.teachers, progress=False)
    return result.agent_steps / result.seconds


class FreeVecEnv:
    """A VecEnv whose step costs nothing (same spaces as simple_spread's agents): the learner's own speed."""

    def __new__(cls, n: int, obs_dim: int, n_actions: int, max_cycles: int) -> Any:
        from stable_baselines3.common.vec_env import VecEnv

        class _Free(VecEnv):
            def __init__(self) -> None:
                super().__init__(
                    n, gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32), gym.spaces.Discrete(n_actions)
                )
                self.obs = np.random.default_rng(0).normal(size=(n, obs_dim)).astype(np.float32)
                self.t = 0

            def reset(self) -> np.ndarray:
                self.t = 0
                return self.obs

            def step_async(self, actions: np.ndarray) -> None:
                pass

            def step_wait(self) -> tuple:
                self.t += 1
                done = self.t % max_cycles == 0
                infos = [{"terminal_observation": o, "TimeLimit.truncated": True} if done else {} for o in self.obs]
                return self.obs, np.zeros(n, np.float32), np.full(n, done), infos

            def close(self) -> None:
                pass

            def get_attr(self, name: str, indices: Any = None) -> list:
                return [None] * n

            def set_attr(self, name: str, value: Any, indices: Any = None) -> None:
                pass

            def env_method(self, name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
                return [None] * n

            def env_is_wrapped(self, wrapper: Any, indices: Any = None) -> list:
                return [False] * n

        return _Free()


def _alone(cfg_path: str, agent: int, obs_dim: int, n_actions: int, out: Any) -> None:
    import torch
    from stable_baselines3 import PPO

    cfg = config_mod.load(Path(cfg_path))
    torch.set_num_threads(cfg.torch_threads)
    t = cfg.teachers
    env = FreeVecEnv(t.n_envs, obs_dim, n_actions, int(cfg.env.kwargs.get("max_cycles", 25)))
    model = PPO("MlpPolicy", env, seed=agent, verbose=0, device="cpu", **dict(t.ppo))
    start = time.perf_counter()
    model.learn(t.steps)
    out.put(time.perf_counter() - start)


def alone_rate(cfg_path: Path) -> float:
    """Agent-steps/s of one plain SB3 PPO per agent, each in its own process on a free VecEnv, all at once."""
    cfg = config_mod.load(cfg_path)
    probe = resolve(SIDES["replica"], dict(cfg.env.kwargs))()
    agents = probe.possible_agents
    obs_dim, n_actions = probe.observation_space(agents[0]).shape[0], int(probe.action_space(agents[0]).n)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_alone, args=(str(cfg_path), i, obs_dim, n_actions, out)) for i in range(len(agents))]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.perf_counter() - start
    return cfg.teachers.steps * len(agents) / wall


# --- reporting -----------------------------------------------------------------------------------------------
def summarize(values: list[float]) -> dict[str, Any]:
    m, lo, hi = mean_t_ci(values)
    return {"mean": m, "ci95": [lo, hi], "values": values}


def table(result: dict[str, Any]) -> str:
    """The figures as markdown (what the script prints and the results page renders from speed.json)."""
    lines = ["| figure | mean | 95% interval | repeats |", "|---|---:|---|---:|"]
    for name, f in result["figures"].items():
        lo, hi = f["ci95"]
        fmt = (lambda v: f"{v:,.0f}") if abs(f["mean"]) >= 100 else (lambda v: f"{v:.3g}")
        lines.append(f"| {name} | {fmt(f['mean'])} | [{fmt(lo)}, {fmt(hi)}] | {len(f['values'])} |")
    same = result["metrics_equal_timings_aside"]
    lines += ["", f"Both sides' metrics.json equal (timings aside) in {sum(same)} of {len(same)} repeats."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=HERE.parents[1] / "quickstart.toml")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--copies", type=int, default=256, help="replica copies stepped together in section 1")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per side per repeat in section 1")
    p.add_argument("--out", type=Path, help="keep the run folders here and write speed.json")
    args = p.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="replica_speed_"))
    out.mkdir(parents=True, exist_ok=True)
    raw: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        raw.setdefault(name, []).append(float(value))

    same_metrics = []
    for r in range(args.repeats):
        order = list(SIDES) if r % 2 == 0 else list(SIDES)[::-1]
        rates = {
            "mpe2": lambda r=r: mpe2_rate(args.seconds, r),
            "replica": lambda r=r: replica_rate(args.copies, args.seconds, r),
        }
        step_rate = {side: rates[side]() for side in order}
        note("env agent-steps/s, mpe2 (1 env)", step_rate["mpe2"])
        note(f"env agent-steps/s, replica ({args.copies} copies)", step_rate["replica"])
        note("env ratio replica / mpe2", step_rate["replica"] / step_rate["mpe2"])
        runs = {}
        for side in order:
            folder = out / f"repeat{r}_{side}"
            if folder.exists():
                shutil.rmtree(folder)
            runs[side] = quickstart(args.config, SIDES[side], folder)
            for key in ("teachers", "distill", "evaluate", "total"):
                note(f"quickstart {key} s, {side}", runs[side][key])
            note(f"teacher training agent-steps/s, {side}", runs[side]["teacher_agent_steps_per_s"])
            note(f"distill + evaluate share, {side}", runs[side]["distill_evaluate_share"])
        note("quickstart wall ratio replica / mpe2", runs["replica"]["total"] / runs["mpe2"]["total"])
        metrics = [untimed(json.loads((out / f"repeat{r}_{s}" / "metrics.json").read_text())) for s in SIDES]
        same_metrics.append(metrics[0] == metrics[1])
        ceiling = {
            "replica": lambda: lab_training_rate(args.config, SIDES["replica"]),
            "free": lambda: lab_training_rate(args.config, f"{HERE}:free_world"),
        }
        train = {k: ceiling[k]() for k in (["replica", "free"] if r % 2 == 0 else ["free", "replica"])}
        note("lab training agent-steps/s, replica", train["replica"])
        note("lab training agent-steps/s, free world", train["free"])
        note("training ratio replica / free world", train["replica"] / train["free"])
        alone = alone_rate(args.config)
        note("SB3 learners alone agent-steps/s, free VecEnv, no lockstep", alone)
        note("training ratio replica / learners alone", train["replica"] / alone)
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    figures = {name: summarize(v) for name, v in raw.items()}
    result = {"config": str(args.config), "copies": args.copies, "repeats": args.repeats,
              "metrics_equal_timings_aside": same_metrics, "figures": figures}  # fmt: skip
    (out / "speed.json").write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"wrote {out / 'speed.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
