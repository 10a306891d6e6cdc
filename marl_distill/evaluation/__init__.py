"""Evaluation: fixed-seed rollouts of any joint policy, metrics with confidence intervals, reports."""

from marl_distill.evaluation.config import EvalConfig
from marl_distill.evaluation.metrics import evaluate_all, mixes
from marl_distill.evaluation.rollout import Rollouts, run_episodes
from marl_distill.evaluation.stats import mean_ci, normalized, paired_diff

__all__ = [
    "EvalConfig",
    "Rollouts",
    "evaluate_all",
    "mean_ci",
    "mixes",
    "normalized",
    "paired_diff",
    "run_episodes",
]
