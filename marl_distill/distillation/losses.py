"""Distillation losses between teacher and student action-distribution parameters (batch, size).

Discrete actions compare logits; Box actions compare diagonal Gaussians ``[mean, log_std]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from marl_distill.policy.distributions import DiagGaussian, Head

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def kl_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher_T || student_T) with both softened by ``temperature``, times T^2 (Hinton et al. 2015).

    The T^2 factor keeps gradient sizes comparable across temperatures; the teacher side is the target.
    """
    t = temperature
    log_p = F.log_softmax(teacher / t, dim=-1)
    log_q = F.log_softmax(student / t, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()
    return kl if t == 1.0 else (t * t) * kl  # times 1 is exact: skipping it saves an op and its backward


def ce_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to the teacher's argmax action (hard labels, behaviour cloning)."""
    return F.cross_entropy(student, teacher.argmax(dim=-1))


def mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between logits (Rusu et al.'s MSE on Q-values when the teacher is DQN)."""
    return F.mse_loss(student, teacher)


def gaussian_kl_loss(student: torch.Tensor, teacher: torch.Tensor, head: DiagGaussian) -> torch.Tensor:
    """KL(teacher || student) between diagonal Gaussians, mean over the batch."""
    return head.kl(teacher, student).mean()


def gaussian_mean_mse(student: torch.Tensor, teacher: torch.Tensor, head: DiagGaussian) -> torch.Tensor:
    """MSE between the Gaussian means (behaviour cloning of the teacher's deterministic action)."""
    return F.mse_loss(head.split(student)[0], head.split(teacher)[0])


LOSSES = ("kl", "ce", "mse")


def make_loss(
    name: str, temperature: float = 1.0, alpha: float = 1.0, head: Head | None = None, scale: float = 1.0
) -> LossFn:
    """The loss by name for an action head (Categorical when ``head`` is None).

    ``kl`` with ``alpha < 1`` mixes in ``(1 - alpha)`` of the hard term. For Gaussian heads ``kl`` is the Gaussian
    KL and both ``ce`` (there is no argmax) and ``mse`` fit the means. ``scale`` turns logits back into the
    teacher's own outputs for ``mse``: a DQN teacher's logits are Q/tau, so scale = tau makes it Rusu et al.'s MSE
    on raw Q-values, whose size does not depend on tau (the student keeps producing logits in Q/tau units).
    """
    if isinstance(head, DiagGaussian):
        if name == "kl":
            if alpha >= 1.0:
                return lambda s, t: gaussian_kl_loss(s, t, head)
            return lambda s, t: alpha * gaussian_kl_loss(s, t, head) + (1 - alpha) * gaussian_mean_mse(s, t, head)
        if name in ("ce", "mse"):
            return lambda s, t: gaussian_mean_mse(s, t, head)
        raise ValueError(f"unknown loss {name!r}; use one of {LOSSES}")
    if name == "kl":
        if alpha >= 1.0:
            return lambda s, t: kl_loss(s, t, temperature)
        return lambda s, t: alpha * kl_loss(s, t, temperature) + (1.0 - alpha) * ce_loss(s, t)
    if name == "ce":
        return ce_loss
    if name == "mse":
        return mse_loss if scale == 1.0 else lambda s, t: mse_loss(s * scale, t * scale)
    raise ValueError(f"unknown loss {name!r}; use one of {LOSSES}")
