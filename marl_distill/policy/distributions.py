"""Action distributions as flat parameter tensors, one class per kind of action space.

Every policy hands back, per agent, a ``(batch, size)`` tensor of distribution parameters: logits for a
Discrete space, ``[mean, log_std]`` for a Box space (a diagonal Gaussian, as SB3's PPO uses). These classes
say how to act from them, compare two of them (KL, agreement, action MSE) and distill one into another.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F


class Categorical:
    """Discrete actions; parameters are logits."""

    kind = "categorical"

    def __init__(self, n: int) -> None:
        self.n = n
        self.size = n

    def act(self, params: torch.Tensor | np.ndarray, deterministic: bool, rng: np.random.Generator) -> np.ndarray:
        logits = np.asarray(params)
        if deterministic:
            return logits.argmax(axis=-1)
        return (logits + rng.gumbel(size=logits.shape).astype(np.float32)).argmax(axis=-1)

    def kl(self, p: torch.Tensor, q: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Row-wise KL(softmax(p/T) || softmax(q/T))."""
        log_p = F.log_softmax(p / temperature, dim=-1)
        log_q = F.log_softmax(q / temperature, dim=-1)
        return (log_p.exp() * (log_p - log_q)).sum(dim=-1)

    def agree(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Row-wise: do the two argmax actions coincide?"""
        return p.argmax(dim=-1) == q.argmax(dim=-1)

    def uniform(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.n)

    def average(self, members: list[torch.Tensor]) -> torch.Tensor:
        """Logits of the mean of the members' probabilities (an equal-weight mixture)."""
        probs = torch.stack([F.softmax(m, dim=-1) for m in members]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-12))


class DiagGaussian:
    """Box actions; parameters are ``[mean, log_std]``; actions are clipped to the space's bounds."""

    kind = "gaussian"

    def __init__(self, space: gym.spaces.Box) -> None:
        self.shape = space.shape
        self.dim = int(np.prod(space.shape))
        self.size = 2 * self.dim
        self.low = np.broadcast_to(space.low, space.shape).reshape(-1).astype(np.float32)
        self.high = np.broadcast_to(space.high, space.shape).reshape(-1).astype(np.float32)

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return params[:, : self.dim], params[:, self.dim :]

    def act(self, params: torch.Tensor | np.ndarray, deterministic: bool, rng: np.random.Generator) -> np.ndarray:
        flat = np.asarray(params)
        mean, log_std = flat[:, : self.dim], flat[:, self.dim :]
        action = mean if deterministic else mean + np.exp(log_std) * rng.standard_normal(mean.shape)
        return np.clip(action, self.low, self.high).astype(np.float32).reshape(len(mean), *self.shape)

    def kl(self, p: torch.Tensor, q: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Row-wise KL(N_p || N_q) summed over action dimensions (temperature does not apply)."""
        mp, lp = self.split(p)
        mq, lq = self.split(q)
        return (lq - lp + (torch.exp(2 * lp) + (mp - mq) ** 2) / (2 * torch.exp(2 * lq)) - 0.5).sum(dim=-1)

    def action_mse(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Row-wise mean squared difference of the deterministic (clipped mean) actions."""
        low, high = torch.as_tensor(self.low), torch.as_tensor(self.high)
        a = torch.clamp(self.split(p)[0], low, high)
        b = torch.clamp(self.split(q)[0], low, high)
        return ((a - b) ** 2).mean(dim=-1)

    def average(self, members: list[torch.Tensor]) -> torch.Tensor:
        """The Gaussian matching the mean and variance of the members' equal-weight mixture."""
        means = torch.stack([self.split(m)[0] for m in members])
        variances = torch.stack([torch.exp(2 * self.split(m)[1]) for m in members])
        mean = means.mean(dim=0)
        var = (variances + means**2).mean(dim=0) - mean**2
        return torch.cat([mean, 0.5 * torch.log(var.clamp_min(1e-12))], dim=-1)

    def uniform(self, batch: int) -> torch.Tensor:
        """A wide Gaussian centred in the box: the random baseline for continuous actions. A dimension with no
        finite bound gets N(0, 1); one bounded on one side only, N(bound +- 1, 1) inside it (never NaN or inf)."""
        lo_ok, hi_ok = np.isfinite(self.low), np.isfinite(self.high)
        low = np.where(lo_ok, self.low, 0.0).astype(np.float64)  # finite stand-ins where a bound is missing
        high = np.where(hi_ok, self.high, 0.0).astype(np.float64)
        both = lo_ok & hi_ok
        centre = np.select([both, lo_ok, hi_ok], [(low + high) / 2, low + 1.0, high - 1.0], 0.0)
        half = np.where(both, (high - low) / 2, 1.0)
        log_std = np.log(np.clip(half, 1e-6, np.finfo(np.float32).max))
        return torch.as_tensor(np.concatenate([centre, log_std]), dtype=torch.float32).repeat(batch, 1)


Head = Categorical | DiagGaussian

MASKED_LOGIT = -1e9
"""Logit given to illegal actions: finite, so KL and MSE stay defined, and far below any real logit."""


def apply_mask(logits: torch.Tensor, mask: np.ndarray | torch.Tensor | None) -> torch.Tensor:
    """Illegal actions (mask False) get ``MASKED_LOGIT``: no argmax or sample can pick them."""
    if mask is None:
        return logits
    return torch.where(torch.as_tensor(mask, dtype=torch.bool), logits, torch.full_like(logits, MASKED_LOGIT))


def head_for(space: gym.Space) -> Head:
    if isinstance(space, gym.spaces.Discrete):
        return Categorical(int(space.n))
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return DiagGaussian(space)
    raise ValueError(f"no action distribution for {space}")
