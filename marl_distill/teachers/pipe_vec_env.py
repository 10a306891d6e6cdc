"""One agent's view of the shared joint env as an SB3 VecEnv, its steps answered over a pipe by the coordinator
(``lockstep``). ``AbsentRows`` reads which of its rows the agent was present for."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv


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
