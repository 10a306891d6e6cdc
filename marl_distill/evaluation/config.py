"""How policies are evaluated: ``EvalConfig``."""

from __future__ import annotations

from dataclasses import dataclass, field

from marl_distill.errors import UserError


@dataclass
class EvalConfig:
    """How policies are evaluated."""

    episodes: int = 200
    """Episodes per policy; every policy plays the same episode seeds."""
    seed: int = 0
    """The evaluation's seed (unset in a config, in Python left at 0: the run's): episode seeds and the sampling
    policies' draws come from its tree, the same for every policy of a run and different between runs."""
    n_envs: int = 16
    """Episodes played at once (batched forward passes)."""
    mixed_teams: bool = True
    """Also play every team where some agents act by the student and the rest by their teachers."""
    mixed_episodes: int = 100
    """Episodes per mixed team (and per cross-seed team)."""
    cross_play: list[str] = field(default_factory=list)
    """Run folders (same env, other seeds): their students play with this run's students of the same name, and
    their teachers with this run's teachers, in every mix."""
    latency_repeats: int = 300
    """Batch-1 joint steps timed per policy and round (the median of each round is kept)."""
    latency_rounds: int = 5
    """Interleaved timing rounds over all policies; latencies and speed-ups are medians over rounds."""
    onnx: bool = True
    """Where the [export] extra is installed: export every team (parity checked), time it in onnxruntime
    (latency_us_onnx) and record its size (onnx_bytes)."""
    int8: bool = False
    """Also evaluate int8 copies (onnxruntime dynamic quantization) of the teachers and of every student, as the
    policies 'teacher-int8' and 'NAME-int8': returns, agreement with the teachers, size, onnxruntime latency.
    Needs the [export] extra."""

    def validate(self) -> None:
        if self.episodes < 2 or self.n_envs < 1 or self.mixed_episodes < 2 or self.latency_repeats < 1:
            raise UserError("evaluate.episodes and mixed_episodes must be >= 2, n_envs and latency_repeats >= 1")
        if self.latency_rounds < 1:
            raise UserError(f"evaluate.latency_rounds must be >= 1, got {self.latency_rounds}")
        if self.seed < 0:
            raise UserError(f"evaluate.seed must be >= 0, got {self.seed}")
