"""Statistics users can trust: bootstrap confidence intervals with the episode count beside every number."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats


def mean_ci(
    values: np.ndarray, *, confidence: float = 0.95, seed: int = 0, resamples: int = 2000, count: str = "episodes"
) -> dict:
    """Mean, percentile-bootstrap CI and sample count (under the key ``count``), as metrics.json writes them."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2 or np.ptp(values) == 0:
        return {"mean": mean, "ci95": [mean, mean], count: int(len(values))}
    res = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return {"mean": mean, "ci95": [float(lo), float(hi)], count: int(len(values))}


def normalized(value: float, random: float, teacher: float) -> float:
    """(R - R_random) / (R_teacher - R_random): 0 = random, 1 = teacher."""
    gap = teacher - random
    if gap == 0:
        return float("nan")
    return float((value - random) / gap)


def iqm(values: np.ndarray) -> float:
    """Interquartile mean (Agarwal et al. 2021): the mean of the middle 50%, robust to one odd seed."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def iqm_ci(values: np.ndarray, *, confidence: float = 0.95, seed: int = 0, resamples: int = 2000) -> dict:
    """IQM over runs (seeds) with a percentile-bootstrap CI and the run count."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"iqm": None, "ci95": [None, None], "runs": 0}
    point = iqm(values)
    if len(values) < 2 or np.ptp(values) == 0:
        return {"iqm": point, "ci95": [point, point], "runs": int(len(values))}
    res = stats.bootstrap(
        (values,),
        lambda x, axis=-1: stats.trim_mean(x, 0.25, axis=axis),
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return {"iqm": point, "ci95": [float(lo), float(hi)], "runs": int(len(values))}


def mean_t_ci(values: list[float] | np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval, for a handful of repeated measurements (perf scripts); nan bounds
    below two samples."""
    a = np.asarray(values, dtype=float)
    m = float(a.mean())
    if len(a) < 2:
        return m, float("nan"), float("nan")
    if float(a.std()) == 0.0:
        return m, m, m
    lo, hi = stats.t.interval(0.95, len(a) - 1, loc=m, scale=stats.sem(a))
    return m, float(lo), float(hi)


def agent_mean(values: Mapping[str, float | None] | None) -> float | None:
    """Mean over the agents that have a value (an agent that never acted has none)."""
    present = [v for v in (values or {}).values() if v is not None]
    return float(np.mean(present)) if present else None
