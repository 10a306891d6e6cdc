"""The numpy runtime for recurrent students: optional MLP layers, one GRU cell, a linear head.

The same float32 arithmetic as ``torch.nn.GRUCell`` (gates in torch's order: reset, update, new), so a student acts
through numpy as it was fitted through torch, and its latency compares with the MLPs' (``numpy_mlp``) like for like.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from marl_distill.policy.numpy_mlp import NumpyMLP, Unsupported


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


class NumpyGRU:
    """``pre`` (an MLP, or None), a GRU cell of ``size`` units and ``head``, run on (batch, in_dim) rows with a
    (batch, size) hidden state."""

    def __init__(self, pre: NumpyMLP | None, cell: nn.GRUCell, head: NumpyMLP) -> None:
        if cell.weight_ih.dtype.is_floating_point is False or cell.weight_ih.device.type != "cpu":
            raise Unsupported(f"GRU weights of dtype {cell.weight_ih.dtype} on {cell.weight_ih.device}")
        if cell.bias_ih is None:
            raise Unsupported("a GRU cell without biases")
        self.pre, self.head = pre, head
        self.size = int(cell.hidden_size)
        # views sharing the tensors' memory: training and load_state_dict stay visible, as in NumpyMLP
        self.w_ih, self.w_hh = cell.weight_ih.detach().numpy().T, cell.weight_hh.detach().numpy().T
        self.b_ih, self.b_hh = cell.bias_ih.detach().numpy(), cell.bias_hh.detach().numpy()

    def cell(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """One GRU step: the next hidden state for inputs ``x`` and states ``h``."""
        gi = x @ self.w_ih + self.b_ih
        gh = h @ self.w_hh + self.b_hh
        s = self.size
        r = _sigmoid(gi[:, :s] + gh[:, :s])
        z = _sigmoid(gi[:, s : 2 * s] + gh[:, s : 2 * s])
        n = np.tanh(gi[:, 2 * s :] + r * gh[:, 2 * s :])
        return (1 - z) * n + z * h

    def __call__(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(outputs, next hidden state) for one step of ``x`` from states ``h``."""
        if self.pre is not None:
            x = self.pre(x)
        h = self.cell(x, h).astype(np.float32, copy=False)
        return self.head(h), h

    @property
    def in_dim(self) -> int:
        return self.pre.in_dim if self.pre is not None else int(self.w_ih.shape[0])

    @property
    def macs(self) -> int:
        """Multiply-accumulates per row and step: the MLP layers, both GRU products (3 gates each), the head."""
        gru = int(self.w_ih.size + self.w_hh.size)
        return (self.pre.macs if self.pre is not None else 0) + gru + self.head.macs
