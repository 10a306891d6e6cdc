"""The recurrent student's network: MLP layers, one GRU cell, a linear head (``distill.arch = "gru"``).

``hidden = [..., H]``: every width but the last is a tanh layer before the cell, the last is the cell's size, so
``[32]`` is a 32-unit GRU reading the observation directly and ``[64, 32]`` puts a 64-unit layer before it. One
step at a time (``nn.GRUCell``): fitting steps through a chunk so an agent that does not act keeps its state, as
it does while acting.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from marl_distill.policy.numpy_gru import NumpyGRU
from marl_distill.policy.numpy_mlp import NumpyMLP

ARCHS = ("mlp", "gru")


class GRUNet(nn.Module):
    """(inputs, state) -> (outputs, next state) for one step of a batch of rows."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden[:-1]:
            layers += [nn.Linear(in_dim, width), nn.Tanh()]
            in_dim = width
        self.pre = nn.Sequential(*layers)
        self.cell = nn.GRUCell(in_dim, hidden[-1])
        self.head = nn.Linear(hidden[-1], out_dim)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.cell(self.pre(x), h)
        return self.head(h), h

    def numpy(self) -> NumpyGRU:
        """The same weights in the numpy runtime (sharing their memory)."""
        return NumpyGRU(NumpyMLP.of(self.pre) if len(self.pre) else None, self.cell, NumpyMLP.of(self.head))
