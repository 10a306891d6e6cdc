"""Every seed of a run comes from one ``numpy.random.SeedSequence`` tree: (run seed, stage, role, index...).

Two runs with different run seeds share no stream (SeedSequence hashes its entropy and spawn key), and inside a
run each stage, agent and env copy has its own branch, so "run s's agent_1" and "run s+1's agent_0" can never
start from the same parameters, and the evaluation episodes and the random baseline differ between runs.
"""

from __future__ import annotations

import numpy as np

TEACHERS, DISTILL, EVALUATE, LABELS = 0, 1, 2, 3
"""Stage keys: the first level under the run seed (LABELS: the teacher-driven states a run's students share)."""
LEARNER, ENV_COPY = 0, 1
"""Teacher-stage roles: an agent's SB3 learner, an env copy's reset seed."""
EPISODES, RANDOM_POLICY, POLICY_RNG = 0, 1, 2
"""Evaluation-stage roles: the episode seeds every policy plays, the random baseline's draws, other draws."""


def sequence(run_seed: int, *path: int) -> np.random.SeedSequence:
    """The node ``path`` of run ``run_seed``'s tree (e.g. ``(TEACHERS, LEARNER, agent_index)``)."""
    if int(run_seed) < 0:
        raise ValueError(f"run seeds must be non-negative, got {run_seed}")
    return np.random.SeedSequence(int(run_seed), spawn_key=tuple(int(p) for p in path))


def int_seed(run_seed: int, *path: int) -> int:
    """One 32-bit integer seed (what SB3, torch and ``env.reset(seed=...)`` take) for the node ``path``."""
    return int(sequence(run_seed, *path).generate_state(1, np.uint32)[0])


def int_seeds(run_seed: int, *path: int, n: int) -> list[int]:
    """``n`` integer seeds from one node (episode seeds, env-copy seeds): distinct with overwhelming odds."""
    return [int(s) for s in sequence(run_seed, *path).generate_state(n, np.uint32)]


def rng(run_seed: int, *path: int) -> np.random.Generator:
    """A numpy Generator on the node ``path``."""
    return np.random.default_rng(sequence(run_seed, *path))
