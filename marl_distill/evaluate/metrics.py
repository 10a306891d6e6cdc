"""metrics.json: returns, normalized returns, coordination with the teachers, size and speed of every policy."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from marl_distill.distributions import DiagGaussian
from marl_distill.errors import UserError
from marl_distill.evaluate.rollout import Rollouts, run_episodes
from marl_distill.evaluate.stats import mean_ci, normalized
from marl_distill.multiagent import EnvSpec
from marl_distill.policies import JointPolicy, MixedTeam, RandomPolicy


@dataclass
class EvalConfig:
    """How policies are evaluated."""

    episodes: int = 200
    """Episodes per policy; every policy plays the same episode seeds."""
    seed: int = 100_000
    """Episode k starts from env.reset(seed=seed + k)."""
    n_envs: int = 16
    """Episodes played at once (batched forward passes)."""
    mixed_teams: bool = True
    """Also play every team where some agents act by the student and the rest by their teachers."""
    mixed_episodes: int = 100
    """Episodes per mixed team (and per cross-seed team)."""
    cross_play: list[str] = field(default_factory=list)
    """Run folders (same env, other seeds) whose students are paired with this run's students of the same name."""
    latency_repeats: int = 300
    """Batch-1 joint steps timed per policy (median reported)."""

    def validate(self) -> None:
        if self.episodes < 2 or self.n_envs < 1 or self.mixed_episodes < 2 or self.latency_repeats < 1:
            raise UserError("evaluate.episodes and mixed_episodes must be >= 2, n_envs and latency_repeats >= 1")


class Actor(Protocol):
    """A policy that can also act on one observation per agent (what deployment costs) and count its size."""

    def act_single(self, obs: Mapping[str, np.ndarray]) -> dict[str, int]: ...

    def acting_params(self) -> int: ...


def latency_us(actor: Actor, observations: Mapping[str, np.ndarray], repeats: int) -> float:
    """Median microseconds per joint step at batch 1 on one CPU thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        n = min(len(o) for o in observations.values())
        samples = []
        for r in range(repeats + 10):
            i = r % n
            obs = {a: o[i] for a, o in observations.items()}
            start = time.perf_counter()
            actor.act_single(obs)
            if r >= 10:
                samples.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(samples) * 1e6)


def mixes(agents: Sequence[str]) -> list[tuple[str, ...]]:
    """Which agents act by the student: every proper non-empty subset for N <= 4, one-in and one-out above."""
    n = len(agents)
    if n <= 4:
        return [c for k in range(1, n) for c in itertools.combinations(agents, k)]
    one_in = [(a,) for a in agents]
    one_out = [tuple(b for b in agents if b != a) for a in agents]
    return one_in + one_out


def returns_block(roll: Rollouts, seed: int) -> dict[str, Any]:
    return {
        "team_return": mean_ci(roll.team, seed=seed),
        "per_agent_return": {a: float(r.mean()) for a, r in roll.per_agent.items()},
    }


def evaluate_all(
    factory: Callable[[], Any],
    teachers: JointPolicy,
    students: Mapping[str, JointPolicy],
    cfg: EvalConfig,
    *,
    cross_play: Mapping[str, Mapping[str, JointPolicy]] | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Evaluate teachers, the random policy and every student on the same seeds; return metrics.json's dict.

    ``cross_play`` maps other runs (e.g. other seeds) to their students: each student of the same name is then
    paired with ours in every mix (``cross_seed``), which exposes conventions that drifted between seeds."""
    cfg.validate()
    show = sys.stderr.isatty() if progress is None else progress
    spec = teachers.spec
    n_mix = len(mixes(spec.agents)) if cfg.mixed_teams else 0
    n_cross = sum(name in others for others in (cross_play or {}).values() for name in students)
    total = 2 + len(students) * (1 + n_mix) + n_cross * len(mixes(spec.agents))
    bar = tqdm(total=total, desc="evaluate", unit="policy", disable=not show, leave=False)

    def play(policy: JointPolicy, episodes: int, reference: JointPolicy | None = None) -> Rollouts:
        roll = run_episodes(
            factory,
            policy,
            episodes=episodes,
            seed=cfg.seed,
            n_envs=cfg.n_envs,
            rng=np.random.default_rng(cfg.seed),
            reference=reference,
        )
        bar.update(1)
        return roll

    teacher_roll = play(teachers, cfg.episodes)
    random_roll = play(RandomPolicy(spec), cfg.episodes)
    r_teacher, r_random = float(teacher_roll.team.mean()), float(random_roll.team.mean())
    obs_sample = teacher_roll.observations
    metrics: dict[str, Any] = {
        "teacher": {
            **returns_block(teacher_roll, cfg.seed),
            "normalized_return": 1.0,
            "params": _params(teachers),
            "latency_us_per_joint_step": _latency(teachers, obs_sample, cfg.latency_repeats),
        },
        "random": {**returns_block(random_roll, cfg.seed), "normalized_return": 0.0, "params": 0},
    }
    k = min(cfg.mixed_episodes, cfg.episodes)
    lo, hi = float(random_roll.team[:k].mean()), float(teacher_roll.team[:k].mean())

    def mix_with(base: JointPolicy, other: JointPolicy) -> dict[str, Any]:
        """Normalized return of every team where the agents in a mix act by ``other``, the rest by ``base``."""
        by_mix = {}
        for mix in mixes(spec.agents):
            team = play(MixedTeam(base, other, mix), k)
            by_mix["+".join(mix)] = normalized(float(team.team.mean()), lo, hi)
        return {"min_normalized_return": min(by_mix.values()), "by_mix": by_mix, "episodes": k}

    for name, student in students.items():
        roll = play(student, cfg.episodes, reference=teachers)
        entry = {
            **returns_block(roll, cfg.seed),
            "normalized_return": normalized(float(roll.team.mean()), r_random, r_teacher),
            **_coordination(roll, spec),
            "agreement_states": roll.acted,
            "params": _params(student),
            "latency_us_per_joint_step": _latency(student, obs_sample, cfg.latency_repeats),
        }
        if n_mix:
            entry["mixed_team"] = mix_with(teachers, student)
        for folder, others in (cross_play or {}).items():
            if name in others:  # students of another run (another seed) paired with this run's
                entry.setdefault("cross_seed", {})[folder] = mix_with(student, others[name])
        metrics[name] = entry
    bar.close()
    return metrics


def score_against(
    factory: Callable[[], Any],
    teacher: JointPolicy,
    students: Mapping[str, JointPolicy],
    cfg: EvalConfig,
    random_mean: float,
) -> dict[str, dict[str, Any]]:
    """Each student judged against another teacher team (several-teachers distillation): that team's return on
    the same seeds, the student's return normalized by it, and agreement and KL on the student's states."""
    rng = np.random.default_rng(cfg.seed)
    ref = run_episodes(factory, teacher, episodes=cfg.episodes, seed=cfg.seed, n_envs=cfg.n_envs, rng=rng)
    out = {}
    for name, student in students.items():
        roll = run_episodes(
            factory,
            student,
            episodes=cfg.episodes,
            seed=cfg.seed,
            n_envs=cfg.n_envs,
            rng=np.random.default_rng(cfg.seed),
            reference=teacher,
        )
        out[name] = {
            "teacher_team_return": mean_ci(ref.team, seed=cfg.seed),
            "normalized_return": normalized(float(roll.team.mean()), random_mean, float(ref.team.mean())),
            **_coordination(roll, teacher.spec),
        }
    return out


def _coordination(roll: Rollouts, spec: EnvSpec) -> dict[str, Any]:
    """Agreement for Discrete agents, action MSE in its place for Box agents (DESIGN's contract), and KL; each
    over the states where the agent acted (all of them in a parallel env where no agent leaves early)."""
    box = [a for a in spec.agents if isinstance(spec.head(a), DiagGaussian)]
    discrete = [a for a in spec.agents if a not in box]

    def per(total: Any, agent: str) -> float | None:  # None for an agent that never acted
        return total / roll.acted[agent] if roll.acted[agent] else None

    out: dict[str, Any] = {}
    if discrete:
        out["action_agreement"] = {a: per(roll.agree[a], a) for a in discrete}
        out["joint_action_agreement"] = roll.joint_agree / roll.scored_steps if roll.scored_steps else None
    if box:
        out["action_mse"] = {a: per(roll.sq_err[a], a) for a in box}
    out["kl_teacher_student"] = {a: per(roll.kl_sum[a], a) for a in spec.agents}
    return out


def _params(policy: object) -> int | None:
    fn = getattr(policy, "acting_params", None)
    return int(fn()) if fn is not None else None


def _latency(policy: object, obs: Mapping[str, np.ndarray], repeats: int) -> float | None:
    return latency_us(policy, obs, repeats) if hasattr(policy, "act_single") else None  # type: ignore[arg-type]
