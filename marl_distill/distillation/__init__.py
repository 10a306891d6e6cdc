"""Distillation: losses, data collection and the student training loop."""

from marl_distill.distillation.config import DistillConfig
from marl_distill.distillation.losses import LOSSES, ce_loss, kl_loss, make_loss, mse_loss
from marl_distill.distillation.trainer import DistillResult, distill

__all__ = [
    "LOSSES",
    "DistillConfig",
    "DistillResult",
    "ce_loss",
    "distill",
    "kl_loss",
    "make_loss",
    "mse_loss",
]
