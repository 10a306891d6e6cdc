"""Checkpoints inside teacher training, so a stopped or failed stage continues instead of starting over.

Learners run in lockstep, so they can only be saved together at a joint step where every one of them is between
rollouts (its ``learn()`` loop has trained on everything it collected): a *common bound*, a multiple of every
learner's rollout length. At a common bound a learner saves when the step is a multiple of ``every``, or when the
coordinator's stop event is set. The coordinator sets that event only while every learner waits for its answer to
a joint step, so all learners read the same value at the next bound and save at the same step. A saving learner
writes its SB3 model (weights and optimizer), DQN's replay buffer and the rest of its state under names holding
the step, each file atomic and flushed to disk, and reports ``"saved"``; when all have, the coordinator writes
``checkpoint.json`` (the same way) naming that step, then removes older files. A checkpoint is therefore whole or
ignored, whatever moment the run dies at.

Resuming loads every learner at the marked step and calls ``learn(remaining, reset_num_timesteps=False)``, so the
stage ends at the same total transitions with the same schedules (exploration, learning rate progress). The env
copies start fresh episodes there, seeded from the run seed and the step: episodes cut short by the stop are not
continued.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import pickle
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from marl_distill.errors import UserError
from marl_distill.utils import faults
from marl_distill.utils.files import atomic_write

MARK = "checkpoint.json"
"""The file naming the latest whole checkpoint; without it a checkpoint folder holds nothing usable."""
STOP_SECONDS = 5.0
"""How long a stop request waits for the learners to reach a common bound and save; past it the run stops with
the previous checkpoint (a long rollout, a large replay buffer to write)."""


class StopLearning(Exception):
    """Raised in a learner after it saved the checkpoint a stop request asked for."""


@dataclass
class Plan:
    """Where and when the learners of one stage checkpoint (picklable: it travels to every learner)."""

    folder: str
    """Checkpoint folder (RUN/checkpoints/teachers)."""
    every: int
    """Joint steps between checkpoints, a multiple of ``bound``; 0: no periodic checkpoints (only on stop)."""
    bound: int
    """Joint steps between common bounds (the least common multiple of the learners' rollout lengths)."""
    resume_step: int = 0
    """The joint step the learners start from (0: a fresh start)."""


def every_steps(transitions: int, steps: int, n_envs: int, bound: int) -> int:
    """Joint steps between checkpoints for ``transitions`` per learner (0: a tenth of the budget ``steps``;
    negative: none), rounded up to whole common bounds."""
    if transitions < 0:
        return 0
    want = transitions if transitions > 0 else max(1, steps // 10)
    vec = -(-want // n_envs)
    return -(-vec // bound) * bound


def paths(folder: str | Path, agent: str, step: int) -> dict[str, Path]:
    """A learner's files of the checkpoint at joint ``step``."""
    base = Path(folder) / f"{agent}-{step}"
    return {
        "model": base.with_suffix(".zip"),
        "replay": base.with_suffix(".replay.pkl"),
        "state": base.with_suffix(".state.pkl"),
    }


def latest(folder: str | Path | None) -> dict[str, Any] | None:
    """The last whole checkpoint's record (joint_steps, episodes, seconds, agents), or None."""
    if folder is None or not (Path(folder) / MARK).is_file():
        return None
    try:
        return json.loads((Path(folder) / MARK).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{Path(folder) / MARK} is damaged ({exc}); move {folder} out of the run folder to train the teachers "
            "afresh"
        ) from None


def tidy(folder: str | Path | None, agents: list[str], mark: dict[str, Any] | None) -> None:
    """Remove learner files that belong to no whole checkpoint (older checkpoints, a save cut off by a stop past
    its deadline or by a crash), keeping the marked step's."""
    if folder is None or not Path(folder).is_dir():
        return
    keep = {MARK} | (
        {p.name for a in agents for p in paths(folder, a, mark["joint_steps"]).values()} if mark else set()
    )
    for path in Path(folder).iterdir():
        if path.name not in keep and path.is_file():
            path.unlink()


def save_learner(model: BaseAlgorithm, extra: dict[str, Any], folder: str, agent: str, step: int) -> None:
    """Everything ``load_learner`` needs to continue ``model`` (each file atomic; the mark comes later)."""
    files = paths(folder, agent, step)
    atomic_write(files["model"], lambda t: model.save(t), suffix=".tmp.zip", durable=True)
    faults.point("checkpoint-model")
    if isinstance(model, OffPolicyAlgorithm):

        def replay(tmp: Path) -> None:
            model.save_replay_buffer(tmp)
            faults.point("checkpoint-replay", partial=tmp)

        atomic_write(files["replay"], replay, suffix=".tmp.pkl", durable=True)
    state = {
        **extra,
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "random": random.getstate(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }
    atomic_write(files["state"], lambda t: t.write_bytes(pickle.dumps(state)), durable=True)


def load_learner(algo_cls: type, env: Any, folder: str, agent: str, step: int, **kwargs: Any) -> tuple[Any, dict]:
    """The learner saved at joint ``step`` on ``env``, with its random states back, and its extra state."""
    files = paths(folder, agent, step)
    try:
        model = algo_cls.load(files["model"], env=env, device="cpu", **kwargs)
        if isinstance(model, OffPolicyAlgorithm):
            model.load_replay_buffer(files["replay"])
        state = pickle.loads(files["state"].read_bytes())
    except Exception as exc:  # noqa: BLE001 - any damage reads as one line, not SB3's traceback
        raise UserError(
            f"the teacher checkpoint of {agent} at joint step {step} cannot be loaded ({type(exc).__name__}: "
            f"{exc}); move {folder} out of the run folder to train the teachers afresh"
        ) from None
    torch.set_rng_state(state.pop("torch"))  # SB3's load re-seeds everything with the model's first seed
    np.random.set_state(state.pop("numpy"))
    random.setstate(state.pop("random"))
    model.action_space.np_random.bit_generator.state = state.pop("action_space")
    return model, state


def non_finite(model: BaseAlgorithm) -> bool:
    """Has a weight of ``model``'s policy become NaN or infinite (a diverged update)?"""
    return any(not bool(torch.isfinite(p).all()) for p in model.policy.parameters())


def diverged(agent: str, timesteps: int) -> str:
    """The one line for a teacher whose update went non-finite."""
    return (
        f"teacher {agent!r} diverged: its weights became NaN or infinite by transition {timesteps}; any checkpoint "
        "already made is kept: lower its learning_rate (or max_grad_norm), then continue with --resume"
    )


class LearnerCheckpoints(BaseCallback):
    """In a learner: at each common bound, refuse a diverged model, then save when the plan or a stop says so."""

    def __init__(
        self, conn: Any, agent: str, n_envs: int, plan: Plan, stop: Any, extra: Callable[[], dict[str, Any]]
    ) -> None:
        super().__init__()
        self.conn, self.agent, self.n_envs, self.plan, self.stop, self.extra = conn, agent, n_envs, plan, stop, extra

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        step = self.model.num_timesteps // self.n_envs
        if step == self.plan.resume_step or step % self.plan.bound:
            return
        if non_finite(self.model):
            raise UserError(diverged(self.agent, self.model.num_timesteps))
        stopping = self.stop.is_set()
        if not stopping and not (self.plan.every and step % self.plan.every == 0):
            return
        save_learner(self.model, self.extra(), self.plan.folder, self.agent, step)
        self.conn.send(("saved", step))
        if stopping:
            raise StopLearning(step)


class Keeper:
    """In the coordinator: marks whole checkpoints, and turns Ctrl-C and SIGTERM into a stop at the next common
    bound (a second signal, or ``STOP_SECONDS`` without reaching it, stops at once)."""

    def __init__(self, plan: Plan | None, agents: list[str], record: Callable[[int], dict[str, Any]]) -> None:
        self.plan, self.agents, self.record = plan, agents, record
        methods = mp.get_all_start_methods()
        self.stop = mp.get_context("fork" if "fork" in methods else "spawn").Event()
        """The event learners read at common bounds (set by ``between_steps`` once a stop was asked)."""
        self._saved: dict[int, set[str]] = {}
        self.stop_asked: float | None = None
        self._old: dict[int, Any] = {}

    def between_steps(self) -> None:
        """Called while every learner waits for its answer to a joint step: the one moment the stop event can be
        set so that all learners see the same value at their next bound."""
        if self.stop_asked is not None and not self.stop.is_set():
            self.stop.set()

    def saved(self, agent: str, step: int) -> None:
        """Note ``agent``'s files at ``step``; the last learner's note marks the checkpoint whole."""
        done = self._saved.setdefault(step, set())
        done.add(agent)
        if done != set(self.agents) or self.plan is None:
            return
        del self._saved[step]
        folder = Path(self.plan.folder)
        mark = {"joint_steps": step, **self.record(step)}
        faults.point("checkpoint-mark")
        atomic_write(folder / MARK, lambda t: t.write_text(json.dumps(mark)), durable=True)
        tidy(folder, self.agents, mark)  # no learner writes now: each waits for its step answer

    def overdue(self) -> bool:
        """A stop was asked for longer ago than ``STOP_SECONDS``."""
        return self.stop_asked is not None and time.monotonic() - self.stop_asked > STOP_SECONDS

    def _signal(self, signum: int, frame: Any) -> None:
        if self.stop_asked is not None or self.plan is None:
            raise KeyboardInterrupt
        self.stop_asked = time.monotonic()

    def __enter__(self) -> Keeper:
        self._old = {}
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
