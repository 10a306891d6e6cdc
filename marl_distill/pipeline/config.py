"""A benchmark grid's TOML: ``BenchmarkConfig`` (tasks x student settings x seeds) and how it is read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marl_distill import config as config_mod
from marl_distill.errors import UserError


@dataclass
class Named:
    """A task or a student setting: a name, and ExperimentConfig keys laid over the grid's [base]."""

    name: str
    """Folder and table name (letters, digits, '-', '_', '.')."""
    config: dict[str, Any]
    """ExperimentConfig keys (env, teachers, distill, evaluate, ...)."""


@dataclass
class BenchmarkConfig:
    """A grid: every task x every setting x every seed."""

    name: str = "benchmark"
    """Shown in the report's title."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """Run seeds: each seeds its own teachers, students and evaluation episodes (the run's ``seed`` and every stage's
    ``seed``), so no two runs share a learner, a distillation or an evaluation stream."""
    workers: int = 1
    """Runs at once on this machine (each teacher run already starts one process per agent)."""
    ray_cpus_per_run: float = 1.0
    """With --ray-address: CPUs Ray reserves for each run."""
    cross_seed: list[str] = field(default_factory=list)
    """Tasks whose students are also paired with the same setting's students of every other seed, in every mix
    (cross-seed play, ``cross_seed`` in metrics.json); costs mixes x other seeds evaluations per student."""
    base: dict[str, Any] = field(default_factory=dict)
    """ExperimentConfig keys shared by every run."""
    tasks: list[Named] = field(default_factory=list)
    """[[tasks]]: environments (and their teachers); a name plus ExperimentConfig keys."""
    settings: list[Named] = field(default_factory=list)
    """[[settings]]: student settings (distill, evaluate keys); a name plus ExperimentConfig keys."""


def _named(items: Any, key: str) -> list[Named]:
    if not isinstance(items, list) or not items:
        raise UserError(f"the benchmark config needs at least one [[{key}]] table with a name")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise UserError(f'[[{key}]] number {i + 1} needs name = "..."')
        name = item["name"]
        if not all(c.isalnum() or c in "-_." for c in name):
            raise UserError(f"{key} name {name!r} may hold only letters, digits, '-', '_' and '.'")
        out.append(Named(name, {k: v for k, v in item.items() if k != "name"}))
    names = [n.name for n in out]
    if len(set(names)) != len(names):
        raise UserError(f"two [[{key}]] tables share a name; names must be unique: {names}")
    return out


def load_benchmark(path: Path, overrides: list[str] | None = None) -> BenchmarkConfig:
    data = config_mod.apply_overrides(config_mod.read_toml(path), overrides or [])
    tasks, settings = _named(data.pop("tasks", None), "tasks"), _named(data.pop("settings", None), "settings")
    cfg = config_mod.from_dict(BenchmarkConfig, data)
    cfg.tasks, cfg.settings = tasks, settings
    if not cfg.seeds or cfg.workers < 1 or cfg.ray_cpus_per_run <= 0:
        raise UserError("benchmark needs at least one seed, workers >= 1 and ray_cpus_per_run > 0")
    unknown = sorted(set(cfg.cross_seed) - {t.name for t in tasks})
    if unknown:
        raise UserError(f"cross_seed names unknown tasks {unknown}; the tasks are {[t.name for t in tasks]}")
    for s in settings:
        moved = sorted({"env", "teachers", "teachers_from"} & set(s.config))
        if moved:
            raise UserError(f"setting {s.name!r} sets {moved[0]}; settings share teachers, so set it in [[tasks]]")
    return cfg


def documented_benchmark() -> str:
    """Every benchmark key with its default and one-line doc, as TOML (``marl-distill config --benchmark``)."""
    lines = [
        "# marl-distill benchmark: every grid key with its default. A grid is tasks x settings x seeds; each",
        "# [[tasks]] and [[settings]] table holds a name and experiment keys (marl-distill config lists them).",
        "# Run: marl-distill benchmark FILE",
    ]
    config_mod.documented_table(BenchmarkConfig, BenchmarkConfig(), "", lines, tables=("base", "tasks", "settings"))
    lines.extend(
        [
            "",
            "# Example:",
            "# [base]",
            "# evaluate = { episodes = 200 }",
            "# [[tasks]]",
            '# name = "spread"',
            '# env = { id = "simple_spread", kwargs = { N = 3 } }',
            "# [[settings]]",
            '# name = "kl-32"',
            '# distill = { hidden = [32], loss = "kl" }',
        ]
    )
    return "\n".join(lines) + "\n"
