"""Distil a teacher team into a student: collect labelled states, then fit the student by minibatch Adam."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from marl_distill.distill.collect import Dataset, collect
from marl_distill.distill.losses import LOSSES, make_loss
from marl_distill.errors import UserError
from marl_distill.io import write_json
from marl_distill.policies import JointPolicy
from marl_distill.students import KINDS, StudentMeta, StudentNet, StudentTeam

SAMPLINGS = ("teacher",)


@dataclass
class DistillConfig:
    """How students are distilled from the teachers."""

    students: list[str] = field(default_factory=lambda: ["shared", "per-agent"])
    """Which students to build: shared (one net, agent id input) and/or per-agent."""
    hidden: list[int] = field(default_factory=lambda: [32])
    """Hidden layer widths of the student MLPs."""
    loss: str = "kl"
    """kl (soft targets with temperature), ce (teacher argmax) or mse (logits)."""
    temperature: float = 1.0
    """Softening temperature of the kl loss (scaled by T^2)."""
    sampling: str = "teacher"
    """Who acts while data is collected: teacher (the teachers' own state distribution)."""
    sample_actions: bool = True
    """The acting team samples from its distribution while collecting (wider coverage) rather than argmax."""
    samples: int = 20_000
    """States collected per agent (joint steps x n_envs)."""
    n_envs: int = 8
    """Env copies stepped together while collecting."""
    epochs: int = 40
    """Passes over the collected data."""
    batch_size: int = 256
    """Minibatch size per agent."""
    lr: float = 3e-3
    """Adam learning rate."""
    holdout: float = 0.1
    """Fraction of states held out to measure agreement during training."""
    dqn_temperature: float = 0.01
    """DQN teachers' distribution is softmax(Q / dqn_temperature)."""
    seed: int = 0
    """Seeds data collection, the split, initialisation and minibatch order."""

    def validate(self) -> None:
        for kind in self.students:
            if kind not in KINDS:
                raise UserError(f"unknown student {kind!r}; use one of {list(KINDS)}")
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}; use one of {list(LOSSES)}")
        if self.sampling not in SAMPLINGS:
            raise UserError(f"sampling {self.sampling!r} is not available yet; use one of {list(SAMPLINGS)}")
        if self.temperature <= 0 or self.lr <= 0 or self.samples < 1 or self.epochs < 1 or self.batch_size < 1:
            raise UserError("distill temperature, lr, samples, epochs and batch_size must be positive")
        if not 0 <= self.holdout < 1:
            raise UserError(f"distill.holdout must lie in [0, 1), got {self.holdout}")


@dataclass
class DistillResult:
    student: StudentTeam
    history: list[dict[str, float]]
    """One row per epoch: loss, held-out agreement with the teacher's argmax."""


def agreement(net: StudentNet, data: Dataset) -> float:
    """Fraction of (agent, state) pairs where student and teacher argmax agree."""
    hits, total = 0, 0
    with torch.no_grad():
        for agent, obs in data.obs.items():
            pred = net(agent, net.encode(agent, obs)).argmax(dim=-1)
            hits += int((pred == data.teacher_logits[agent].argmax(dim=-1)).sum())
            total += len(obs)
    return hits / max(total, 1)


def fit(
    meta: StudentMeta, data: Dataset, cfg: DistillConfig, *, rng: np.random.Generator, progress: bool = False
) -> tuple[StudentNet, list[dict[str, float]]]:
    """Minibatch Adam on the distillation loss, every agent's batch in each step."""
    torch.manual_seed(int(rng.integers(2**31)))
    train, held = data.split(cfg.holdout, rng) if cfg.holdout > 0 else (data, data)
    net = StudentNet(meta)
    inputs = {a: net.encode(a, o) for a, o in train.obs.items()}
    loss_fn = make_loss(cfg.loss, cfg.temperature)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    n = len(train)
    history = []
    for epoch in tqdm(range(cfg.epochs), desc=f"distill {meta.kind}", disable=not progress, leave=False):
        order = {a: torch.as_tensor(rng.permutation(n)) for a in inputs}
        losses = []
        for start in range(0, n, cfg.batch_size):
            loss = torch.zeros(())
            for agent, x in inputs.items():
                idx = order[agent][start : start + cfg.batch_size]
                loss = loss + loss_fn(net(agent, x[idx]), train.teacher_logits[agent][idx])
            loss = loss / len(inputs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "agreement": agreement(net, held)})
    return net, history


def distill(
    factory: Callable[[], Any],
    teachers: JointPolicy,
    cfg: DistillConfig,
    *,
    out_dir: Path | None = None,
    progress: bool | None = None,
) -> dict[str, DistillResult]:
    """Collect teacher-labelled data once and fit every requested student on it."""
    cfg.validate()
    show = sys.stderr.isatty() if progress is None else progress
    rng = np.random.default_rng(cfg.seed)
    with tqdm(total=cfg.samples, desc="collect", unit="state", disable=not show, leave=False) as bar:
        data = collect(
            factory,
            teachers,
            teachers,
            samples=cfg.samples,
            n_envs=cfg.n_envs,
            seed=cfg.seed + 7919,
            rng=rng,
            sample_actions=cfg.sample_actions,
            on_step=bar.update,
        )
    results = {}
    for kind in cfg.students:
        meta = StudentMeta.for_spec(teachers.spec, kind, cfg.hidden)
        net, history = fit(meta, data, cfg, rng=rng, progress=show)
        team = StudentTeam(teachers.spec, net)
        results[kind] = DistillResult(team, history)
        if out_dir is not None:
            folder = Path(out_dir) / "students" / kind
            team.save(folder)
            write_json(folder / "history.json", history)
    return results
