"""Plumbing every stage shares: atomic files, worker pools, the seed tree, figures, lazy package exports.
Nothing here imports torch or any other part of the lab."""

from marl_distill.utils.files import atomic_write, read_json, write_json, write_text
from marl_distill.utils.lazy import lazy_exports
from marl_distill.utils.plotting import pyplot, save_figure
from marl_distill.utils.workers import can_fork, run_jobs, stop_pool, usable_cpus

__all__ = [
    "atomic_write",
    "can_fork",
    "lazy_exports",
    "pyplot",
    "read_json",
    "run_jobs",
    "save_figure",
    "stop_pool",
    "usable_cpus",
    "write_json",
    "write_text",
]
