"""Distillation data: states visited by an acting team, labelled with the teachers' logits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from marl_distill.multiagent import JointVecEnv
from marl_distill.policies import JointPolicy, select_actions


@dataclass
class Dataset:
    """Per-agent observations and teacher logits, row-aligned."""

    obs: dict[str, np.ndarray]
    teacher_logits: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(next(iter(self.obs.values())))

    def split(self, fraction: float, rng: np.random.Generator) -> tuple[Dataset, Dataset]:
        """Random (train, held-out) split with the same rows for every agent."""
        order = rng.permutation(len(self))
        cut = int(len(order) * (1 - fraction))
        parts = []
        for idx in (order[:cut], order[cut:]):
            parts.append(
                Dataset(
                    {a: o[idx] for a, o in self.obs.items()},
                    {a: t[idx] for a, t in self.teacher_logits.items()},
                )
            )
        return parts[0], parts[1]


def collect(
    factory: Callable[[], Any],
    actor: JointPolicy,
    labeller: JointPolicy,
    *,
    samples: int,
    n_envs: int,
    seed: int,
    rng: np.random.Generator,
    sample_actions: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Dataset:
    """Run ``actor`` for ``samples`` states per agent; label each visited state with ``labeller``'s logits.

    Teacher-driven sampling passes the teachers as both; student-driven passes the student team as ``actor``.
    ``sample_actions`` makes the actor sample from its distribution (wider state coverage) instead of argmax.
    """
    venv = JointVecEnv(factory, n_envs, autoreset=True)
    obs = venv.reset([seed * 10_000 + i for i in range(n_envs)])
    rows: dict[str, list[np.ndarray]] = {a: [] for a in venv.agents}
    labels: dict[str, list[torch.Tensor]] = {a: [] for a in venv.agents}
    n_steps = -(-samples // n_envs)
    for _ in range(n_steps):
        actions, acted_logits = select_actions(actor, obs, rng, deterministic=not sample_actions)
        teacher = acted_logits if labeller is actor else labeller.logits(obs)
        for a in venv.agents:
            rows[a].append(obs[a])
            labels[a].append(teacher[a])
        obs = venv.step(actions).obs
        if on_step is not None:
            on_step(n_envs)
    venv.close()
    return Dataset({a: np.concatenate(r) for a, r in rows.items()}, {a: torch.cat(t) for a, t in labels.items()})
