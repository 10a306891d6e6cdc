"""N plain SB3 learners on one shared env, every joint step feeding every learner.

SB3 is single-agent: ``model.learn()`` owns its loop and calls ``env.step``. Each learner therefore runs
``learn()`` in its own process on a ``PipeAgentVecEnv``, a VecEnv that forwards reset/step over a pipe. The
parent process is the coordinator: it waits for every learner's request, steps the shared ``JointVecEnv``
once, and answers each learner with its own agent's slice (observation, reward, done, infos with the terminal
observation and ``TimeLimit.truncated``). So each learner stays a plain SB3 model (own logger, callbacks,
truncation bootstrap, ``save``), sees only its own agent's data, all learners see the same env steps, and
their forward passes and gradient updates run in parallel on separate cores. Results do not depend on timing:
each learner's randomness lives in its own process, seeded, and the env is stepped in a fixed order.

An agent that leaves mid-episode gets its own ``done`` (and episode info) at that step. SB3's buffers are
fixed-shape, so until its copy starts a new episode the learner still steps on a placeholder observation; those
rows are marked absent and ``AbsentRows`` overwrites them before SB3 trains, so no learner ever fits its value or
policy to a state its agent was not in.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from marl_distill.env.joint_vec_env import JointStep
from marl_distill.errors import RunFailed, UserError
from marl_distill.teachers.absent_rows import AbsentRows
from marl_distill.teachers.checkpoint import (
    Keeper,
    LearnerCheckpoints,
    Plan,
    StopLearning,
    diverged,
    load_learner,
    non_finite,
)
from marl_distill.teachers.config import policy_name
from marl_distill.teachers.pipe_vec_env import PipeAgentVecEnv
from marl_distill.utils.disk_full import is_disk_full, quiet_full_disk_threads
from marl_distill.utils.workers import ignore_stop_signals, preload


@dataclass
class LearnerSpec:
    """Everything a learner process needs to build and train its SB3 model (all picklable)."""

    agent: str
    algo_cls: type
    kwargs: dict[str, Any]
    seed: int
    n_envs: int
    observation_space: gym.Space
    action_space: gym.Space
    total_timesteps: int
    save_path: str
    tb_dir: str | None
    torch_threads: int = 1
    plan: Plan | None = None
    """Where and when to checkpoint (None: never), and the joint step to resume from."""

    def build(self, env: VecEnv) -> BaseAlgorithm:
        """The SB3 model this spec describes, on ``env`` (seeded: the same spec always starts the same)."""
        policy = policy_name(self.algo_cls)
        return self.algo_cls(policy, env, seed=self.seed, tensorboard_log=self.tb_dir, verbose=0, **self.kwargs)


def _learner(spec: LearnerSpec, conn: Any, stop: Any) -> None:
    """Body of one learner process: build (or load a checkpoint), learn, save, report. It ignores Ctrl-C and
    SIGTERM: the coordinator alone decides when learners stop, so they can save a last checkpoint first."""
    ignore_stop_signals()
    quiet_full_disk_threads()
    import torch

    torch.set_num_threads(spec.torch_threads)
    model: BaseAlgorithm | None = None
    try:
        env = PipeAgentVecEnv(conn, spec.n_envs, spec.observation_space, spec.action_space)
        plan = spec.plan
        absent = AbsentRows(env, spec.seed, spec.agent)
        callbacks: list[BaseCallback] = [absent]
        if plan is not None:
            extra = lambda: {"absent_rng": absent.rng.bit_generator.state, "absent_real": absent.real}  # noqa: E731
            callbacks.append(LearnerCheckpoints(conn, spec.agent, spec.n_envs, plan, stop, extra))
        try:
            if plan is not None and plan.resume_step:
                model, state = load_learner(
                    spec.algo_cls, env, plan.folder, spec.agent, plan.resume_step, tensorboard_log=spec.tb_dir
                )
                absent.rng.bit_generator.state, absent.real = state["absent_rng"], state["absent_real"]
            else:
                model = spec.build(env)
        except TypeError as exc:
            bad = f"bad {spec.algo_cls.__name__} settings for {spec.agent} ({exc})"
            conn.send(("user_error", f"{bad}; fix the teachers' algorithm settings"))
            return
        try:
            model.learn(
                total_timesteps=spec.total_timesteps - model.num_timesteps,
                tb_log_name=spec.agent,
                callback=callbacks,
                reset_num_timesteps=model.num_timesteps == 0,
            )
        except StopLearning as stop:
            conn.send(("stopped", stop.args[0]))
            return
        model.save(spec.save_path)
        conn.send(("done", model.num_timesteps))
    except UserError as exc:
        conn.send(("user_error", str(exc)))
    except Exception as exc:  # noqa: BLE001 - reported to the coordinator, which raises it
        if is_disk_full(exc):  # said once by the coordinator, for the run folder, not as a traceback per learner
            conn.send(("disk_full", f"{type(exc).__name__}: {exc}"))
        elif model is not None and non_finite(model):  # e.g. torch refusing NaN logits mid-update
            conn.send(("user_error", diverged(spec.agent, model.num_timesteps)))
        else:
            conn.send(("error", traceback.format_exc()))


class Coordinator:
    """Steps the shared env once per joint step for all learners and builds each learner's SB3 infos."""

    def __init__(
        self,
        venv: Any,
        seeds: Sequence[int | None],
        on_step: Callable[[JointStep], None] | None,
        joint_steps: int = 0,
        episodes: int = 0,
    ) -> None:
        self.venv = venv
        self.agents = list(venv.agents)
        self._seeds = list(seeds)
        self._on_step = on_step
        self.joint_steps = joint_steps
        """Joint steps so far, counting those before a resumed checkpoint."""
        self.episodes = episodes
        """Episodes of the env copies (each ends when its last agent leaves)."""
        self._ep_returns = {a: np.zeros(venv.n_envs) for a in self.agents}
        self._ep_lengths = {a: np.zeros(venv.n_envs, dtype=int) for a in self.agents}
        self._present = {a: np.ones(venv.n_envs, dtype=bool) for a in self.agents}
        self._start = time.time()

    def reset(self) -> dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
        """Every agent's first observations, legal actions and presence in each copy's episode."""
        obs = self.venv.reset(self._seeds)
        self._seeds = [None] * self.venv.n_envs
        masks, self._present = self.venv.masks, self.venv.present
        return {a: (obs[a], masks.get(a), self._present[a]) for a in self.agents}

    def step(self, actions: dict[str, np.ndarray]) -> dict[str, tuple]:
        """One joint step; returns each agent's (obs, rewards, dones, infos) as its VecEnv reports them, its legal
        actions (None where the env has no masks) and where it is in the episode of ``obs``.

        An agent's ``done`` and episode info come when *its* episode ends (it left, or its copy's episode ended
        with it still there), so an agent that leaves early is not told again when its copy ends.
        """
        n = self.venv.n_envs
        spaces = self.venv.spec.action_spaces
        step = self.venv.step({a: np.asarray(act).reshape(n, *spaces[a].shape) for a, act in actions.items()})
        self.joint_steps += 1
        self.episodes += int(step.done.sum())
        answers = {}
        for a in self.agents:
            self._ep_returns[a] += step.rewards[a]
            self._ep_lengths[a] += self._present[a]
            infos: list[dict[str, Any]] = [{} for _ in range(n)]
            for i in np.flatnonzero(step.left[a]):
                infos[i] = {
                    "terminal_observation": step.final_obs[a][i],
                    "TimeLimit.truncated": bool(step.truncated[a][i]) and not bool(step.terminated[a][i]),
                    "episode": {
                        "r": float(self._ep_returns[a][i]),
                        "l": int(self._ep_lengths[a][i]),
                        "t": round(time.time() - self._start, 6),
                    },
                }
                self._ep_returns[a][i] = 0.0
                self._ep_lengths[a][i] = 0
            answers[a] = (step.obs[a], step.rewards[a], step.left[a].copy(), infos, step.masks.get(a), step.present[a])
        self._present = step.present
        if self._on_step is not None:
            self._on_step(step)
        return answers


def _died(agent: str) -> RunFailed:
    return RunFailed(f"learner {agent} died (killed, or out of memory?)")


def _send(agent: str, conn: Any, message: Any) -> None:
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionResetError):
        raise _died(agent) from None


def _next_request(agent: str, conn: Any, venv: Any, keeper: Keeper) -> tuple[str, Any]:
    """The learner's next lockstep request; env calls and checkpoint talk in between are answered at once."""
    while True:
        while True:  # waits out a learner's training phase, but not a stop past its deadline
            if keeper.overdue():
                raise KeyboardInterrupt
            if conn.poll(0.5):
                break
        try:
            kind, payload = conn.recv()
        except (EOFError, ConnectionResetError):
            raise _died(agent) from None
        if kind == "saved":
            keeper.saved(agent, payload)
        elif kind != "call":
            return kind, payload
        else:
            try:
                conn.send(("ok", venv.call(*payload)))
            except Exception as exc:  # noqa: BLE001 - raised again in the learner, where SB3 expects it
                conn.send(("error", exc))


def run_learners(coordinator: Coordinator, specs: Sequence[LearnerSpec], keeper: Keeper) -> dict[str, int]:
    """Start one process per learner and serve their env calls until all finish; returns their timesteps.
    A stop (``keeper``: Ctrl-C, SIGTERM) raises KeyboardInterrupt once the learners saved at a common bound."""
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    if ctx.get_start_method() == "fork":
        preload()
    conns, procs = [], []
    for spec in specs:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_learner, args=(spec, child, keeper.stop), daemon=True, name=f"learner-{spec.agent}")
        proc.start()
        child.close()
        conns.append(parent)
        procs.append(proc)
    agents = [s.agent for s in specs]
    finished = False
    try:
        while True:
            msgs = {agent: _next_request(agent, conn, coordinator.venv, keeper) for agent, conn in zip(agents, conns)}
            kinds = {m[0] for m in msgs.values()}
            for agent, (kind, payload) in msgs.items():
                if kind == "user_error":
                    raise UserError(payload)
                if kind == "disk_full":
                    raise OSError(errno.ENOSPC, f"learner {agent}: {payload}")
                if kind == "error":
                    raise RuntimeError(f"learner {agent} failed:\n{payload}")
            if kinds == {"done"}:
                finished = True
                return {a: int(m[1]) for a, m in msgs.items()}
            if kinds == {"stopped"}:
                raise KeyboardInterrupt
            if len(kinds) != 1:
                raise RuntimeError(f"learners fell out of lockstep: got {sorted(kinds)} in one joint step")
            keeper.between_steps()  # every learner waits for its answer now
            if kinds == {"reset"}:
                obs = coordinator.reset()
                for agent, conn in zip(agents, conns):
                    _send(agent, conn, obs[agent])
            else:
                answers = coordinator.step({a: m[1] for a, m in msgs.items()})
                for agent, conn in zip(agents, conns):
                    _send(agent, conn, answers[agent])
    finally:
        for proc in procs:
            if finished:
                proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()  # learners ignore SIGTERM
                proc.join()
