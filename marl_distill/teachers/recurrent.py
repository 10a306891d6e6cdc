"""Recurrent teachers (sb3-contrib's RecurrentPPO) as parties with a state (``policy.memory``).

Their action distribution comes from the public ``policy.get_distribution(obs, lstm_states, episode_starts)``.
The lab keeps each agent's actor LSTM state as one row per env copy: the hidden and cell states of every layer
side by side, ``2 * n_layers * hidden`` values, zero at an episode's start (what RecurrentPPO's own
``episode_starts`` does to them). Only the actor's LSTM is carried: the critic's is not needed to act.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.base_class import BaseAlgorithm


def is_recurrent_model(model: BaseAlgorithm) -> bool:
    return isinstance(model, RecurrentPPO)


def state_size(model: BaseAlgorithm) -> int:
    """Values per env copy of the actor's LSTM state (hidden and cell, every layer)."""
    lstm = model.policy.lstm_actor
    return 2 * int(lstm.num_layers) * int(lstm.hidden_size)


def _unpack(model: BaseAlgorithm, state: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 2 * layers * hidden) rows -> SB3's (h, c), each (layers, n, hidden)."""
    lstm = model.policy.lstm_actor
    layers, size = int(lstm.num_layers), int(lstm.hidden_size)
    x = torch.as_tensor(np.asarray(state, dtype=np.float32)).reshape(len(state), 2, layers, size)
    return x[:, 0].transpose(0, 1).contiguous(), x[:, 1].transpose(0, 1).contiguous()


def _pack(h: torch.Tensor, c: torch.Tensor) -> np.ndarray:
    return torch.stack([h.transpose(0, 1), c.transpose(0, 1)], dim=1).reshape(h.shape[1], -1).numpy().copy()


def _distribution(model: BaseAlgorithm, obs: np.ndarray, state: np.ndarray | None) -> tuple[Any, np.ndarray]:
    """SB3's action distribution for ``obs`` in ``state`` (None: zeros; one observation becomes a batch of one) and
    the next state, without gradients."""
    policy = model.policy
    with torch.no_grad():
        obs_t, _ = policy.obs_to_tensor(np.asarray(obs))
        if state is None or len(state) != len(obs_t):
            state = np.zeros((len(obs_t), state_size(model)), np.float32)
        starts = torch.zeros(len(state))  # the lab zeroes a state when its episode starts
        dist, (h, c) = policy.get_distribution(obs_t, _unpack(model, state), starts)
    return dist, _pack(h, c)


def distribution_step(model: BaseAlgorithm, obs: np.ndarray, state: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The teacher's distribution parameters (logits, or a Gaussian's [mean, log_std]) for ``obs`` in ``state``,
    and its next state."""
    dist, nxt = _distribution(model, obs, state)
    inner = dist.distribution
    if isinstance(inner, torch.distributions.Normal):
        params = torch.cat([inner.loc, inner.scale.log()], dim=-1)
    else:
        params = inner.logits
    return params.float().cpu(), nxt


class RecurrentActor:
    """Greedy acting through the policy's own torch forward, carrying its state from call to call (timing)."""

    runtime = "torch"

    def __init__(self, model: BaseAlgorithm) -> None:
        self.model = model
        self.macs: int | None = None
        self.state: np.ndarray | None = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        policy = self.model.policy
        dist, self.state = _distribution(self.model, obs, self.state)  # another batch size starts from zeros
        with torch.no_grad():
            actions = dist.get_actions(deterministic=True).cpu().numpy()
        out = actions.reshape(-1, *policy.action_space.shape)
        if hasattr(policy.action_space, "low"):
            return np.clip(out, policy.action_space.low, policy.action_space.high)
        return out
