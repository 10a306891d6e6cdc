"""Steps an agent was not in (it left its episode while its env copy went on): their buffer rows are replaced with
real ones before SB3 trains, so no learner fits its value or policy to a placeholder state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import ConstantSchedule

from marl_distill.errors import UserError
from marl_distill.teachers.recurrent import is_recurrent_model

if TYPE_CHECKING:
    from marl_distill.teachers.pipe_vec_env import PipeAgentVecEnv


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
        if is_recurrent_model(self.model):  # its rows are sequences with LSTM states: a copied row would break one
            raise UserError(
                f"agent {self.agent!r} left its episode while others played on; recurrent_ppo teachers cannot train "
                "through such steps yet: use ppo for this env"
            )
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
