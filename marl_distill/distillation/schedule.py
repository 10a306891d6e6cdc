"""The beta schedule of mixed sampling: the probability that the teachers take a joint step in iteration k."""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULES = ("exponential", "linear", "constant")


@dataclass(frozen=True)
class BetaSchedule:
    """beta_k for DAgger iteration k of ``iterations`` (Ross et al. 2011 use beta_k = p^k)."""

    kind: str = "exponential"
    """exponential (beta0 * decay^k), linear (beta0 down to 0 at the last iteration) or constant (beta0)."""
    beta0: float = 1.0
    """beta of the first iteration."""
    decay: float = 0.5
    """Ratio between successive betas of the exponential schedule."""

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown beta schedule {self.kind!r}; use one of {list(SCHEDULES)}")
        if not (0.0 <= self.beta0 <= 1.0 and 0.0 <= self.decay <= 1.0):
            raise ValueError("beta0 and decay must lie in [0, 1]")

    def __call__(self, k: int, iterations: int) -> float:
        if self.kind == "constant":
            return self.beta0
        if self.kind == "linear":
            return self.beta0 * (1.0 - k / max(iterations - 1, 1))
        return self.beta0 * self.decay**k


def betas(sampling: str, schedule: BetaSchedule, iterations: int) -> list[float]:
    """Per-iteration beta of a sampling scheme: teacher-driven is all ones; student-driven starts from the
    teachers' states (an untrained student visits nothing useful) and then lets the student act alone."""
    if sampling == "teacher":
        return [1.0] * iterations
    if sampling == "student":
        return [1.0] + [0.0] * (iterations - 1)
    return [schedule(k, iterations) for k in range(iterations)]
