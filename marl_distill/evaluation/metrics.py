"""metrics.json: returns, normalized returns, coordination with the teachers, size and speed of every policy.

Every policy of a run plays the same episode seeds (from the run's seed tree), so per-episode differences are
paired; a normalized figure is null unless the teachers beat random significantly on those episodes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from marl_distill.env.joint_vec_env import make_parallel
from marl_distill.env.registry import declared_cooperative
from marl_distill.evaluation.config import EvalConfig
from marl_distill.evaluation.rollout import Rollouts, run_episodes
from marl_distill.evaluation.seats import per_seat, shared_goal
from marl_distill.evaluation.speed import cost_metrics, team_costs
from marl_distill.evaluation.stats import METHODS, excludes_zero, mean_ci, normalized, paired_diff
from marl_distill.policy.distributions import DiagGaussian
from marl_distill.policy.joint import JointPolicy, MixedTeam, RandomPolicy
from marl_distill.policy.spec import EnvSpec
from marl_distill.utils import seeding
from marl_distill.utils.progress import progress_bar
from marl_distill.utils.seeding import POLICY_RNG, RANDOM_POLICY
from marl_distill.utils.warn import warn_user
from marl_distill.utils.workers import run_jobs

NOT_SHARED = (
    "the agents do not share one goal, so their summed return is not scored; each seat is, in per_seat (that "
    "agent's return against the teachers in the other seats)"
)
ABOVE_TEACHER = 1.05
"""A student normalized above this beats its teachers by more than noise usually explains: flagged for a look."""


def mixes(agents: Sequence[str]) -> list[tuple[str, ...]]:
    """Which agents act by the student: every proper non-empty subset for N <= 4, one-in and one-out above."""
    n = len(agents)
    if n <= 4:
        return [c for k in range(1, n) for c in itertools.combinations(agents, k)]
    one_in = [(a,) for a in agents]
    one_out = [tuple(b for b in agents if b != a) for a in agents]
    return one_in + one_out


def returns_block(roll: Rollouts, seed: int) -> dict[str, Any]:
    """Team return (mean, percentile bootstrap over episodes, distinct values) and per-agent means."""
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
    cross_teachers: Mapping[str, JointPolicy] | None = None,
    progress: bool | None = None,
    workers: int = 1,
    cooperative: bool | None = None,
) -> dict[str, Any]:
    """Evaluate teachers, the random policy and every student on the same episode seeds; return metrics.json's
    dict (with ``_meta`` holding the interval methods and the normalization guard). Plays run side by side on
    ``workers`` forked processes (the same rollouts as one process); size and speed are measured afterwards, alone.

    ``cross_play`` maps other runs (e.g. other seeds) to their students: each student of the same name is then
    paired with ours in every mix (``cross_seed``), which exposes conventions that drifted between seeds.
    ``cross_teachers`` maps the same runs to their teachers, played with ours in every mix (the teacher's
    ``cross_seed``): drift the teachers already had is then told apart from what distillation lost.

    ``cooperative``: whether the agents share one goal (None: as the env declares in ``metadata["cooperative"]``,
    else decided from the rewards, ``seats.shared_goal``).
    Where they do not, the team sum is not scored (normalized returns null) and every policy gets ``per_seat``
    figures instead, from extra plays in which only one seat changes hands."""
    cfg.validate()
    spec = teachers.spec
    episode_seeds = episode_seeds_of(cfg)
    k = min(cfg.mixed_episodes, cfg.episodes)
    onnx, int8, skipped = _exports(factory, teachers, students, cfg)
    acting = {**students, **{f"{n}-int8": t for n, t in int8.items()}}
    if cooperative is None:
        env = make_parallel(factory)
        cooperative = declared_cooperative(None, env)
        env.close()
    team_mixes = cfg.mixed_teams and cooperative is not False  # mixes of a team with no shared goal mean nothing

    # Every play first (each with a fresh generator, so what one policy draws never depends on which played
    # before or beside it), side by side on ``workers`` processes; then the metrics from their rollouts.
    plays: dict[tuple, tuple[JointPolicy, int, JointPolicy | None, tuple[int, ...]]] = {
        ("teacher",): (teachers, cfg.episodes, None, (POLICY_RNG,)),
        ("random",): (RandomPolicy(spec), cfg.episodes, None, (RANDOM_POLICY,)),
    }

    def mixed(key: tuple, base: JointPolicy, other: JointPolicy) -> None:
        for mix in mixes(spec.agents):
            plays[(*key, mix)] = (MixedTeam(base, other, mix), k, None, (POLICY_RNG,))

    for folder, other in (cross_teachers or {}).items():  # another run's teachers beside this run's
        mixed(("teacher", "cross", folder), teachers, other)
    for name, student in acting.items():
        plays[(name,)] = (student, cfg.episodes, teachers, (POLICY_RNG,))
        if team_mixes and name in students:
            mixed((name, "mixed"), teachers, student)
        for folder, others in (cross_play or {}).items():
            if name in others:  # students of another run (another seed) paired with this run's
                mixed((name, "cross", folder), student, others[name])

    def play(policy: JointPolicy, episodes: int, reference: JointPolicy | None, role: tuple[int, ...]) -> Rollouts:
        return run_episodes(
            factory,
            policy,
            seeds=episode_seeds[:episodes],
            n_envs=cfg.n_envs,
            rng=seeding.rng(cfg.seed, seeding.EVALUATE, *role),
            reference=reference,
        )

    bar = progress_bar(total=len(plays), desc="evaluate", unit="play", progress=progress)
    rolls = dict(zip(plays, run_jobs([partial(play, *job) for job in plays.values()], workers, bar.update)))
    teacher_roll, random_roll = rolls[("teacher",)], rolls[("random",)]
    goal = shared_goal(cooperative, [teacher_roll, random_roll])
    if not goal["value"]:  # one seat changes hands at a time: random's (its own stream per seat) and each student's
        seats = {("seat", "random", a): (MixedTeam(teachers, RandomPolicy(spec), (a,)), cfg.episodes, None,
                                         (RANDOM_POLICY, 1 + i)) for i, a in enumerate(spec.agents)}  # fmt: skip
        seats.update({("seat", n, a): (MixedTeam(teachers, s, (a,)), cfg.episodes, None, (POLICY_RNG,))
                      for n, s in students.items() for a in spec.agents})  # fmt: skip
        bar.total += len(seats)
        rolls.update(zip(seats, run_jobs([partial(play, *job) for job in seats.values()], workers, bar.update)))
    r_teacher, r_random = float(teacher_roll.team.mean()), float(random_roll.team.mean())
    gap = gap_over_random(teacher_roll.team, random_roll.team, warn=goal["value"])

    def norm(value: float, lo: float = r_random, hi: float = r_teacher) -> float | None:
        return normalized(value, lo, hi) if gap["significant"] and goal["value"] else None

    obs_sample = teacher_roll.observations
    metrics: dict[str, Any] = {
        "teacher": {
            **returns_block(teacher_roll, cfg.seed),
            "normalized_return": norm(r_teacher),
            "gap_over_random": gap,
        },
        "random": {
            **returns_block(random_roll, cfg.seed),
            "normalized_return": norm(r_random),
            **cost_metrics(RandomPolicy(spec), obs_sample, repeats=cfg.latency_repeats),  # zero size
        },
    }
    lo_k, hi_k = float(random_roll.team[:k].mean()), float(teacher_roll.team[:k].mean())

    def mix_with(key: tuple, base_team: np.ndarray, other_team: np.ndarray | None = None) -> dict[str, Any]:
        """Every team of ``key``'s mixes (the agents in a mix act by the other policy, the rest by the base):
        normalized return, team return with its CI, and the paired difference to the base alone (``base_team``)
        on the same seeds; beside them both unmixed teams (``base_team``, ``other_team``) on those episodes."""
        by_mix, returns, diffs = {}, {}, {}
        for mix in mixes(spec.agents):
            team = rolls[(*key, mix)].team
            name = "+".join(mix)
            by_mix[name] = norm(float(team.mean()), lo_k, hi_k)
            returns[name] = mean_ci(team, seed=cfg.seed)
            diffs[name] = paired_diff(team, base_team[:k])
        worst = min(returns, key=lambda m: returns[m]["mean"])
        return {
            "min_normalized_return": by_mix[worst],
            "worst_mix": worst,
            "by_mix": by_mix,
            "team_return_by_mix": returns,
            "paired_diff_by_mix": diffs,
            "episodes": k,
            "unmixed_team_return": {
                "base": mean_ci(base_team[:k], seed=cfg.seed),
                **({"other": mean_ci(other_team[:k], seed=cfg.seed)} if other_team is not None else {}),
            },
        }

    for folder in cross_teachers or {}:
        cross = mix_with(("teacher", "cross", folder), teacher_roll.team)
        metrics["teacher"].setdefault("cross_seed", {})[folder] = cross
    for name in acting:
        roll = rolls[(name,)]
        entry = {
            **returns_block(roll, cfg.seed),
            "normalized_return": norm(float(roll.team.mean())),
            "paired_diff": paired_diff(roll.team, teacher_roll.team),
            **_coordination(roll, spec),
            "agreement_states": roll.acted,
        }
        above = entry["normalized_return"] is not None and entry["normalized_return"] > ABOVE_TEACHER
        entry["flags"] = ["normalized_above_1_05"] if above else []
        if team_mixes and name in students:
            entry["mixed_team"] = mix_with((name, "mixed"), teacher_roll.team, roll.team)
        for folder, others in (cross_play or {}).items():
            if name in others:
                entry.setdefault("cross_seed", {})[folder] = mix_with((name, "cross", folder), roll.team)
        metrics[name] = entry
    costs = team_costs(
        {"teacher": teachers, **acting},
        obs_sample,
        repeats=cfg.latency_repeats,
        rounds=cfg.latency_rounds,
        onnx=onnx,
    )
    for name, cost in costs.items():
        metrics[name].update(cost)
    if not goal["value"]:
        pick = {n: {a: rolls[("seat", n, a)] for a in spec.agents} for n in students}
        random_in = {a: rolls[("seat", "random", a)] for a in spec.agents}
        for name, block in per_seat(spec.agents, teacher_roll, random_in, pick, cfg.seed).items():
            metrics[name]["per_seat"] = block
    bar.close()
    metrics["_meta"] = {
        "eval_seed": cfg.seed,
        "episode_seeds": "seeding.int_seeds(eval_seed, EVALUATE, EPISODES, n=episodes); mixes use the first ones",
        "intervals": dict(METHODS),
        "shared_goal": goal,
        "normalized_return": {
            "defined": gap["significant"] and goal["value"],
            "reason": (None if gap["significant"] else null_reason(gap)) if goal["value"] else NOT_SHARED,
        },
        **({"onnx_skipped": skipped} if skipped else {}),
        **({"onnx_not_exported": why} if (why := onnx_missing(cfg)) else {}),
    }
    return metrics


def _exports(
    factory: Callable[[], Any], teachers: JointPolicy, students: Mapping[str, JointPolicy], cfg: EvalConfig
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """fp32 graphs of every team (timed beside their own runtimes), int8 graphs when asked, and what was skipped
    (by policy); nothing when ONNX is off, or when its extra is missing (``onnx_not_exported`` says why)."""
    from marl_distill.compress import export_available, require_export

    if cfg.int8:
        require_export("evaluate.int8")
    if not (cfg.onnx or cfg.int8) or not export_available():
        return {}, {}, {}
    from marl_distill.compress.export import onnx_teams

    fp32, int8, skipped = onnx_teams(factory, {"teacher": teachers, **students}, int8=cfg.int8, seed=cfg.seed)
    return (fp32 if cfg.onnx else {}), int8, skipped


def onnx_missing(cfg: EvalConfig) -> str | None:
    """Why ``evaluate.onnx`` exported nothing: its extra is missing (None when ONNX is off or available)."""
    from marl_distill.compress import EXTRA_HINT, export_missing

    missing = export_missing() if cfg.onnx else []
    return f"{' and '.join(missing)} not installed: {EXTRA_HINT}" if missing else None


def episode_seeds_of(cfg: EvalConfig) -> list[int]:
    """The reset seeds every policy of a run plays (teachers, random, students; mixes take a prefix)."""
    return seeding.int_seeds(cfg.seed, seeding.EVALUATE, seeding.EPISODES, n=cfg.episodes)


def gap_over_random(teacher: np.ndarray, random: np.ndarray, *, warn: bool = True) -> dict[str, Any]:
    """Teachers − random per episode on the same seeds, and whether it is significant: normalized returns exist
    only then (a one-line warning says why otherwise, with ``warn``)."""
    gap = paired_diff(teacher, random)
    gap["significant"] = excludes_zero(gap)
    if warn and not gap["significant"]:
        warn_user(f"normalized return is null: {null_reason(gap)}")
    return gap


def null_reason(gap: Mapping[str, Any]) -> str:
    """Why normalized return is null: the teacher-random gap, paired on the same episodes, is not above 0."""
    lo, hi = gap["ci95"]
    ci = "undefined" if lo is None else f"[{lo:.3g}, {hi:.3g}]"
    where = "significantly below" if hi is not None and hi < 0 else "not significantly above"
    return (
        f"the teachers' team return is {where} random's on the same {gap['episodes']} episodes "
        f"(paired gap {gap['mean']:.3g}, 95% CI {ci})"
    )


def score_against(
    factory: Callable[[], Any],
    teacher: JointPolicy,
    students: Mapping[str, JointPolicy],
    cfg: EvalConfig,
    *,
    cooperative: bool = True,
) -> dict[str, dict[str, Any]]:
    """Each student judged against another teacher team (several-teachers distillation): that team's return on
    the same seeds, the student's return normalized by it (null unless that team is significantly above the
    random policy, paired on the same episode seeds, and the agents share one goal), the paired difference, and
    agreement and KL on the student's states."""
    seeds = episode_seeds_of(cfg)

    def play(policy: JointPolicy, reference: JointPolicy | None = None, role: int = POLICY_RNG) -> Rollouts:
        rng = seeding.rng(cfg.seed, seeding.EVALUATE, role)
        return run_episodes(factory, policy, seeds=seeds, n_envs=cfg.n_envs, rng=rng, reference=reference)

    ref = play(teacher)
    random = play(RandomPolicy(teacher.spec), role=RANDOM_POLICY).team  # the same draws as evaluate_all's
    significant = gap_over_random(ref.team, random, warn=cooperative)["significant"] and cooperative
    random_mean = float(np.mean(random))
    out = {}
    for name, student in students.items():
        roll = play(student, reference=teacher)
        value = normalized(float(roll.team.mean()), random_mean, float(ref.team.mean())) if significant else None
        out[name] = {
            "teacher_team_return": mean_ci(ref.team, seed=cfg.seed),
            "normalized_return": value,
            "paired_diff": paired_diff(roll.team, ref.team),
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
