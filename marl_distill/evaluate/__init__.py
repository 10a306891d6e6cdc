"""Evaluation: fixed-seed rollouts of any joint policy, metrics with confidence intervals, reports."""

from marl_distill.evaluate.metrics import EvalConfig, evaluate_all, latency_us, mixes
from marl_distill.evaluate.rollout import Rollouts, run_episodes
from marl_distill.evaluate.stats import mean_ci, normalized

__all__ = [
    "EvalConfig",
    "Rollouts",
    "evaluate_all",
    "latency_us",
    "mean_ci",
    "mixes",
    "normalized",
    "run_episodes",
]
