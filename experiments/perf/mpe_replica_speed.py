"""The quickstart on mpe2 and on its batched replica, side by side: where the time goes, and how fast each steps.

    python experiments/perf/mpe_replica_speed.py --out runs/replica_speed      # 4 repeats; also writes speed.json

Each repeat measures the following, the order of the sides alternating between repeats:

1. **Env stepping** through the lab's joint env, as training, collection and evaluation step it: mpe2's
   ``simple_spread`` (N=3) with the quickstart's 16 copies, one env per copy stepped in a loop, against the replica
   ``simple_spread_fast`` with 16 and with ``--copies`` copies, one numpy call a joint step. Random actions are
   drawn by one vector call per agent on every side; finished episodes restart. Agent-steps/s.
2. **The quickstart's stages** (``--config``) run into a fresh folder per side: the same config and seeds, only
   ``env.id`` differing (``simple_spread`` vs ``simple_spread_fast``). mpe2 runs twice, with the config's 2 env
   worker processes and with 1 (the replica needs none), and the ratio is taken against the faster. Each stage's
   wall time, the teachers stage's agent-steps/s over its whole wall (building, learning, saving), distillation +
   evaluation as a share of the run, and whether mpe2's and the replica's metrics.json are equal (timings aside).
3. **The ceiling of teacher training**, learning alone timed (``TrainResult.seconds``): the config's ``[teachers]``
   on the replica and on a *free world* (the replica's spaces, nothing simulated) through the same lab path, so
   replica / free says what the env still costs; and one plain SB3 PPO per agent, each in its own process on a
   free VecEnv, all learning at once with no lockstep (built first, timed from a common start to the last end),
   so replica / learners alone says what the lab's lockstep between learners costs on these cores.
4. **What the lockstep's structure alone would cost on these cores** (a model, not a run): each free learner's
   CPU seconds collecting and training per joint step (c, t; split at SB3's rollout callbacks, measured in
   section 3's run, so under its contention) give a no-lockstep wall per joint step, max(1, L/C)(c + t) for L
   learners on C cores, and a lockstep one: ceil(L/C) forward passes in turn (each on one core, as the scheduler
   runs a sub-millisecond pass), the env step in between while every learner waits (e, the replica's 16-copy
   joint step of section 1, random action draws included), and the same training, max(1, L/C) t. Their ratio
   estimates replica / learners alone with nothing else in the way: no pipes, no coordinator bookkeeping, no lab
   callbacks, no process start or save. It is an estimate, not a bound: a scheduler that split one pass across
   cores would beat it.

Figures are means with 95% Student-t intervals over repeats; a ratio is the mean of the per-repeat ratios, with
its interval. ``--out`` keeps every run folder and writes every figure to ``speed.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from marl_distill_envs.fast_mpe import FastMPEEnv, SpreadBatch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from marl_distill import config as config_mod
from marl_distill.env.registry import resolve
from marl_distill.env.vector_world import open_joint_vec_env
from marl_distill.evaluation.stats import mean_t_ci
from marl_distill.teachers.train import train_teachers
from marl_distill.utils.provenance import provenance

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script whose stage timer this one shares
from pipeline_stages import time_stages, untimed  # noqa: E402

HERE = Path(__file__).resolve()
SIDES = {"mpe2": "simple_spread", "replica": "simple_spread_fast"}
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
def joint_env_rate(env_id: str, copies: int, seconds: float, seed: int) -> float:
    """Agent-steps/s of the lab's joint env over ``copies`` copies of ``env_id`` (mpe2: one env per copy, stepped
    in a loop; the replica: one numpy call), random actions drawn by one vector call per agent on both sides."""
    venv = open_joint_vec_env(resolve(env_id, {"N": 3, "max_cycles": 25}), copies, autoreset=True)
    venv.reset([seed * 10_000 + i for i in range(copies)])
    rng = np.random.default_rng(seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        venv.step({a: rng.integers(5, size=copies) for a in venv.agents})
        steps += len(venv.agents) * copies
    rate = steps / (time.perf_counter() - start)
    venv.close()
    return rate


# --- 2. the quickstart's stages ------------------------------------------------------------------------------
def quickstart(cfg_path: Path, env_id: str, folder: Path, env_workers: int | None = None) -> dict[str, float]:
    cfg = config_mod.load(cfg_path)
    cfg.env.id = env_id
    if folder.exists():
        shutil.rmtree(folder)  # this script's own folder from an earlier repeat of it
    if env_workers is not None:
        cfg.teachers.env_workers = env_workers
    times = time_stages(cfg, folder)
    times["total"] = sum(times.values())
    manifest = json.loads((folder / "teachers" / "teachers.json").read_text())
    agent_steps = manifest["transitions_per_learner"] * len(manifest["agents"])
    times["teacher_agent_steps_per_s"] = agent_steps / times["teachers"]
    times["distill_evaluate_share"] = (times["distill"] + times["evaluate"]) / times["total"]
    return times


# --- 3. the ceiling of teacher training ----------------------------------------------------------------------
def lab_training_rate(cfg_path: Path, env: str) -> float:
    """Agent-steps/s of the lab's teacher training (learning only, as ``TrainResult.seconds`` times it)."""
    cfg = config_mod.load(cfg_path)
    result = train_teachers(resolve(env, dict(cfg.env.kwargs)), cfg.teachers, progress=False)
    return result.agent_steps / result.seconds


class FreeVecEnv(VecEnv):
    """A VecEnv whose step costs nothing (same spaces as simple_spread's agents): the learner's own speed."""

    def __init__(self, n: int, obs_dim: int, n_actions: int, max_cycles: int) -> None:
        super().__init__(n, gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32), gym.spaces.Discrete(n_actions))
        self.obs = np.random.default_rng(0).normal(size=(n, obs_dim)).astype(np.float32)
        self.max_cycles, self.t = max_cycles, 0

    def reset(self) -> np.ndarray:
        self.t = 0
        return self.obs

    def step_async(self, actions: np.ndarray) -> None:
        pass

    def step_wait(self) -> tuple:
        self.t += 1
        done = self.t % self.max_cycles == 0
        infos = [{"terminal_observation": o, "TimeLimit.truncated": True} if done else {} for o in self.obs]
        return self.obs, np.zeros(self.num_envs, np.float32), np.full(self.num_envs, done), infos

    def close(self) -> None:
        pass

    def get_attr(self, name: str, indices: Any = None) -> list:
        return [None] * self.num_envs

    def set_attr(self, name: str, value: Any, indices: Any = None) -> None:
        pass

    def env_method(self, name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        return [None] * self.num_envs

    def env_is_wrapped(self, wrapper: Any, indices: Any = None) -> list:
        return [False] * self.num_envs


class PhaseClock(BaseCallback):
    """CPU seconds of this process spent collecting rollouts and training, split at SB3's rollout callbacks."""

    def __init__(self) -> None:
        super().__init__()
        self.collect, self.train, self._mark = 0.0, 0.0, 0.0

    def _lap(self) -> float:
        """CPU seconds since the last lap."""
        now = time.process_time()
        elapsed, self._mark = now - self._mark, now
        return elapsed

    def _on_training_start(self) -> None:
        self._mark = time.process_time()

    def _on_rollout_start(self) -> None:
        self.train += self._lap()  # training (and logging) since the last rollout; ~0 before the first

    def _on_rollout_end(self) -> None:
        self.collect += self._lap()

    def _on_training_end(self) -> None:
        self.train += self._lap()  # the last training phase

    def _on_step(self) -> bool:
        return True


def _alone(cfg_path: str, agent: int, obs_dim: int, n_actions: int, start: Any, out: Any) -> None:
    """One plain SB3 PPO on a free VecEnv: built, then timed from the moment every learner is built."""
    import torch

    cfg = config_mod.load(Path(cfg_path))
    t = cfg.teachers
    torch.set_num_threads(t.torch_threads)
    env = FreeVecEnv(t.n_envs, obs_dim, n_actions, int(cfg.env.kwargs.get("max_cycles", 25)))
    model = PPO("MlpPolicy", env, seed=agent, verbose=0, device="cpu", **dict(t.ppo))
    clock = PhaseClock()
    start.wait()
    began = time.perf_counter()
    model.learn(t.steps, callback=clock)
    out.put((began, time.perf_counter(), model.num_timesteps, clock.collect, clock.train))


def alone_rate(cfg_path: Path) -> tuple[float, float, float]:
    """Agent-steps/s of one plain SB3 PPO per agent, each in its own process on a free VecEnv, all learning at once:
    transitions actually taken over the span from the common start to the last learner's end (learning only); and
    a learner's mean CPU seconds per joint step collecting and training (c, t)."""
    cfg = config_mod.load(cfg_path)
    probe = resolve(SIDES["replica"], dict(cfg.env.kwargs))()
    agents = probe.possible_agents
    obs_dim, n_actions = probe.observation_space(agents[0]).shape[0], int(probe.action_space(agents[0]).n)
    ctx = mp.get_context("fork")
    out, start = ctx.Queue(), ctx.Barrier(len(agents))
    args = [(str(cfg_path), i, obs_dim, n_actions, start, out) for i in range(len(agents))]
    procs = [ctx.Process(target=_alone, args=a) for a in args]
    for p in procs:
        p.start()
    done = [out.get() for _ in procs]
    for p in procs:
        p.join()
    span = max(d[1] for d in done) - min(d[0] for d in done)
    joint_steps = [d[2] / cfg.teachers.n_envs for d in done]
    c = float(np.mean([d[3] / n for d, n in zip(done, joint_steps)]))
    t = float(np.mean([d[4] / n for d, n in zip(done, joint_steps)]))
    return sum(d[2] for d in done) / span, c, t


def lockstep_estimate(learners: int, cores: int, c: float, t: float, e: float) -> float:
    """Section 4's model: the no-lockstep wall per joint step over a lockstep joint step's, nothing else counted."""
    share = max(1.0, learners / cores)
    return share * (c + t) / (math.ceil(learners / cores) * c + e + share * t)


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
    p.add_argument("--config", type=Path, default=Path("experiments/quickstart.toml"))
    p.add_argument("--repeats", type=int, default=4, help="repeats; even, so each order of the sides runs as often")
    p.add_argument("--copies", type=int, default=256, help="replica copies stepped together in section 1")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per side per repeat in section 1")
    p.add_argument("--out", type=Path, help="keep the run folders here and write speed.json")
    args = p.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="replica_speed_"))
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_mod.load(args.config)
    copies = cfg.teachers.n_envs
    learners = len(resolve(SIDES["replica"], dict(cfg.env.kwargs))().possible_agents)
    cores = len(os.sched_getaffinity(0))  # CPUs this process may run on (a container's CPU quota aside)
    raw: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        raw.setdefault(name, []).append(float(value))

    def alternate(r: int, jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
        """Run ``jobs`` in order on even repeats, reversed on odd ones."""
        names = list(jobs) if r % 2 == 0 else list(jobs)[::-1]
        return {name: jobs[name]() for name in names}

    same_metrics = []
    for r in range(args.repeats):
        step = alternate(r, {
            "mpe2": lambda r=r: joint_env_rate(SIDES["mpe2"], copies, args.seconds, r),
            "replica": lambda r=r: joint_env_rate(SIDES["replica"], copies, args.seconds, r),
            "replica, many": lambda r=r: joint_env_rate(SIDES["replica"], args.copies, args.seconds, r),
        })  # fmt: skip
        note(f"env stepping agent-steps/s, mpe2, {copies} copies", step["mpe2"])
        note(f"env stepping agent-steps/s, replica, {copies} copies", step["replica"])
        note(f"env stepping agent-steps/s, replica, {args.copies} copies", step["replica, many"])
        note(f"env stepping ratio replica / mpe2, both {copies} copies", step["replica"] / step["mpe2"])
        note(f"env stepping ratio replica {args.copies} copies / mpe2", step["replica, many"] / step["mpe2"])
        runs = alternate(r, {
            "mpe2": lambda r=r: quickstart(args.config, SIDES["mpe2"], out / f"repeat{r}_mpe2"),
            "mpe2, 1 env worker": lambda r=r: quickstart(args.config, SIDES["mpe2"], out / f"repeat{r}_mpe2_w1", 1),
            "replica": lambda r=r: quickstart(args.config, SIDES["replica"], out / f"repeat{r}_replica"),
        })  # fmt: skip
        for side, times in runs.items():
            for key in ("teachers", "distill", "evaluate", "total"):
                note(f"quickstart {key} s, {side}", times[key])
            note(f"teachers stage agent-steps/s (stage wall), {side}", times["teacher_agent_steps_per_s"])
            note(f"distill + evaluate share of the run, {side}", times["distill_evaluate_share"])
        fastest = min(runs["mpe2"]["total"], runs["mpe2, 1 env worker"]["total"])
        note("quickstart wall ratio replica / mpe2 (the faster of its two)", runs["replica"]["total"] / fastest)
        folders = [out / f"repeat{r}_{side}" for side in ("mpe2", "replica")]
        metrics = [untimed(json.loads((f / "metrics.json").read_text()), SKIPPED) for f in folders]
        same_metrics.append(metrics[0] == metrics[1])
        train = alternate(r, {
            "replica": lambda: lab_training_rate(args.config, SIDES["replica"]),
            "free": lambda: lab_training_rate(args.config, f"{HERE}:free_world"),
            "alone": lambda: alone_rate(args.config),
        })  # fmt: skip
        note("teacher learning agent-steps/s (learning only), replica", train["replica"])
        note("teacher learning agent-steps/s (learning only), free world", train["free"])
        alone, c, t = train["alone"]
        note("SB3 learners alone agent-steps/s (learning only), free VecEnv, no lockstep", alone)
        note("learning ratio replica / free world", train["replica"] / train["free"])
        note("learning ratio replica / learners alone", train["replica"] / alone)
        note("learning ratio free world / learners alone", train["free"] / alone)
        e = learners * copies / step["replica"]  # one joint step of the replica's copies, seconds
        note("free learner CPU ms per joint step collecting (c)", 1e3 * c)
        note("free learner CPU ms per joint step training (t)", 1e3 * t)
        note(f"replica joint step ms, {copies} copies (e)", 1e3 * e)
        note(f"lockstep estimate, replica / learners alone, {learners} learners on {cores} cores (model)",
             lockstep_estimate(learners, cores, c, t, e))  # fmt: skip
        note("lockstep estimate with a free env, e = 0 (model)", lockstep_estimate(learners, cores, c, t, 0.0))
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    figures = {name: summarize(v) for name, v in raw.items()}
    result = {"config": str(args.config), "copies": args.copies, "repeats": args.repeats,
              "metrics_equal_timings_aside": same_metrics, "figures": figures, "provenance": provenance()}  # fmt: skip
    (out / "speed.json").write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"wrote {out / 'speed.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
