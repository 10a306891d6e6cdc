"""What made a result: the lab's commit and the versions and machine it ran on, recorded beside every metrics.json
so that a published figure says what it came from (docs/results/render.py shows it)."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from marl_distill.utils.workers import usable_cpus

PACKAGES = ("marl-distill", "torch", "stable-baselines3", "pettingzoo", "mpe2", "gymnasium", "numpy", "onnxruntime")
"""Distributions whose versions decide a run's figures."""


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu() -> str:
    """The CPU model where the kernel says it (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """The CPU's 8-bit dot-product extensions (Linux): onnxruntime's int8 kernels differ with and without them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(set(line.split(":", 1)[1].split()) & {"avx2", "avx512f", "avx512_vnni", "avx_vnni"})
    except OSError:
        pass
    return []


@functools.cache
def commit() -> str | None:
    """``git describe --always --dirty`` of the lab's own checkout (None when installed from elsewhere): a
    ``-dirty`` suffix says the tree had uncommitted changes. Read once per process (runner.run asks at its start),
    so a checkout that changes while a run goes on does not relabel it."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def provenance() -> dict[str, Any]:
    """The commit, Python, package versions, CPU model and usable cores of this process."""
    return {
        "commit": commit(),
        "python": platform.python_version(),
        "versions": {name: v for name in PACKAGES if (v := _version(name)) is not None},
        "cpu": _cpu(),
        "cpu_flags": _cpu_flags(),
        "cores": usable_cpus(),
    }
