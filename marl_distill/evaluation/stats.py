"""Intervals a reviewer can sign: every one names its method, and the ones over few seeds have their coverage
checked by simulation (tests/evaluation/test_stats.py).

Across a handful of runs a percentile bootstrap is too narrow (at 5 seeds of normal data it covers the true mean
~83% of the time, the IQM's ~90%), so summaries over runs use Student-t for means and the Tukey–McLaughlin
(Yuen) trimmed-mean t interval for the IQM. Within one run, over hundreds of episodes, the percentile bootstrap is
fine. A sample whose values are all equal (a deterministic policy in a world whose starts do not change its
outcome) gets ``ci95 = [mean, mean]`` and ``distinct_values = 1``: reports print "all equal", not an interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

IQM_TRIM = 0.25
"""Fraction cut from each end for the interquartile mean (scipy's rule: ``int(0.25 * n)`` values a side)."""
METHODS = {
    "episodes": "percentile bootstrap over episodes (2,000 resamples) of the per-episode team return",
    "paired": "Student-t over episodes of the per-episode differences on the same episode seeds (paired)",
    "runs_mean": "Student-t over runs (seeds) of the per-run values; coverage checked by simulation at 5 seeds",
    "runs_iqm": "Tukey–McLaughlin (Yuen) trimmed-mean t interval over runs, the IQM's Student-t analogue "
    "(winsorized variance, n − 2g − 1 degrees of freedom); coverage checked by simulation at 5 seeds",
    "runs_ratio": "Fieller's interval over runs for a ratio of two paired means (Student-t, n − 1 degrees of "
    "freedom; no interval unless the denominator's mean is significantly away from 0); it assumes the two means "
    "are near normal: coverage checked by simulation at 5 seeds of normal per-seed values, and lower when one "
    "seed's values dominate (the per-seed values are listed beside it)",
}
"""One sentence per interval method, quoted by metrics.json's ``_meta`` and the reports."""


def t_interval(values: np.ndarray, *, axis: int = -1, confidence: float = 0.95) -> tuple[Any, Any, Any]:
    """Mean and Student-t bounds along ``axis`` (vectorised, so coverage can be simulated); nan bounds below two
    values, ``[mean, mean]`` when they are all equal."""
    x = np.asarray(values, dtype=float)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def trimmed_t_interval(
    values: np.ndarray, *, axis: int = -1, trim: float = IQM_TRIM, confidence: float = 0.95
) -> tuple[Any, Any, Any]:
    """Trimmed mean (the IQM at ``trim=0.25``) and its Tukey–McLaughlin / Yuen t bounds along ``axis``:
    standard error sqrt((n-1) s_w² / (h (h-1))) from the winsorized variance s_w², h = n - 2g values kept, h - 1
    degrees of freedom. With no value trimmed (n < 4) it is the Student-t interval of the mean."""
    x = np.sort(np.asarray(values, dtype=float), axis=axis)
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    g = int(trim * n)
    h = n - 2 * g
    point = x[..., g : n - g].mean(axis=-1)
    if h < 2:
        nan = np.full_like(point, np.nan)
        return point, nan, nan
    wins = np.clip(x, x[..., g : g + 1], x[..., n - g - 1 : n - g])
    se = np.sqrt((n - 1) * wins.var(axis=-1, ddof=1) / (h * (h - 1)))
    half = stats.t.ppf(0.5 + confidence / 2, h - 1) * se
    return point, point - half, point + half


def fieller_interval(
    num: np.ndarray, den: np.ndarray, *, axis: int = -1, confidence: float = 0.95
) -> tuple[Any, Any, Any]:
    """mean(num) / mean(den) and Fieller's bounds along ``axis`` for paired samples (one pair per run): the ratios
    r with (m_n − r m_d)² ≤ t² (v_nn − 2 r v_nd + r² v_dd), where v are the variances and covariance of the two
    means. Bounded only where the denominator's mean is significantly away from 0 (t² v_dd < m_d²); nan
    bounds otherwise, and below two runs. Vectorised, so coverage can be simulated."""
    a_, b_ = np.moveaxis(np.asarray(num, float), axis, -1), np.moveaxis(np.asarray(den, float), axis, -1)
    n = a_.shape[-1]
    mn, md = a_.mean(axis=-1), b_.mean(axis=-1)
    ratio = mn / np.where(md == 0, np.nan, md)
    if n < 2:
        nan = np.full_like(ratio, np.nan)
        return ratio, nan, nan
    vnn, vdd = a_.var(axis=-1, ddof=1) / n, b_.var(axis=-1, ddof=1) / n
    vnd = ((a_ - mn[..., None]) * (b_ - md[..., None])).sum(axis=-1) / (n - 1) / n
    t2 = stats.t.ppf(0.5 + confidence / 2, n - 1) ** 2
    qa, qb, qc = md**2 - t2 * vdd, -2 * (mn * md - t2 * vnd), mn**2 - t2 * vnn
    disc = qb**2 - 4 * qa * qc
    ok = (qa > 0) & (disc >= 0)
    root = np.sqrt(np.where(ok, disc, 0.0))
    safe = np.where(ok, qa, 1.0)
    lo = np.where(ok, (-qb - root) / (2 * safe), np.nan)
    hi = np.where(ok, (-qb + root) / (2 * safe), np.nan)
    return ratio, lo, hi


def ratio_ci(num: np.ndarray, den: np.ndarray, *, count: str = "runs") -> dict[str, Any]:
    """Paired per-run values: the ratio of their means with Fieller's CI (METHODS["runs_ratio"]); runs where
    either value is missing are left out."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    keep = np.isfinite(num) & np.isfinite(den)
    if not keep.any():
        return {"ratio": None, "ci95": [None, None], count: 0}
    ratio, lo, hi = fieller_interval(num[keep], den[keep])
    point = float(ratio) if np.isfinite(ratio) else None
    return {"ratio": point, "ci95": _bounds(lo, hi), count: int(keep.sum())}


def _bounds(lo: Any, hi: Any) -> list[float | None]:
    return [None if not np.isfinite(b) else float(b) for b in (lo, hi)]


def distinct(values: np.ndarray) -> int:
    """How many different values a sample holds: 1 means every episode gave the same number."""
    return int(len(np.unique(np.asarray(values, dtype=float))))


def mean_ci(
    values: np.ndarray, *, confidence: float = 0.95, seed: int = 0, resamples: int = 2000, count: str = "episodes"
) -> dict:
    """Per-episode values of one run: mean, percentile-bootstrap CI, the episode count (under ``count``) and
    ``distinct_values`` (1: every episode equal, the CI is ``[mean, mean]`` and is no estimate)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    k = distinct(values)
    if len(values) < 2 or k == 1:
        return {"mean": mean, "ci95": [mean, mean], count: int(len(values)), "distinct_values": k}
    res = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return {"mean": mean, "ci95": [float(lo), float(hi)], count: int(len(values)), "distinct_values": k}


def paired_diff(values: np.ndarray, baseline: np.ndarray | float) -> dict[str, Any]:
    """``values - baseline`` per episode on the same episode seeds: mean, Student-t CI over episodes (METHODS
    ["paired"]), the episode count and ``distinct_values`` of the differences. A scalar ``baseline`` is taken
    as known (a one-sample interval)."""
    d = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    mean, lo, hi = t_interval(d)
    return {"mean": float(mean), "ci95": _bounds(lo, hi), "episodes": int(len(d)), "distinct_values": distinct(d)}


def excludes_zero(block: Mapping[str, Any]) -> bool:
    """Whether a ``paired_diff`` block is significantly above zero (its whole 95% CI is)."""
    lo = block["ci95"][0]
    return lo is not None and lo > 0


def t_ci(values: np.ndarray, *, count: str = "runs") -> dict[str, Any]:
    """Per-run values (one per seed): mean, Student-t CI (METHODS["runs_mean"]; null bounds below two runs), the
    run count (under ``count``) and ``distinct_values``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"mean": None, "ci95": [None, None], count: 0}
    mean, lo, hi = t_interval(values)
    return {"mean": float(mean), "ci95": _bounds(lo, hi), count: int(len(values)), "distinct_values": distinct(values)}


def normalized(value: float, random: float, teacher: float) -> float:
    """(R - R_random) / (R_teacher - R_random): 0 = random, 1 = teacher. Callers check the gap is significant."""
    gap = teacher - random
    if gap == 0:
        return float("nan")
    return float((value - random) / gap)


def iqm(values: np.ndarray) -> float:
    """Interquartile mean (Agarwal et al. 2021): the mean of the middle 50% (a quarter trimmed from each end, rounded
    down: at 5 runs the middle three), robust to one odd seed."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), IQM_TRIM))


def iqm_ci(values: np.ndarray) -> dict[str, Any]:
    """IQM over runs (seeds) with the trimmed-mean t CI (METHODS["runs_iqm"]) and the run count; null bounds
    below two runs."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"iqm": None, "ci95": [None, None], "runs": 0}
    point, lo, hi = trimmed_t_interval(values)
    return {"iqm": float(point), "ci95": _bounds(lo, hi), "runs": int(len(values)), "distinct_values": distinct(values)}


def mean_t_ci(values: list[float] | np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval, for a handful of repeated measurements (perf scripts); nan bounds
    below two samples."""
    m, lo, hi = t_interval(np.asarray(values, dtype=float))
    return float(m), float(lo), float(hi)


def agent_mean(values: Mapping[str, float | None] | None) -> float | None:
    """Mean over the agents that have a value (an agent that never acted has none)."""
    present = [v for v in (values or {}).values() if v is not None]
    return float(np.mean(present)) if present else None
