"""Compact students: per-agent MLPs or one shared, agent-indicated MLP."""

from marl_distill.students.mlp import KINDS, StudentMeta, StudentNet, StudentTeam

__all__ = ["KINDS", "StudentMeta", "StudentNet", "StudentTeam"]
