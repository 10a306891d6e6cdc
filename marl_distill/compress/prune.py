"""Pruning trained students: structured (drop whole hidden units, then a short distillation fine-tune) and
magnitude (zero the smallest weights, counted by their non-zero parameters).

Structured pruning keeps, in every hidden layer of every MLP, the units whose incoming weights (row of W with its
bias) have the largest L2 norm (Li et al. 2017's filter-norm criterion), and the next layer keeps the matching
columns: the result is an ordinary, smaller ``StudentNet`` that saves, exports and acts like any other. Magnitude
pruning keeps the architecture and zeroes the smallest |w| of every weight matrix (biases kept, Han et al. 2015);
dense runtimes gain nothing from it, so it is reported with its non-zero count, not its bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from marl_distill.errors import UserError
from marl_distill.students import StudentNet


def _mlps(net: StudentNet) -> list[nn.Sequential]:
    if net.recurrent:
        raise UserError("pruning applies to mlp students; this one is recurrent (distill.arch = 'gru')")
    return [net.shared] if net.meta.kind == "shared" else list(net.nets.values())


def _linears(mlp: nn.Sequential) -> list[nn.Linear]:
    return [m for m in mlp if isinstance(m, nn.Linear)]


@torch.no_grad()
def structured(net: StudentNet, hidden: Sequence[int]) -> StudentNet:
    """A copy of ``net`` with hidden widths ``hidden`` (same depth, each no wider than before), keeping the units
    of largest incoming-weight norm."""
    hidden = [int(h) for h in hidden]
    old = net.meta.hidden
    if len(hidden) != len(old) or any(not 1 <= h <= o for h, o in zip(hidden, old)):
        raise UserError(f"pruned widths {hidden} must keep the depth of {old} and be 1..{old} units per layer")
    small = StudentNet(dataclasses.replace(net.meta, hidden=hidden))
    for big_mlp, small_mlp in zip(_mlps(net), _mlps(small)):
        layers = list(zip(_linears(big_mlp), _linears(small_mlp)))
        keep_in = torch.arange(layers[0][0].in_features)
        for i, (big, little) in enumerate(layers):
            weight, bias = big.weight[:, keep_in], big.bias
            if i < len(hidden):
                norms = torch.linalg.vector_norm(torch.cat([weight, bias[:, None]], dim=1), dim=1)
                keep = torch.sort(torch.topk(norms, hidden[i]).indices).values  # units stay in their order
            else:
                keep = torch.arange(big.out_features)
            little.weight.copy_(weight[keep])
            little.bias.copy_(bias[keep])
            keep_in = keep
    return small.eval()


@torch.no_grad()
def magnitude(net: StudentNet, sparsity: float) -> StudentNet:
    """A copy of ``net`` with the ``sparsity`` fraction of smallest-|w| entries of every weight matrix zeroed."""
    if not 0 <= sparsity < 1:
        raise UserError(f"sparsity must be in [0, 1), got {sparsity}")
    out = StudentNet(net.meta)
    out.load_state_dict(net.state_dict())
    for mlp in _mlps(out):
        for layer in _linears(mlp):
            w = layer.weight
            n_zero = int(round(sparsity * w.numel()))
            if n_zero:
                cut = torch.argsort(w.abs().flatten())[:n_zero]
                w.view(-1)[cut] = 0.0
    return out.eval()


def nonzero_params(net: StudentNet) -> int:
    """Parameters that are not exactly zero (what a sparse format would store)."""
    return int(sum(torch.count_nonzero(p).item() for p in net.parameters()))
