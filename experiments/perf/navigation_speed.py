"""Agent-steps per second: the built-in batched navigation world against mpe2's simple_spread.

Three ways of stepping N agents with uniformly random actions, each for ``--seconds`` of wall time per repeat,
repeated ``--repeats`` times in turn (so a slow patch of the machine hits all three):

* mpe2: ``simple_spread_v3.parallel_env(N, max_cycles=25)``, one env through the PettingZoo API;
* ours, PettingZoo API: ``marl_distill_envs.navigation.parallel_env(N)``, one env the same way;
* ours, vector API: ``NavigationBatch`` with ``--copies`` worlds stepped by one numpy call.

Episodes are reset when they end (25 steps) in all three. Random actions are drawn inside the timed loop for
all three. Prints agent-steps/s with 95% t-intervals over repeats and the ratio of each to mpe2.

    python experiments/perf/navigation_speed.py                       # N=3, 256 copies, 5 repeats of 2 s
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
from marl_distill_envs.navigation import NavigationBatch, parallel_env
from mpe2 import simple_spread_v3

from marl_distill.evaluation.stats import mean_t_ci


def pettingzoo_rate(make: Callable[[], object], seconds: float, seed: int) -> float:
    """Agent-steps/s of one ParallelEnv stepped with random actions."""
    env = make()
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    n_act = env.action_space(env.possible_agents[0]).n
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        actions = {a: int(rng.integers(n_act)) for a in env.agents}
        env.step(actions)
        steps += len(actions)
        if not env.agents:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector_rate(n_agents: int, copies: int, seconds: float, seed: int) -> float:
    """Agent-steps/s of ``copies`` worlds stepped together."""
    world = NavigationBatch(copies, n_agents, seed=seed)
    rng = np.random.default_rng(seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, truncated = world.step(rng.integers(world.n_actions, size=(copies, n_agents)))
        steps += copies * n_agents
        if truncated.all():
            world.reset()
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=3, help="agents (and landmarks) per world")
    p.add_argument("--copies", type=int, default=256, help="worlds stepped together by the vector API")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per path per repeat")
    p.add_argument("--repeats", type=int, default=5, help="repeats (each a different seed)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = p.parse_args(argv)

    paths = {
        "mpe2 simple_spread (PettingZoo API)": lambda s: pettingzoo_rate(
            lambda: simple_spread_v3.parallel_env(N=args.agents, max_cycles=25), args.seconds, s
        ),
        "navigation (PettingZoo API)": lambda s: pettingzoo_rate(lambda: parallel_env(N=args.agents), args.seconds, s),
        f"navigation (vector API, {args.copies} copies)": lambda s: vector_rate(
            args.agents, args.copies, args.seconds, s
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for seed in range(args.repeats):
        for name, run in paths.items():
            rates[name].append(run(seed))
    base = np.array(rates[next(iter(paths))])
    out = {
        name: {
            "agent_steps_per_s": mean_t_ci(r),
            "ratio_to_mpe2": mean_t_ci(np.array(r) / base),
            "per_repeat": [round(x) for x in r],
        }
        for name, r in rates.items()
    }
    if args.json:
        print(json.dumps({"agents": args.agents, "copies": args.copies, **out}, indent=2))
        return
    print(f"N={args.agents} agents, {args.repeats} repeats of {args.seconds:g} s each (95% t-intervals)")
    print(f"{'path':<42} {'agent-steps/s':>28} {'x mpe2':>24}")
    for name, row in out.items():
        m, lo, hi = row["agent_steps_per_s"]
        rm, rlo, rhi = row["ratio_to_mpe2"]
        print(f"{name:<42} {m:>12,.0f} [{lo:,.0f}, {hi:,.0f}] {rm:>8.1f} [{rlo:.1f}, {rhi:.1f}]")


if __name__ == "__main__":
    main()
