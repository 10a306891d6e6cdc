"""Distillation: losses, data collection and the student training loop."""

from marl_distill.distill.config import DistillConfig
from marl_distill.distill.losses import LOSSES, ce_loss, kl_loss, make_loss, mse_loss
from marl_distill.distill.trainer import DistillResult, distill

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
