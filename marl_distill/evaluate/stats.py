"""Statistics users can trust: bootstrap confidence intervals with the episode count beside every number."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(values: np.ndarray, *, confidence: float = 0.95, seed: int = 0, resamples: int = 2000) -> dict:
    """Mean, percentile-bootstrap CI and sample count, as metrics.json writes them."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2 or np.ptp(values) == 0:
        return {"mean": mean, "ci95": [mean, mean], "episodes": int(len(values))}
    res = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return {"mean": mean, "ci95": [float(lo), float(hi)], "episodes": int(len(values))}


def normalized(value: float, random: float, teacher: float) -> float:
    """(R - R_random) / (R_teacher - R_random): 0 = random, 1 = teacher."""
    gap = teacher - random
    if gap == 0:
        return float("nan")
    return float((value - random) / gap)
