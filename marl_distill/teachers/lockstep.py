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
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import ConstantSchedule
from stable_baselines3.common.vec_env import VecEnv

from marl_distill.errors import UserError
from marl_distill.forked import quiet_on_interrupt
from marl_distill.multiagent import JointStep


class PipeAgentVecEnv(VecEnv):
    """One agent's view of the shared joint env, in SB3's VecEnv API, answered by the coordinator."""

    def __init__(self, conn: Any, n_envs: int, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.conn = conn
        self._actions: np.ndarray | None = None
        self._masks: np.ndarray | None = None
        self.present = np.ones(n_envs, dtype=bool)
        """Per copy: is the agent in the episode of the latest observation (False once it left)?"""
        self.rows_present: list[np.ndarray] = []
        """``present`` of the observation acted on, one entry per step (``AbsentRows`` clears it per rollout)."""
        super().__init__(n_envs, observation_space, action_space)

    def reset(self) -> np.ndarray:
        self.conn.send(("reset", None))
        obs, self._masks, self.present = self.conn.recv()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        self.conn.send(("step", self._actions))
        self.rows_present.append(self.present)
        obs, rewards, dones, infos, self._masks, self.present = self.conn.recv()
        return obs, rewards, dones, infos

    def action_masks(self) -> np.ndarray:
        """Legal actions of this agent in every copy (all legal where the env has no masks)."""
        if self._masks is None:
            return np.ones((self.num_envs, int(self.action_space.n)), dtype=bool)
        return self._masks

    def close(self) -> None:
        pass

    def _call(self, what: str, name: str, args: tuple, kwargs: dict, indices: Any) -> list[Any]:
        """Ask the coordinator to reach the shared env copies (shared by every agent's learner)."""
        self.conn.send(("call", (what, name, args, kwargs, list(self._get_indices(indices)))))
        status, value = self.conn.recv()
        if status == "error":
            raise value
        return value

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return self._call("get", attr_name, (), {}, indices)

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        self._call("set", attr_name, (value,), {}, indices)

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks" or super().has_attr(attr_name)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list:
        if method_name == "action_masks":  # sb3-contrib's MaskablePPO: this agent's masks, not the env's
            return list(self.action_masks()[self._get_indices(indices)])
        return self._call("method", method_name, method_args, method_kwargs, indices)

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


def _row_arrays(buffer: Any, rows: int, n_envs: int) -> dict[str, np.ndarray]:
    """Every per-(step, copy) array of an SB3 buffer, by field name (one per key for Dict observations)."""
    out = {}
    for name, value in vars(buffer).items():
        for key, arr in value.items() if isinstance(value, dict) else [("", value)]:
            if isinstance(arr, np.ndarray) and arr.shape[:2] == (rows, n_envs):
                out[f"{name}.{key}" if key else name] = arr
    return out


def _copy_rows(arrays: dict[str, np.ndarray], dest: tuple[np.ndarray, np.ndarray], src: tuple) -> None:
    for arr in arrays.values():
        arr[dest] = arr[src]


class AbsentRows(BaseCallback):
    """Replaces the buffer rows of steps its agent was not in the episode (after it left) with real rows.

    PPO: each absent (step, copy) row becomes a copy of a uniformly drawn real row of the same rollout (after
    returns and advantages are computed; the departure step itself is real and carries ``done``, so GAE never
    reads past it). The expected gradient stays the mean over real rows, advantage normalisation sees only real
    rows, and nothing is fitted to a placeholder. A rollout with no real row at all trains nothing: its learning
    rate is 0 for that update.

    DQN (before it trains): each absent cell just stored becomes a copy of a transition drawn uniformly from every
    real transition the replay buffer holds (``real`` marks them, across rollouts and wrap-around; copies are never
    sources), so minibatches stay uniform over real transitions. Drawing from the rollout alone would over-weight
    its few real rows (copies run in step, so those are the states near a departure). Until the buffer holds a
    real transition, absent cells copy earlier rows, and are dropped when there are none.
    """

    def __init__(self, env: PipeAgentVecEnv, seed: int, agent: str = "") -> None:
        super().__init__()
        self.env = env
        self.agent = agent
        self.rng = np.random.default_rng(seed)
        self._lr_schedule: Any = None
        self.real: np.ndarray | None = None
        """Off-policy: (buffer_size, n_envs) mask of the replay buffer cells holding a real (not copied) transition."""

    def _restore_lr(self) -> None:
        if self._lr_schedule is not None:
            self.model.lr_schedule, self._lr_schedule = self._lr_schedule, None

    def _on_rollout_start(self) -> None:
        self._restore_lr()
        self.env.rows_present.clear()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._restore_lr()

    def _on_rollout_end(self) -> None:
        present = np.array(self.env.rows_present, dtype=bool).reshape(-1, self.env.num_envs)
        if isinstance(self.model, OnPolicyAlgorithm) and not present.all():
            self._fill_rollout(present)
        elif isinstance(self.model, OffPolicyAlgorithm):  # even when all present: ``real`` tracks every stored row
            self._fill_replay(present)

    def _fill_rollout(self, present: np.ndarray) -> None:
        buf = self.model.rollout_buffer
        if present.shape != (buf.buffer_size, buf.n_envs):
            raise RuntimeError(f"{present.shape} presence flags for a {buf.buffer_size} x {buf.n_envs} rollout")
        arrays = _row_arrays(buf, buf.buffer_size, buf.n_envs)
        real, absent = np.nonzero(present), np.nonzero(~present)
        if len(real[0]):
            pick = self.rng.integers(len(real[0]), size=len(absent[0]))
            _copy_rows(arrays, absent, (real[0][pick], real[1][pick]))
            return
        # not one real row: zero advantages and returns equal to the values, and learning rate 0 for this update
        buf.advantages[:] = 0.0
        buf.returns[:] = buf.values
        self._lr_schedule = self.model.lr_schedule
        self.model.lr_schedule = ConstantSchedule(0.0)

    def _fill_replay(self, present: np.ndarray) -> None:
        buf = self.model.replay_buffer
        size, n_envs = buf.buffer_size, buf.n_envs
        if self.real is None or self.real.shape != (size, n_envs):
            self.real = np.zeros((size, n_envs), dtype=bool)
        k = min(len(present), size)
        present = present[-k:]
        rows = (buf.pos - k + np.arange(k)) % size
        self.real[rows] = present  # the rows just stored replace whatever the buffer held there
        if present.all():
            return
        if buf.optimize_memory_usage:
            raise UserError(
                f"dqn optimize_memory_usage keeps no separate next observations, so the steps after agent "
                f"{self.agent!r} left its episode cannot be replaced; set teachers.dqn.optimize_memory_usage = false"
            )
        arrays = _row_arrays(buf, size, n_envs)
        absent_t, absent_e = np.nonzero(~present)
        real_t, real_e = np.nonzero(self.real)
        if len(real_t):
            pick = self.rng.integers(len(real_t), size=len(absent_t))
            src = (real_t[pick], real_e[pick])
        else:  # no real transition in the buffer: copies of earlier rows (copies of real ones), or no new rows at all
            earlier = np.setdiff1d(np.arange(size if buf.full else buf.pos), rows)
            if not len(earlier):
                buf.pos = (buf.pos - k) % size
                return
            src = (self.rng.choice(earlier, size=len(absent_t)), self.rng.integers(n_envs, size=len(absent_t)))
        _copy_rows(arrays, (rows[absent_t], absent_e), src)


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

    def build(self, env: VecEnv) -> BaseAlgorithm:
        """The SB3 model this spec describes, on ``env`` (seeded: the same spec always starts the same)."""
        return self.algo_cls("MlpPolicy", env, seed=self.seed, tensorboard_log=self.tb_dir, verbose=0, **self.kwargs)


def _learner(spec: LearnerSpec, conn: Any) -> None:
    """Body of one learner process: build, learn, save, report."""
    quiet_on_interrupt()
    import torch

    torch.set_num_threads(spec.torch_threads)
    try:
        env = PipeAgentVecEnv(conn, spec.n_envs, spec.observation_space, spec.action_space)
        try:
            model = spec.build(env)
        except TypeError as exc:
            conn.send(("user_error", f"bad {spec.algo_cls.__name__} settings for {spec.agent} ({exc})"))
            return
        model.learn(
            total_timesteps=spec.total_timesteps,
            tb_log_name=spec.agent,
            callback=AbsentRows(env, spec.seed, spec.agent),
        )
        model.save(spec.save_path)
        conn.send(("done", model.num_timesteps))
    except UserError as exc:
        conn.send(("user_error", str(exc)))
    except Exception:  # noqa: BLE001 - reported to the coordinator, which raises it
        conn.send(("error", traceback.format_exc()))


class Coordinator:
    """Steps the shared env once per joint step for all learners and builds each learner's SB3 infos."""

    def __init__(self, venv: Any, seeds: Sequence[int | None], on_step: Callable[[JointStep], None] | None) -> None:
        self.venv = venv
        self.agents = list(venv.agents)
        self._seeds = list(seeds)
        self._on_step = on_step
        self.joint_steps = 0
        self.episodes = 0
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


def _next_request(agent: str, conn: Any, venv: Any) -> tuple[str, Any]:
    """The learner's next lockstep request; get_attr / env_method calls in between are answered at once."""
    while True:
        try:
            kind, payload = conn.recv()
        except EOFError:
            raise RuntimeError(f"learner {agent} died without a word (out of memory?)") from None
        if kind != "call":
            return kind, payload
        try:
            conn.send(("ok", venv.call(*payload)))
        except Exception as exc:  # noqa: BLE001 - raised again in the learner, where SB3 expects it
            conn.send(("error", exc))


def run_learners(coordinator: Coordinator, specs: Sequence[LearnerSpec]) -> dict[str, int]:
    """Start one process per learner and serve their env calls until all finish; returns their timesteps."""
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    conns, procs = [], []
    for spec in specs:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_learner, args=(spec, child), daemon=True, name=f"learner-{spec.agent}")
        proc.start()
        child.close()
        conns.append(parent)
        procs.append(proc)
    agents = [s.agent for s in specs]
    finished = False
    try:
        while True:
            msgs = {agent: _next_request(agent, conn, coordinator.venv) for agent, conn in zip(agents, conns)}
            kinds = {m[0] for m in msgs.values()}
            for agent, (kind, payload) in msgs.items():
                if kind == "user_error":
                    raise UserError(f"{payload}; fix the teachers' algorithm settings")
                if kind == "error":
                    raise RuntimeError(f"learner {agent} failed:\n{payload}")
            if kinds == {"done"}:
                finished = True
                return {a: int(m[1]) for a, m in msgs.items()}
            if len(kinds) != 1:
                raise RuntimeError(f"learners fell out of lockstep: got {sorted(kinds)} in one joint step")
            if kinds == {"reset"}:
                obs = coordinator.reset()
                for agent, conn in zip(agents, conns):
                    conn.send(obs[agent])
            else:
                answers = coordinator.step({a: m[1] for a, m in msgs.items()})
                for agent, conn in zip(agents, conns):
                    conn.send(answers[agent])
    finally:
        for proc in procs:
            if finished:
                proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join()
