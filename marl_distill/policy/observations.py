"""The declared observation preprocessor: every agent's observation becomes a float32 Box that MLP teachers
(SB3 MlpPolicy) and students take as they are, whatever the env hands out.

- Box: kept in shape, cast to float32 (float64 and int8 envs alike); uint8 images are scaled to [0, 1] (what
  SB3 does to images), so students and teachers see the same numbers.
- Discrete(n): a one-hot of n; MultiDiscrete: the one-hots side by side; MultiBinary: its bits as floats.
Multi-dimensional Boxes keep their shape here; SB3's MlpPolicy and the students flatten them.

Legal moves come beside the observation in PettingZoo's convention (``has_mask``): a Dict of the observation and
an ``action_mask``. This module imports no torch: the env adapters and torch-free deployment read it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from marl_distill.errors import UserError

Encoder = Callable[[Any], np.ndarray]


def _is_image(space: gym.spaces.Box) -> bool:
    return space.dtype == np.uint8 and bool(np.all(space.low == 0)) and bool(np.all(space.high == 255))


def encoded_space(space: gym.Space, agent: str = "") -> gym.spaces.Box:
    """The float32 Box that ``encoder(space)`` produces."""
    if isinstance(space, gym.spaces.Box):
        if _is_image(space):
            return gym.spaces.Box(0.0, 1.0, space.shape, np.float32)
        return gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), space.shape, np.float32)
    if isinstance(space, gym.spaces.Discrete):
        return gym.spaces.Box(0.0, 1.0, (int(space.n),), np.float32)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return gym.spaces.Box(0.0, 1.0, (int(np.sum(space.nvec)),), np.float32)
    if isinstance(space, gym.spaces.MultiBinary):
        return gym.spaces.Box(0.0, 1.0, (int(np.prod(space.shape)),), np.float32)
    raise UserError(
        f"agent {agent!r} has observation space {space}; use Box, Discrete, MultiDiscrete or MultiBinary "
        "observations, or a Dict of 'observation' and 'action_mask'"
    )


def encoder(space: gym.Space) -> Encoder:
    """A function from one raw observation of ``space`` to its float32 encoding."""
    if isinstance(space, gym.spaces.Box):
        if _is_image(space):
            return lambda x: np.asarray(x, np.float32) / 255.0
        return lambda x: np.asarray(x, np.float32)
    if isinstance(space, gym.spaces.Discrete):
        n, start = int(space.n), int(space.start)
        return lambda x: np.eye(n, dtype=np.float32)[int(x) - start]
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec = [int(v) for v in np.ravel(space.nvec)]
        offsets = np.cumsum([0, *nvec[:-1]]) - np.ravel(space.start).astype(int)
        width = int(sum(nvec))

        def multi(x: Any) -> np.ndarray:
            out = np.zeros(width, np.float32)
            out[offsets + np.ravel(np.asarray(x, int))] = 1.0
            return out

        return multi
    if isinstance(space, gym.spaces.MultiBinary):
        return lambda x: np.asarray(x, np.float32).reshape(-1)
    raise UserError(f"no encoder for observation space {space}")


def decode_batch(space: gym.Space, encoded: np.ndarray) -> np.ndarray:
    """The raw observations of ``space`` whose encodings are ``encoded`` (batch first): ``encoder``'s inverse, so
    a policy that takes raw observations (an exported graph) can play inside the lab, which hands out encodings.
    Discrete and MultiDiscrete come back as int64 indices (the exported graph's input dtype)."""
    x = np.asarray(encoded, np.float32)
    n = len(x)
    if isinstance(space, gym.spaces.Box):
        if _is_image(space):
            return np.rint(x * np.float32(255.0)).astype(np.uint8).reshape(n, *space.shape)
        return x.astype(space.dtype).reshape(n, *space.shape)
    if isinstance(space, gym.spaces.Discrete):
        return x.reshape(n, -1).argmax(axis=1).astype(np.int64) + int(space.start)
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec = [int(v) for v in np.ravel(space.nvec)]
        parts = np.split(x.reshape(n, -1), np.cumsum(nvec)[:-1], axis=1)
        idx = np.stack([p.argmax(axis=1) for p in parts], axis=1) + np.ravel(space.start).astype(np.int64)
        return idx.astype(np.int64).reshape(n, *space.shape)
    if isinstance(space, gym.spaces.MultiBinary):
        return x.astype(space.dtype).reshape(n, *space.shape)
    raise UserError(f"no decoder for observation space {space}")


MASK_KEYS = ("observation", "action_mask")


def has_mask(space: gym.Space) -> bool:
    """PettingZoo's convention for legal moves: a Dict of the observation and an ``action_mask``."""
    return isinstance(space, gym.spaces.Dict) and set(space.spaces) == set(MASK_KEYS)
