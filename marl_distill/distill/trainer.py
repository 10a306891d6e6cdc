"""Distill a teacher team into students: collect teacher-labelled states, fit, repeat (DAgger iterations)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from marl_distill.distill.collect import Buffer, collect
from marl_distill.distill.fit import fit, plot_curves
from marl_distill.distill.losses import LOSSES, make_loss
from marl_distill.distill.schedule import SCHEDULES, BetaSchedule, betas
from marl_distill.distill.warm_start import warm_start
from marl_distill.errors import UserError
from marl_distill.io import write_json
from marl_distill.policies import JointPolicy
from marl_distill.students import KINDS, StudentMeta, StudentNet, StudentTeam

SAMPLINGS = ("teacher", "student", "mixed")


@dataclass
class DistillConfig:
    """How students are distilled from the teachers."""

    students: list[str] = field(default_factory=lambda: ["shared", "per-agent"])
    """Which students to build: shared (one net, agent id input) and/or per-agent."""
    hidden: list[int] = field(default_factory=lambda: [32])
    """Hidden layer widths of the student MLPs."""
    loss: str = "kl"
    """kl (soft targets with temperature), ce (teacher argmax) or mse (logits; DQN teachers: raw Q-values)."""
    temperature: float = 1.0
    """Softening temperature of the kl loss (scaled by T^2)."""
    alpha: float = 1.0
    """With loss kl: weight of the soft KL term; 1 - alpha goes to cross-entropy on the teacher's argmax."""
    sampling: str = "teacher"
    """Who acts while data is collected: teacher, student (multi-agent DAgger) or mixed (beta schedule)."""
    iterations: int = 4
    """Collect-then-fit rounds for student and mixed sampling (teacher sampling collects once)."""
    beta_schedule: str = "exponential"
    """Mixed sampling: exponential (beta0 * decay^k), linear (to 0) or constant."""
    beta0: float = 1.0
    """Mixed sampling: probability that the teachers take a joint step in the first iteration."""
    beta_decay: float = 0.5
    """Mixed sampling, exponential schedule: ratio between successive betas."""
    buffer_size: int = 100_000
    """Most states per agent kept across iterations (a uniform reservoir sample of everything collected)."""
    patience: int = 5
    """Stop fitting after this many epochs without better held-out agreement (0: never stop early)."""
    sample_actions: bool = True
    """The acting team samples from its distribution while collecting (wider coverage) rather than argmax."""
    samples: int = 20_000
    """States collected per agent in all (split evenly over the iterations)."""
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
    init_from_teacher: bool = False
    """Per-agent students start as copies of their PPO teachers' actors (needs hidden = the teachers' net_arch)."""
    seed: int = 0
    """Seeds data collection, the split, initialisation and minibatch order."""

    def validate(self) -> None:
        if self.init_from_teacher and "shared" in self.students:
            raise UserError('distill.init_from_teacher applies to per-agent students; set students = ["per-agent"]')
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
        if not 0 <= self.alpha <= 1:
            raise UserError(f"distill.alpha must lie in [0, 1], got {self.alpha}")
        if self.iterations < 1 or self.buffer_size < 1 or self.patience < 0:
            raise UserError("distill.iterations and buffer_size must be >= 1, patience >= 0")
        if self.beta_schedule not in SCHEDULES or not (0 <= self.beta0 <= 1 and 0 <= self.beta_decay <= 1):
            raise UserError(f"beta_schedule must be one of {list(SCHEDULES)}, with beta0 and beta_decay in [0, 1]")

    def schedule(self) -> list[float]:
        """Beta of each iteration (1 = teachers act)."""
        n = 1 if self.sampling == "teacher" else self.iterations
        return betas(self.sampling, BetaSchedule(self.beta_schedule, self.beta0, self.beta_decay), n)


@dataclass
class DistillResult:
    student: StudentTeam
    history: list[dict[str, float]]
    """One row per epoch: iteration, beta, loss, held-out agreement with the teacher's argmax."""


def distill_one(
    factory: Callable[[], Any],
    teachers: JointPolicy,
    meta: StudentMeta,
    cfg: DistillConfig,
    *,
    rng: np.random.Generator,
    log_dir: Path | None = None,
    show: bool = False,
) -> DistillResult:
    """Collect-and-fit rounds for one student; each round's acting team follows the beta schedule."""
    torch.manual_seed(int(rng.integers(2**31)))
    net = StudentNet(meta)
    if cfg.init_from_teacher:
        warm_start(net, getattr(teachers, "models", None))
    team = StudentTeam(teachers.spec, net)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    heads = {a: teachers.spec.head(a) for a in meta.agents}
    scale = getattr(teachers, "logit_scale", lambda _: 1.0)  # DQN teachers: mse on raw Q-values
    loss_fns = {a: make_loss(cfg.loss, cfg.temperature, cfg.alpha, heads[a], scale(a)) for a in meta.agents}
    schedule = cfg.schedule()
    train_buf, held_buf = Buffer(cfg.buffer_size, rng), Buffer(max(1, int(cfg.buffer_size * cfg.holdout)), rng)
    writer = _writer(log_dir)
    history: list[dict[str, Any]] = []
    per_round = -(-cfg.samples // len(schedule))
    for k, beta in enumerate(schedule):
        with tqdm(
            total=per_round,
            desc=f"{meta.kind} round {k + 1}/{len(schedule)} beta={beta:.2f}",
            unit="state",
            disable=not show,
            leave=False,
        ) as bar:
            got = collect(
                factory,
                teachers,
                samples=per_round,
                n_envs=cfg.n_envs,
                seed=cfg.seed * 100 + k + 7919,
                rng=rng,
                student=team if beta < 1 else None,
                beta=beta,
                sample_actions=cfg.sample_actions,
                on_step=bar.update,
            )
        fresh_train, fresh_held = got.data.split(cfg.holdout, rng) if cfg.holdout > 0 else (got.data, got.data)
        train_buf.add(fresh_train)
        held_buf.add(fresh_held)

        def log(row: dict[str, float], k: int = k, beta: float = beta, frac: float = got.teacher_fraction) -> None:
            row.update(iteration=k + 1, beta=beta, teacher_fraction=frac)
            step = len(history) + 1
            if writer is not None:
                for key in ("loss", "held_loss", "agreement", "action_mse"):
                    if row.get(key) is not None:
                        writer.add_scalar(f"distill/{meta.kind}/{key}", row[key], step)
            history.append(row)

        assert train_buf.data is not None and held_buf.data is not None
        fit(
            net,
            train_buf.data,
            held_buf.data,
            loss_fns,
            heads,
            opt,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            patience=cfg.patience,
            rng=rng,
            on_epoch=log,
        )
    if writer is not None:
        writer.close()
    return DistillResult(StudentTeam(teachers.spec, net), history)


def _writer(log_dir: Path | None) -> Any:
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir))


def distill(
    factory: Callable[[], Any],
    teachers: JointPolicy,
    cfg: DistillConfig,
    *,
    out_dir: Path | None = None,
    progress: bool | None = None,
) -> dict[str, DistillResult]:
    """Distill every requested student; save each under ``out_dir/students/KIND`` with its curves."""
    cfg.validate()
    show = sys.stderr.isatty() if progress is None else progress
    results = {}
    for kind in cfg.students:
        rng = np.random.default_rng([cfg.seed, KINDS.index(kind)])
        meta = StudentMeta.for_spec(teachers.spec, kind, cfg.hidden)
        log_dir = Path(out_dir) / "tb" / f"distill_{kind}" if out_dir is not None else None
        result = distill_one(factory, teachers, meta, cfg, rng=rng, log_dir=log_dir, show=show)
        results[kind] = result
        if out_dir is not None:
            folder = Path(out_dir) / "students" / kind
            result.student.save(folder)
            write_json(folder / "history.json", result.history)
            plot_curves(
                result.history,
                Path(out_dir) / "plots" / f"distill_{kind}.png",
                f"{kind} student: {cfg.loss} loss, {cfg.sampling}-driven sampling",
            )
    return results
