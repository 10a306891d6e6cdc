"""Teacher-training throughput and quality: our per-agent lockstep path vs the PettingZoo/SuperSuit tutorial.

Both paths train PPO on mpe2 simple_spread (N=3, max_cycles=25, discrete actions) for the SAME number of
agent-steps (transitions summed over agents) with the same PPO hyperparameters; we report agent-steps/s and
the team return (sum over agents of episode rewards) their greedy policies reach at that budget.

* ours: ``marl_distill.teachers.train.train_teachers`` - one SB3 PPO per agent on ``n_envs`` env copies; each
  rollout holds ``n_steps * n_envs`` transitions per learner, 3 learners.
* tutorial: ``pettingzoo_env_to_vec_env_v1`` + ``concat_vec_envs_v1(n_envs)`` - ONE shared SB3 PPO over
  ``3 * n_envs`` sub-envs with the same ``n_steps``, so a rollout holds the same agent-steps in all, and the
  same ``batch_size``/``n_epochs`` give the same number of gradient steps per agent-step.

Fairness: only learning is timed (``res.seconds`` covers only the learner threads; ``model.learn`` for the
tutorial), model and env construction are excluded for both, after an untimed warm-up of each; torch uses one
thread for both (default; on a 2-vCPU box its intra-op pool made tiny-MLP timings erratic, up to 50x); both
use the env seeds ``seed * 10_000 + i``; the order of the two paths alternates between seeds. Evaluation runs
the same K episode seeds (10_000 + i) for every policy, plus a uniform-random baseline on those seeds.
Note the tutorial path (faithfully) does not bootstrap time-limit truncations: SuperSuit sets no
``TimeLimit.truncated`` flag; ours does.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import supersuit as ss
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.utils import set_random_seed

from marl_distill.env.registry import resolve
from marl_distill.evaluation.stats import mean_t_ci as mean_ci
from marl_distill.teachers.config import TeacherConfig
from marl_distill.teachers.train import aligned_vec_steps, train_teachers

ENV_ID = "simple_spread"
PPO_KWARGS: dict[str, Any] = {"n_steps": 128, "batch_size": 256, "n_epochs": 10, "learning_rate": 3e-4}
# Maps an (n_agents, obs_dim) batch to (n_agents,) actions.
Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class Row:
    seed: int
    path: str
    agent_steps: int
    seconds: float
    steps_per_s: float
    ret_mean: float
    ret_lo: float
    ret_hi: float


def team_returns(factory: Callable[[], Any], act: Policy, episodes: int) -> np.ndarray:
    """Team return of ``episodes`` episodes (seeds 10_000 + i), stepped together; ``act`` sees every env."""
    envs = [factory() for _ in range(episodes)]
    agents = list(envs[0].possible_agents)
    obs = [env.reset(seed=10_000 + i)[0] for i, env in enumerate(envs)]
    totals = np.zeros(episodes)
    live = list(range(episodes))
    while live:
        batch = np.stack([np.stack([obs[i][a] for a in agents]) for i in live])  # (live, agents, obs)
        actions = act(batch.reshape(len(live) * len(agents), -1)).reshape(len(live), len(agents))
        still = []
        for row, i in enumerate(live):
            obs[i], rew, _, _, _ = envs[i].step({a: int(actions[row, j]) for j, a in enumerate(agents)})
            totals[i] += sum(rew.values())
            if envs[i].agents:
                still.append(i)
        live = still
    for env in envs:
        env.close()
    return totals


def per_agent_policy(models: dict[str, Any], agents: tuple[str, ...]) -> Policy:
    """Agent j of each env (rows j, j + n, ...) acts with its own model, one batched predict per agent."""
    n = len(agents)

    def act(flat: np.ndarray) -> np.ndarray:
        out = np.zeros(len(flat), dtype=np.int64)
        for j, agent in enumerate(agents):
            out[j::n] = models[agent].predict(flat[j::n], deterministic=True)[0]
        return out

    return act


def run_ours(
    factory: Callable[[], Any], steps: int, n_envs: int, seed: int, cpus: int = 1
) -> tuple[int, float, Policy]:
    cfg = TeacherConfig(
        steps=steps, n_envs=n_envs, seed=seed, env_workers=cpus, ppo=dict(PPO_KWARGS), tensorboard=False
    )
    res = train_teachers(factory, cfg, out_dir=None, progress=False)
    return res.agent_steps, res.seconds, per_agent_policy(res.models, tuple(res.models))


def run_tutorial(
    factory: Callable[[], Any], n_envs: int, seed: int, agent_steps: int, cpus: int = 1
) -> tuple[int, float, Policy]:
    set_random_seed(seed)  # PPO(seed=...) calls env.seed, which ConcatVecEnv lacks
    venv = ss.pettingzoo_env_to_vec_env_v1(factory())
    venv = ss.concat_vec_envs_v1(venv, n_envs, num_cpus=cpus, base_class="stable_baselines3")
    venv.venv.reset(seed=seed * 10_000)  # seeds copy i with seed * 10_000 + i; SB3's own reset keeps the RNGs
    model = PPO("MlpPolicy", venv, verbose=0, device="cpu", **PPO_KWARGS)
    start = time.perf_counter()
    model.learn(total_timesteps=agent_steps)
    seconds = time.perf_counter() - start
    done = int(model.num_timesteps)
    venv.close()
    model.env = None  # drop the closed SuperSuit workers now, not in some later forked process
    del venv
    gc.collect()
    return done, seconds, lambda flat: model.predict(flat, deterministic=True)[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="transitions per learner (default 60000; quick 1024)")
    p.add_argument("--n-envs", type=int, default=None, help="env copies (default 8; quick 2)")
    p.add_argument("--seeds", default=None, help='comma-separated (default "0,1,2"; quick "0,1")')
    p.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default 100; quick 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for both paths (0: torch's default)")
    p.add_argument(
        "--cpus",
        type=int,
        default=1,
        help="env-stepping processes for both paths: our env_workers and SuperSuit's num_cpus (1: in-process)",
    )
    p.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    p.add_argument("--json", default=None, help="also dump rows and summary to this file")
    args = p.parse_args(argv)
    quick = {"steps": 1024, "n_envs": 2, "seeds": "0,1", "episodes": 10}
    full = {"steps": 60_000, "n_envs": 8, "seeds": "0,1,2", "episodes": 100}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    factory = resolve(ENV_ID)
    probe = factory()
    agents = tuple(probe.possible_agents)
    n_act = int(probe.action_space(agents[0]).n)
    probe.close()
    cfg = TeacherConfig(steps=args.steps, n_envs=args.n_envs, ppo=dict(PPO_KWARGS))
    budget = aligned_vec_steps(cfg, agents) * args.n_envs * len(agents)
    print(
        f"env={ENV_ID} agents={len(agents)} n_envs={args.n_envs} steps/learner={args.steps} "
        f"agent-steps/path={budget} ppo={PPO_KWARGS} torch_threads={torch.get_num_threads()} "
        f"episodes={args.episodes} cpus={args.cpus}"
    )
    header = f"{'seed':>4} {'path':<9} {'agent-steps':>11} {'learn s':>8} {'steps/s':>8}  team return [95% CI]"
    print(header)
    print("-" * len(header))

    rng = np.random.default_rng(0)
    rand = mean_ci(team_returns(factory, lambda flat: rng.integers(n_act, size=len(flat)), args.episodes))
    # Untimed warm-up of both paths (one rollout each): the first torch/SB3 calls in a process are slow.
    run_ours(factory, 1, args.n_envs, 0, args.cpus)
    run_tutorial(factory, args.n_envs, 0, len(agents) * args.n_envs * PPO_KWARGS["n_steps"], args.cpus)
    rows: list[Row] = []
    for k, seed in enumerate(seeds):
        order = ["ours", "tutorial"] if k % 2 == 0 else ["tutorial", "ours"]
        for path in order:
            if path == "ours":
                steps, secs, policy = run_ours(factory, args.steps, args.n_envs, seed, args.cpus)
            else:
                steps, secs, policy = run_tutorial(factory, args.n_envs, seed, budget, args.cpus)
            if steps != budget:
                raise RuntimeError(f"{path} trained {steps} agent-steps, expected {budget}")
            m, lo, hi = mean_ci(team_returns(factory, policy, args.episodes))
            row = Row(seed, path, steps, secs, steps / secs, m, lo, hi)
            rows.append(row)
            print(
                f"{seed:>4} {path:<9} {steps:>11} {secs:>8.1f} {row.steps_per_s:>8.0f}  {m:8.2f} [{lo:.2f}, {hi:.2f}]",
                flush=True,
            )

    def of(path: str) -> list[Row]:
        return sorted((r for r in rows if r.path == path), key=lambda r: r.seed)

    ours, tut = of("ours"), of("tutorial")
    ratios = [a.steps_per_s / b.steps_per_s for a, b in zip(ours, tut, strict=True)]
    summary: dict[str, Any] = {
        "median_steps_per_s": {p: statistics.median(r.steps_per_s for r in of(p)) for p in ("ours", "tutorial")},
        "ratio_ours_over_tutorial": {"per_seed": ratios, "mean_ci": mean_ci(ratios)},
        "team_return_over_seeds": {p: mean_ci([r.ret_mean for r in of(p)]) for p in ("ours", "tutorial")},
        "team_return_random": rand,
    }
    print("\nsummary")
    for p in ("ours", "tutorial"):
        print(f"  median agent-steps/s {p:<9} {summary['median_steps_per_s'][p]:8.0f}")
    m, lo, hi = summary["ratio_ours_over_tutorial"]["mean_ci"]
    print(f"  speed ratio ours/tutorial per seed: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"  speed ratio ours/tutorial mean: {m:.3f} [95% CI {lo:.3f}, {hi:.3f}]")
    for p in ("ours", "tutorial"):
        m, lo, hi = summary["team_return_over_seeds"][p]
        print(f"  team return {p:<9} {m:8.2f} [95% CI over seeds {lo:.2f}, {hi:.2f}]")
    print(f"  team return random    {rand[0]:8.2f} [95% CI over episodes {rand[1]:.2f}, {rand[2]:.2f}]")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "args": vars(args),
                    "budget": budget,
                    "ppo": PPO_KWARGS,
                    "rows": [asdict(r) for r in rows],
                    "summary": summary,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
