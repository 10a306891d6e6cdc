"""The one protocol that joins the lab: a joint policy maps per-agent observations to per-agent action logits.

Teachers, students, the random policy and mixed teams all implement it, so data collection, evaluation and
reports never ask who is acting. Observations arrive batched (copy axis first); distribution parameters come
back as ``(batch, size)`` float tensors, one per agent: logits for Discrete actions, ``[mean, log_std]`` for Box
actions (see ``distributions``). The method keeps the name ``logits`` for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from marl_distill.errors import UserError
from marl_distill.policy.distributions import apply_mask
from marl_distill.policy.memory import State, is_recurrent, step_of
from marl_distill.policy.spec import EnvSpec


@runtime_checkable
class JointPolicy(Protocol):
    """What every acting team provides."""

    spec: EnvSpec
    deterministic: bool | Mapping[str, bool]
    """Act by argmax (True) or sample from the logits (False); per agent where the team mixes both (a random
    agent among teachers)."""

    def logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Action logits for each agent present in ``obs`` (a batch of observations per agent)."""
        ...


def select_actions(
    policy: JointPolicy,
    obs: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    deterministic: bool | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """Actions for every agent and the (masked) logits they came from: argmax or a sample, as ``deterministic``
    says (default: as the policy says). Agents in ``masks`` can only take the actions their mask allows."""
    logits = masked_logits(policy.logits(obs), masks)
    actions = {
        agent: policy.spec.head(agent).act(lg, greedy(policy, agent) if deterministic is None else deterministic, rng)
        for agent, lg in logits.items()
    }
    return actions, logits


def greedy(policy: JointPolicy, agent: str) -> bool:
    """Does ``policy`` act by argmax for ``agent``?"""
    d = policy.deterministic
    return bool(d[agent]) if isinstance(d, Mapping) else bool(d)


def masked_logits(
    logits: Mapping[str, torch.Tensor], masks: Mapping[str, np.ndarray] | None
) -> dict[str, torch.Tensor]:
    """Every masked agent's illegal actions pushed out of reach (see ``distributions.apply_mask``)."""
    masks = masks or {}
    return {a: apply_mask(lg, masks.get(a)) for a, lg in logits.items()}


class RandomPolicy:
    """Uniform random actions (a box-wide Gaussian for Box actions): the floor of normalized return."""

    deterministic = False

    def __init__(self, spec: EnvSpec) -> None:
        self.spec = spec

    def logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {a: self.spec.head(a).uniform(len(o)) for a, o in obs.items()}


class MixedTeam:
    """Agents in ``students`` act by ``student``, the rest by ``teacher``: do the two still coordinate?

    Recurrent when either side is: each agent carries the state of the policy it acts by (``policy.memory``)."""

    def __init__(self, teacher: JointPolicy, student: JointPolicy, students: Sequence[str]) -> None:
        self.spec = teacher.spec
        self.teacher = teacher
        self.student = student
        self.students = frozenset(students)
        # each agent acts as its own policy does: a random agent among greedy teachers still samples
        per_agent = {a: greedy(student if a in self.students else teacher, a) for a in self.spec.agents}
        self.deterministic = per_agent if len(set(per_agent.values())) > 1 else next(iter(per_agent.values()))
        self.recurrent = is_recurrent(student) or is_recurrent(teacher)

    def logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        from_student = self.student.logits({a: o for a, o in obs.items() if a in self.students})
        from_teacher = self.teacher.logits({a: o for a, o in obs.items() if a not in self.students})
        return {a: (from_student[a] if a in self.students else from_teacher[a]) for a in self.spec.agents}

    def initial_state(self, n: int) -> State:
        out = {}
        for side, mine in ((self.student, True), (self.teacher, False)):
            if is_recurrent(side):
                out.update({a: s for a, s in side.initial_state(n).items() if (a in self.students) == mine})
        return out

    def step(self, obs: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]) -> tuple[dict, State]:
        from_student, s_next = step_of(self.student, {a: o for a, o in obs.items() if a in self.students}, state)
        from_teacher, t_next = step_of(self.teacher, {a: o for a, o in obs.items() if a not in self.students}, state)
        logits = {a: (from_student[a] if a in self.students else from_teacher[a]) for a in obs}
        return logits, {**s_next, **t_next}


class TeacherEnsemble:
    """Several teacher teams (e.g. trained with different seeds) as one.

    By default the members' distributions are averaged per agent (an equal-weight mixture): what kl and ce match.
    With ``raw`` the members' own outputs are averaged instead (Q-values for DQN, logits for PPO, as one team's mse
    fits them), handed back in logit units that ``logit_scale`` turns into raw ones: what mse regresses on, as
    Rusu et al.'s MSE is on raw Q-values and the log of a mixture of softmax(Q/tau) is not. ``for_loss`` picks the
    view a loss needs.
    Distilling from it gives one student that has to serve every member's convention at once.
    """

    def __init__(self, members: Sequence[JointPolicy], *, raw: bool = False) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if any(is_recurrent(m) for m in members):
            raise UserError("an ensemble of recurrent teams is not supported yet: distill from one run's teachers")
        self.members = list(members)
        self.spec = members[0].spec
        self.deterministic = members[0].deterministic
        self.raw = raw

    def for_loss(self, loss: str) -> TeacherEnsemble:
        """The same members seen as ``loss``'s targets: mean raw outputs for mse, the mixture for kl and ce."""
        return TeacherEnsemble(self.members, raw=loss == "mse")

    def logit_scale(self, agent: str) -> float:
        """Factor from ``logits`` back to the members' raw outputs (tau for DQN members, else 1).

        Raw outputs in different units (DQN and PPO members, or DQN members with different tau) have no mean.
        """
        scales = {_logit_scale(m, agent) for m in self.members}
        if len(scales) > 1:
            raise UserError(
                f"{agent}'s teachers give outputs in different units (logit scales {sorted(scales)}); mse over an "
                "ensemble needs one algorithm and one dqn_temperature per agent, or use loss kl or ce"
            )
        return scales.pop()

    def logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        each = [m.logits(obs) for m in self.members]
        if not self.raw:
            return {a: self.spec.head(a).average([e[a] for e in each]) for a in obs}
        out = {}
        for a in obs:
            self.logit_scale(a)  # one scale s for every member: mean(raw) / s is the mean of the logits
            out[a] = torch.stack([e[a] for e in each]).mean(dim=0)
        return out


def _logit_scale(policy: JointPolicy, agent: str) -> float:
    scale = getattr(policy, "logit_scale", None)
    return float(scale(agent)) if scale is not None else 1.0
