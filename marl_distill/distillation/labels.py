"""A run's teacher-driven states, labelled once and shared by its students, and what states a student saw.

Where the teachers act, the states they visit do not depend on the student. So the run labels them once, from its
own seeds (``(LABELS, 0)``: acting samples and the held-out split; ``(LABELS, 1)``: env resets), and every
memoryless student is fitted and scored on the same states and held-out episodes: students of different kinds or
sizes differ by what they are, not by what they saw (a paired comparison), and a student added later with the same
collection settings sees them too. ``distill.json``'s ``labels_digest`` fingerprints the states a student saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from marl_distill.distillation.collect import Dataset, collect
from marl_distill.distillation.config import DistillConfig
from marl_distill.env.views import Views
from marl_distill.errors import UserError
from marl_distill.policy.joint import JointPolicy, TeacherEnsemble
from marl_distill.utils.progress import progress_bar
from marl_distill.utils.seeding import LABELS, int_seed
from marl_distill.utils.seeding import rng as seed_rng


@dataclass
class Labels:
    """A run's teacher-driven states, labelled once for all its students: train and held-out episodes."""

    train: Dataset
    held: Dataset | None
    """Held-out episodes (None with ``holdout`` 0)."""


def shared_labels(
    factory: Callable[[], Any],
    teachers: JointPolicy,
    cfg: DistillConfig,
    *,
    views: Views | None = None,
    progress: bool | None = None,
) -> Labels | None:
    """The states the teachers visit with ``cfg``'s collection settings, labelled and split once from the run's
    ``LABELS`` seeds; None where students must collect their own: student-driven or mixed sampling (the student
    acts) and recurrent students (each records its own state along the way)."""
    cfg = cfg.resolved(views is None or views.same)
    if cfg.schedule() != [1.0] or cfg.arch != "mlp":
        return None
    rng = seed_rng(cfg.seed, LABELS, 0)
    labels = label_policy(teachers, cfg.loss)
    samples = cfg.round_samples()[0]
    with progress_bar(total=samples, desc="teacher-driven states", unit="state", progress=progress) as bar:
        got = collect(
            factory,
            teachers,
            labeller=own_labeller(labels),
            samples=samples,
            n_envs=cfg.n_envs,
            seed=int_seed(cfg.seed, LABELS, 1),
            rng=rng,
            sample_actions=cfg.sample_actions,
            on_step=bar.update,
        )
    data = in_student_view(got.data, views)
    if cfg.holdout <= 0:
        return Labels(data, None)
    return Labels(*split(data, cfg.holdout, rng))


def in_student_view(data: Dataset, views: Views | None) -> Dataset:
    """``data`` as the students see it, labelled from the teachers' view (see ``views``)."""
    if views is not None and not views.same:
        data.teacher_obs = views.teacher_obs(data.obs)
        data.obs = views.student_obs(data.obs)
    return data


def joint_digest(per_round: list[str]) -> str:
    """One fingerprint of every round's labelled states (a round's own where there is one round), 16 hex digits."""
    if len(per_round) == 1:
        return per_round[0][:16]
    return hashlib.sha1("".join(per_round).encode(), usedforsecurity=False).hexdigest()[:16]


def fingerprint(digest: Any, data: Dataset | None) -> None:
    """Feed ``data``'s observations, labels and episode ids, agent by agent, into ``digest`` (a hashlib object)."""
    if data is None:
        return
    for agent in sorted(data.obs):
        digest.update(np.ascontiguousarray(data.obs[agent]).tobytes())
        digest.update(data.teacher_logits[agent].detach().cpu().numpy().tobytes())
    if data.episode is not None:
        digest.update(np.ascontiguousarray(data.episode).tobytes())


def label_policy(teachers: JointPolicy, loss: str) -> JointPolicy:
    """The teachers as ``loss`` sees its targets: an ensemble regresses (mse) on its members' mean raw outputs and
    matches (kl, ce) their averaged distributions; one team is its own target either way."""
    return teachers.for_loss(loss) if isinstance(teachers, TeacherEnsemble) else teachers


def own_labeller(labels: JointPolicy) -> JointPolicy | None:
    """``collect``'s labeller: ``labels`` where its targets are not the acting teachers' own (an ensemble's mean raw
    outputs for mse), else None."""
    return labels if getattr(labels, "raw", False) else None


def split(data: Dataset, holdout: float, rng: np.random.Generator) -> tuple[Dataset, Dataset]:
    try:
        return data.split(holdout, rng)
    except ValueError as err:
        raise UserError(
            f"{err}; collect more states per round, use more env copies, or set distill.holdout = 0"
        ) from None
