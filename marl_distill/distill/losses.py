"""Distillation losses between teacher and student action logits (batch, n_actions)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def kl_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher_T || student_T) with both softened by ``temperature``, times T^2 (Hinton et al. 2015).

    The T^2 factor keeps gradient sizes comparable across temperatures; the teacher side is the target.
    """
    t = temperature
    log_p = F.log_softmax(teacher / t, dim=-1)
    log_q = F.log_softmax(student / t, dim=-1)
    return (t * t) * (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def ce_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to the teacher's argmax action (hard labels, behaviour cloning)."""
    return F.cross_entropy(student, teacher.argmax(dim=-1))


def mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between logits (Rusu et al.'s MSE on Q-values when the teacher is DQN)."""
    return F.mse_loss(student, teacher)


LOSSES = ("kl", "ce", "mse")


def make_loss(name: str, temperature: float = 1.0, alpha: float = 1.0) -> LossFn:
    """The loss by name; ``kl`` with ``alpha < 1`` mixes in ``(1 - alpha)`` of hard cross-entropy."""
    if name == "kl":
        if alpha >= 1.0:
            return lambda s, t: kl_loss(s, t, temperature)
        return lambda s, t: alpha * kl_loss(s, t, temperature) + (1.0 - alpha) * ce_loss(s, t)
    if name == "ce":
        return ce_loss
    if name == "mse":
        return mse_loss
    raise ValueError(f"unknown loss {name!r}; use one of {LOSSES}")
