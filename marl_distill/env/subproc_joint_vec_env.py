"""``JointVecEnv`` split over worker processes, like SB3's SubprocVecEnv: env stepping uses more CPU cores.

Each worker owns a contiguous slice of the env copies as an in-process ``JointVecEnv`` (same reset, truncation
and auto-reset logic); the parent sends every worker its slice of the actions and concatenates the answers, so
callers cannot tell the two apart.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from marl_distill.env.joint_vec_env import JointStep, JointVecEnv
from marl_distill.errors import RunFailed
from marl_distill.policy.spec import EnvSpec
from marl_distill.utils.workers import ignore_stop_signals


def _worker(remote: Any, factory: Callable[[], Any], n_envs: int, autoreset: bool) -> None:
    """Serve reset/step requests; any exception goes back to the parent, which re-raises it."""
    ignore_stop_signals()
    try:
        venv = JointVecEnv(factory, n_envs, autoreset=autoreset)
    except Exception as exc:  # noqa: BLE001
        remote.send(("error", exc))
        return
    remote.send(("ok", venv.spec))
    try:
        while True:
            cmd, data = remote.recv()
            if cmd == "close":
                break
            try:
                if cmd == "call":
                    remote.send(("ok", venv.call(*data)))
                elif cmd == "step":
                    remote.send(("ok", venv.step(data)))
                else:
                    remote.send(("ok", (venv.reset(data), venv.masks, venv.acting, venv.present)))
            except Exception as exc:  # noqa: BLE001
                remote.send(("error", exc))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        venv.close()


DIED = "an env worker process died (killed, or out of memory?)"


def _send(remote: Any, message: Any) -> None:
    try:
        remote.send(message)
    except (BrokenPipeError, ConnectionResetError):
        raise RunFailed(DIED) from None


def _answers(remotes: Sequence[Any]) -> list[Any]:
    """Every worker's reply, read before raising the first error so the pipes never fall out of step."""
    try:
        replies = [r.recv() for r in remotes]
    except EOFError:
        raise RunFailed(DIED) from None
    for status, value in replies:
        if status == "error":
            raise value
    return [value for _, value in replies]


def _concat(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {a: np.concatenate([p[a] for p in parts]) for a in parts[0]}


class SubprocJointVecEnv:
    """``n_envs`` copies spread over ``workers`` processes."""

    def __init__(self, factory: Callable[[], Any], n_envs: int, workers: int, *, autoreset: bool = True) -> None:
        workers = max(1, min(workers, n_envs))
        sizes = [n_envs // workers + (1 if w < n_envs % workers else 0) for w in range(workers)]
        self.bounds = np.cumsum([0, *sizes])
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else "spawn")
        self.remotes, self.procs = [], []
        for size in sizes:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, factory, size, autoreset), daemon=True)
            proc.start()
            child.close()
            self.remotes.append(parent)
            self.procs.append(proc)
        specs = _answers(self.remotes)
        self.spec: EnvSpec = specs[0]
        self.agents = self.spec.agents
        self.n_envs = n_envs
        self.autoreset = autoreset
        self.masks: dict[str, np.ndarray] = {}
        """Legal actions of the masked agents for the latest observations (as ``JointVecEnv.masks``)."""
        self.acting: dict[str, np.ndarray] = {}
        """Which agents act on the latest observations (as ``JointVecEnv.acting``)."""
        self.present: dict[str, np.ndarray] = {}
        """Which agents are in the episodes of the latest observations (as ``JointVecEnv.present``)."""

    def _slices(self) -> list[slice]:
        return [slice(int(lo), int(hi)) for lo, hi in zip(self.bounds[:-1], self.bounds[1:])]

    def reset(self, seeds: Sequence[int | None]) -> dict[str, np.ndarray]:
        for remote, sl in zip(self.remotes, self._slices()):
            _send(remote, ("reset", list(seeds)[sl]))
        parts = _answers(self.remotes)
        self.masks, self.acting = _concat([p[1] for p in parts]), _concat([p[2] for p in parts])
        self.present = _concat([p[3] for p in parts])
        return _concat([p[0] for p in parts])

    def step(self, actions: Mapping[str, np.ndarray]) -> JointStep:
        for remote, sl in zip(self.remotes, self._slices()):
            _send(remote, ("step", {a: np.asarray(act)[sl] for a, act in actions.items()}))
        parts: list[JointStep] = _answers(self.remotes)
        step = JointStep(
            _concat([p.obs for p in parts]),
            _concat([p.rewards for p in parts]),
            _concat([p.terminated for p in parts]),
            _concat([p.truncated for p in parts]),
            np.concatenate([p.done for p in parts]),
            _concat([p.final_obs for p in parts]),
            _concat([p.masks for p in parts]),
            _concat([p.acting for p in parts]),
            _concat([p.left for p in parts]),
            _concat([p.present for p in parts]),
        )
        self.masks, self.acting, self.present = step.masks, step.acting, step.present
        return step

    def call(self, what: str, name: str, args: tuple, kwargs: dict, indices: Sequence[int]) -> list[Any]:
        """``JointVecEnv.call`` on the workers that own the copies ``indices``, answers in ``indices`` order."""
        owner = np.searchsorted(self.bounds, list(indices), side="right") - 1
        for w, remote in enumerate(self.remotes):
            local = [int(i - self.bounds[w]) for i, o in zip(indices, owner) if o == w]
            _send(remote, ("call", (what, name, args, kwargs, local)))
        answers = [iter(value) for value in _answers(self.remotes)]
        return [next(answers[o]) for o in owner]

    def close(self) -> None:
        for remote in self.remotes:
            try:
                remote.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()  # workers ignore SIGTERM
