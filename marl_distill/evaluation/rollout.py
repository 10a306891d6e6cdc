"""Episodes of any joint policy on fixed seeds, with the teachers' view of every state it visits.

Episode ``k`` starts from ``env.reset(seed=seeds[k])``: evaluation hands every policy of a run the same list (from
the run's seed tree, ``seeding.int_seeds(run_seed, EVALUATE, EPISODES)``), so teachers, students, random and mixed
teams are compared on the same starts and per-episode differences can be paired. When a ``reference`` (the
teachers) is given, it labels the visited states, which gives action agreement and KL(teacher || student) on the
*student's* state distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from marl_distill.env.vector_world import open_joint_vec_env
from marl_distill.policy.distributions import DiagGaussian
from marl_distill.policy.joint import JointPolicy, masked_logits, select_actions
from marl_distill.policy.memory import Carried
from marl_distill.policy.spec import EnvSpec


@dataclass
class Rollouts:
    """Per-episode returns plus agreement counts against the reference."""

    per_agent: dict[str, np.ndarray]
    """Episode return per agent, one entry per episode, in seed order."""
    steps: int = 0
    """Joint steps played (summed over episodes)."""
    acted: dict[str, int] = field(default_factory=dict)
    """Per agent: steps on which it acted (its turn, still in the episode); agreement and KL are over these."""
    scored_steps: int = 0
    """Joint steps on which at least one Discrete agent acted (the joint-agreement denominator)."""
    agree: dict[str, int] = field(default_factory=dict)
    """Per Discrete agent: acting steps where argmax(policy) == argmax(reference)."""
    sq_err: dict[str, float] = field(default_factory=dict)
    """Per Box agent: summed squared difference of the deterministic actions (policy vs reference)."""
    joint_agree: int = 0
    """Steps where every acting Discrete agent agreed with the reference."""
    kl_sum: dict[str, float] = field(default_factory=dict)
    """Per agent: summed KL(reference || policy) over its acting states."""
    observations: dict[str, np.ndarray] = field(default_factory=dict)
    """A sample of visited observations per agent (first steps), reused to time batch-1 acting."""
    seeds: list[int] = field(default_factory=list)
    """The reset seed of every episode, in order: two rollouts pair episode by episode when these match."""

    @property
    def team(self) -> np.ndarray:
        return np.sum(list(self.per_agent.values()), axis=0)


def run_episodes(
    factory: Callable[[], Any],
    policy: JointPolicy,
    *,
    seeds: Sequence[int] | None = None,
    episodes: int | None = None,
    seed: int = 0,
    n_envs: int,
    rng: np.random.Generator,
    reference: JointPolicy | None = None,
    keep_obs: int = 256,
) -> Rollouts:
    """Play one episode per reset seed in ``seeds`` (the first ``episodes`` of them when both are given),
    ``n_envs`` at a time. Without ``seeds``, episode k uses ``seed + k`` (a shorthand for tests and scripts;
    evaluation passes the run's tree seeds). Recurrent policies and references start each episode from a zero
    state and carry it through the episode (``policy.memory``)."""
    if seeds is None:
        if episodes is None:
            raise ValueError("run_episodes needs seeds or episodes")
        seeds = [seed + k for k in range(episodes)]
    elif episodes is not None:
        if episodes > len(seeds):
            raise ValueError(f"{episodes} episodes asked for but only {len(seeds)} seeds given")
        seeds = seeds[:episodes]
    seeds = [int(s) for s in seeds]
    episodes = len(seeds)
    if episodes < 1:
        raise ValueError("run_episodes needs at least one episode")
    venv = open_joint_vec_env(factory, min(n_envs, episodes), autoreset=False)
    agents = venv.agents
    policy = Carried(policy, venv.n_envs)
    reference = Carried(reference, venv.n_envs) if reference is not None else None
    out = Rollouts(
        {a: np.zeros(episodes) for a in agents},
        acted=dict.fromkeys(agents, 0),
        agree=dict.fromkeys(agents, 0),
        sq_err=dict.fromkeys(agents, 0.0),
        kl_sum=dict.fromkeys(agents, 0.0),
        seeds=seeds,
    )
    kept: dict[str, list[np.ndarray]] = {a: [] for a in agents}
    for first in range(0, episodes, venv.n_envs):
        ids = list(range(first, min(first + venv.n_envs, episodes)))
        obs = venv.reset([seeds[k] for k in ids] + [None] * (venv.n_envs - len(ids)))
        venv.finished[len(ids) :] = True
        for party in (policy, reference):
            if party is not None:
                party.reset()
        while not venv.finished.all():
            live = np.flatnonzero(~venv.finished)
            policy.rows = live
            if reference is not None:
                reference.rows = live
            live_obs = {a: o[live] for a, o in obs.items()}
            live_masks = {a: m[live] for a, m in venv.masks.items()}
            acting = {a: m[live] for a, m in venv.acting.items()}
            actions_live, logits = select_actions(policy, live_obs, rng, masks=live_masks)
            for a in agents:
                out.acted[a] += int(acting[a].sum())
            if reference is not None:
                ref_logits = masked_logits(reference.logits(live_obs), live_masks)
                _score(out, logits, ref_logits, acting, reference.spec)
            for a in agents:
                if sum(len(k) for k in kept[a]) < keep_obs:
                    kept[a].append(live_obs[a])
            actions = {}
            for a in agents:
                actions[a] = np.zeros((venv.n_envs, *actions_live[a].shape[1:]), dtype=actions_live[a].dtype)
                actions[a][live] = actions_live[a]
            step = venv.step(actions)
            for party in (policy, reference):
                if party is not None:
                    party.advance(acting)
            for a in agents:
                out.per_agent[a][[first + i for i in live]] += step.rewards[a][live]
            out.steps += len(live)
            obs = step.obs
    venv.close()
    out.observations = {a: np.concatenate(k)[:keep_obs] for a, k in kept.items()}
    return out


def _score(
    out: Rollouts,
    logits: dict[str, torch.Tensor],
    ref_logits: dict[str, torch.Tensor],
    acting: dict[str, np.ndarray],
    spec: EnvSpec,
) -> None:
    """Agreement, KL and action error of ``logits`` against the reference's, on legal actions, counted only
    where the agent acts (a waiting or departed agent's forced action says nothing)."""
    all_agree, any_acting = None, None
    for a, lg in logits.items():
        head, act = spec.head(a), torch.as_tensor(acting[a])
        out.kl_sum[a] += float(head.kl(ref_logits[a], lg)[act].sum())
        if isinstance(head, DiagGaussian):
            out.sq_err[a] += float(head.action_mse(ref_logits[a], lg)[act].sum())
            continue
        same = head.agree(ref_logits[a], lg).numpy() | ~acting[a]
        out.agree[a] += int((same & acting[a]).sum())
        all_agree = same if all_agree is None else all_agree & same
        any_acting = acting[a] if any_acting is None else any_acting | acting[a]
    if all_agree is not None and any_acting is not None:
        out.joint_agree += int((all_agree & any_acting).sum())
        out.scored_steps += int(any_acting.sum())
