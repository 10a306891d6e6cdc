"""Distillation data: states visited by an acting team, always labelled with the *teachers'* logits.

Who acts is the sampling scheme (Czarnecki et al. 2019): the teachers (teacher-driven), the student team
(student-driven, the multi-agent form of DAgger, Ross et al. 2011), or a per-step mixture where each env copy's
joint step is taken by the teachers with probability beta. Labels never come from the actor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from marl_distill.env.vector_world import open_joint_vec_env
from marl_distill.policy.joint import JointPolicy, masked_logits, select_actions
from marl_distill.policy.memory import Carried


@dataclass
class Dataset:
    """Per-agent observations, teacher logits, legal actions (masked agents) and whether the agent acted, all
    row-aligned. Rows where an agent did not act (another's turn, or it had left) are kept for alignment and
    skipped when that agent's student is fitted or scored."""

    obs: dict[str, np.ndarray]
    teacher_logits: dict[str, torch.Tensor]
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    """Legal actions (bool rows) of the agents whose env masks actions; students are fitted on those only."""
    acting: dict[str, np.ndarray] = field(default_factory=dict)
    """Per agent: did it act in this row (absent: always)."""
    episode: np.ndarray | None = None
    """Per row: the episode it came from (one id per env copy and episode), so held-out sets take whole episodes."""
    teacher_obs: dict[str, np.ndarray] = field(default_factory=dict)
    """Where teachers see another view than students (``views``): the teachers' view of each row, which the labels
    came from (``obs`` then holds the students' view; empty when both see the same)."""
    state: dict[str, np.ndarray] = field(default_factory=dict)
    """A recurrent student's hidden state entering each row (zero at an episode's first step), where sequences
    start their burn-in (``sequences``); empty for memoryless students."""

    FIELDS = ("obs", "teacher_logits", "masks", "acting", "teacher_obs", "state")
    """The per-agent fields (dicts keyed by agent)."""

    def __len__(self) -> int:
        return len(next(iter(self.obs.values())))

    def __setstate__(self, saved: dict[str, Any]) -> None:
        self.__dict__.update({"state": {}, **saved})  # a checkpoint written before ``state`` existed

    def take(self, idx: np.ndarray) -> Dataset:
        per_agent = {f: {a: v[idx] for a, v in getattr(self, f).items()} for f in self.FIELDS}
        return Dataset(**per_agent, episode=None if self.episode is None else self.episode[idx])

    def concat(self, other: Dataset) -> Dataset:
        def cat(x: Any, y: Any) -> Any:
            return torch.cat([x, y]) if isinstance(x, torch.Tensor) else np.concatenate([x, y])

        per_agent = {f: {a: cat(v, getattr(other, f)[a]) for a, v in getattr(self, f).items()} for f in self.FIELDS}
        both = self.episode is not None and other.episode is not None
        return Dataset(**per_agent, episode=cat(self.episode, other.episode) if both else None)

    def put(self, slot: int, other: Dataset, row: int) -> None:
        """Overwrite row ``slot`` with ``other``'s row ``row``."""
        for f in self.FIELDS:
            mine, theirs = getattr(self, f), getattr(other, f)
            for a in mine:
                mine[a][slot] = theirs[a][row]
        if self.episode is not None and other.episode is not None:
            self.episode[slot] = other.episode[row]

    def split(self, fraction: float, rng: np.random.Generator) -> tuple[Dataset, Dataset]:
        """(train, held-out) with whole episodes on each side, so neighbouring steps of one episode never score
        the student on what it was fitted to.

        Episodes are drawn in ``rng``'s order until the next one would take the held-out rows past ``fraction`` of
        all rows; at least one episode goes to each side. Needs episode ids and at least two episodes.
        """
        if self.episode is None:
            raise ValueError("split needs episode ids (collect records them)")
        ids, sizes = np.unique(self.episode, return_counts=True)
        if len(ids) < 2:
            raise ValueError(f"cannot hold out whole episodes: the data holds {len(ids)} episode")
        order = rng.permutation(len(ids))
        n_held = int(np.searchsorted(np.cumsum(sizes[order]), fraction * len(self), side="right"))
        held = np.isin(self.episode, ids[order[: min(max(n_held, 1), len(ids) - 1)]])
        return self.take(np.flatnonzero(~held)), self.take(np.flatnonzero(held))


class Buffer:
    """Aggregated distillation data with a hard cap: reservoir sampling keeps a uniform sample of everything
    seen, so memory stays bounded however many DAgger iterations run.

    With ``whole_episodes`` (recurrent students, which learn from sequences) the sample is of episodes, not rows:
    every episode draws a uniform key when it arrives and the episodes with the largest keys that fit in
    ``capacity`` rows are kept, each whole and in time order (a uniform sample of episodes; at least one is kept)."""

    def __init__(self, capacity: int, rng: np.random.Generator, *, whole_episodes: bool = False) -> None:
        self.capacity = capacity
        self.rng = rng
        self.data: Dataset | None = None
        self.seen = 0
        self.whole_episodes = whole_episodes
        self.keys: dict[int, float] = {}
        """Per episode id kept (whole-episode mode): its random key."""

    def add(self, new: Dataset) -> None:
        if getattr(self, "whole_episodes", False):  # absent from checkpoints written before it existed
            self._add_episodes(new)
            return
        for start in range(0, len(new), 4096):
            self._add(new.take(np.arange(start, min(start + 4096, len(new)))))

    def _add(self, new: Dataset) -> None:
        if self.data is None:
            room = min(self.capacity, len(new))
            self.data, self.seen = new.take(np.arange(room)), room
            new = new.take(np.arange(room, len(new)))
        if len(self.data) < self.capacity and len(new):
            room = min(self.capacity - len(self.data), len(new))
            self.data = self.data.concat(new.take(np.arange(room)))
            self.seen += room
            new = new.take(np.arange(room, len(new)))
        for row in range(len(new)):
            self.seen += 1
            slot = int(self.rng.integers(self.seen))
            if slot < self.capacity:
                self.data.put(slot, new, row)

    def _add_episodes(self, new: Dataset) -> None:
        assert new.episode is not None
        ids, first = np.unique(new.episode, return_index=True)
        self.keys.update(zip(ids[np.argsort(first)].tolist(), self.rng.random(len(ids)).tolist()))
        self.seen += len(new)
        data = new if self.data is None else self.data.concat(new)
        assert data.episode is not None
        if len(data) > self.capacity:
            ids, sizes = np.unique(data.episode, return_counts=True)
            order = np.argsort([-self.keys[int(i)] for i in ids], kind="stable")
            fits = np.cumsum(sizes[order]) <= self.capacity
            fits[0] = True
            keep = ids[order[fits]]
            self.keys = {int(i): self.keys[int(i)] for i in keep}
            data = data.take(np.flatnonzero(np.isin(data.episode, keep)))
        self.data = data


@dataclass
class Collected:
    data: Dataset
    teacher_fraction: float
    """Share of the collected rows (env-copy steps) the teachers acted in (1 teacher-driven, 0 student-driven)."""


def collect(
    factory: Callable[[], Any],
    teachers: JointPolicy,
    *,
    labeller: JointPolicy | None = None,
    samples: int,
    n_envs: int,
    seed: int,
    rng: np.random.Generator,
    student: JointPolicy | None = None,
    beta: float = 1.0,
    sample_actions: bool = True,
    first_episode: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> Collected:
    """Visit exactly ``samples`` states per agent; label every one with the teachers' logits (or with ``labeller``,
    another view of the same teachers, while ``teachers`` still act: e.g. an ensemble acts by its mixture and mse
    regresses on its mean raw outputs, so the loss does not change which states are visited).

    Each env copy's joint step is taken by the teachers with probability ``beta`` and by ``student`` otherwise
    (``beta`` is 1 when there is no student). ``sample_actions`` makes the teachers sample from their
    distribution (wider state coverage); the student acts by argmax, as it will when deployed.

    Recurrent parties (``policy.memory``) carry their states through every step: teachers label, and a recurrent
    student steps its state even where the teachers act, so each row records the state the student enters it with
    (``Dataset.state``, the start of a sequence's burn-in).

    Copy ``i``'s ``j``-th episode gets the id ``first_episode + j * n_envs + i``; copy ``i`` resets from
    ``seed + i`` (mod 2^32).
    """
    if student is None:
        beta = 1.0
    venv = open_joint_vec_env(factory, n_envs, autoreset=True)
    obs = venv.reset([(seed + i) % 2**32 for i in range(n_envs)])  # 32 bits, as legacy numpy seeding wants
    teachers = Carried(teachers, n_envs)
    labeller = Carried(labeller, n_envs) if labeller is not None else None
    student = Carried(student, n_envs) if student is not None else None
    carried = [p for p in (teachers, labeller, student) if p is not None]
    states: dict[str, list[np.ndarray]] = {a: [] for a in venv.agents} if student and student.recurrent else {}
    rows: dict[str, list[np.ndarray]] = {a: [] for a in venv.agents}
    labels: dict[str, list[torch.Tensor]] = {a: [] for a in venv.agents}
    legal: dict[str, list[np.ndarray]] = {a: [] for a in venv.spec.masked}
    acted: dict[str, list[np.ndarray]] = {a: [] for a in venv.agents}
    episodes: list[np.ndarray] = []
    by_teacher: list[np.ndarray] = []
    counter = np.zeros(n_envs, dtype=np.int64)
    n_steps = -(-samples // n_envs)
    for _ in range(n_steps):
        masks, acting = venv.masks, venv.acting
        actions, teacher_logits = select_actions(teachers, obs, rng, deterministic=not sample_actions, masks=masks)
        if labeller is not None:  # targets in another view of the same teachers (an ensemble's mean raw outputs)
            teacher_logits = masked_logits(labeller.logits(obs), masks)
        teacher_acts = rng.random(n_envs) < beta
        if states and student is not None:
            for a, h in student.current().items():
                states[a].append(h)
        if student is not None and (student.recurrent or not teacher_acts.all()):
            student_actions, _ = select_actions(student, obs, rng, deterministic=True, masks=masks)
            actions = {
                a: np.where(teacher_acts.reshape(-1, *[1] * (act.ndim - 1)), act, student_actions[a])
                for a, act in actions.items()
            }
        by_teacher.append(teacher_acts)
        for a in venv.agents:
            rows[a].append(obs[a])
            labels[a].append(teacher_logits[a])
            acted[a].append(acting[a])
        for a in legal:
            legal[a].append(masks[a])
        episodes.append(first_episode + counter * n_envs + np.arange(n_envs))
        step = venv.step(actions)
        for party in carried:
            party.advance(acting)
            party.reset(step.done)
        obs, counter = step.obs, counter + step.done
        if on_step is not None:
            on_step(n_envs)
    venv.close()
    data = Dataset(
        {a: np.concatenate(r) for a, r in rows.items()},
        {a: torch.cat(t) for a, t in labels.items()},
        {a: np.concatenate(m) for a, m in legal.items()},
        {a: np.concatenate(m) for a, m in acted.items()},
        np.concatenate(episodes),
        state={a: np.concatenate(s) for a, s in states.items()},
    )
    keep = np.arange(samples)  # the last joint step may overshoot: every scheme labels exactly ``samples``
    return Collected(data.take(keep), float(np.concatenate(by_teacher)[keep].mean()))
