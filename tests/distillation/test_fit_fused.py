"""One pass for every agent's rows (``StudentNet.fused``, ``fit(joint_loss=...)``) fits the student that one pass per
agent fits: same draws, same steps, weights equal up to float rounding, for shared and per-agent students."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from marl_distill.distillation.collect import Dataset
from marl_distill.distillation.fit import fit
from marl_distill.distillation.losses import make_loss
from marl_distill.policy.distributions import Categorical
from marl_distill.students.mlp import StudentMeta, StudentNet

AGENTS = ["agent_0", "agent_1", "agent_2"]


@pytest.mark.parametrize(
    "loss",
    [("kl", 2.0, 1.0), ("kl", 1.0, 0.5), ("ce", 1.0, 1.0), ("mse", 1.0, 1.0)],
    ids=["kl T=2", "kl+ce", "ce", "mse"],
)
@pytest.mark.parametrize("kind", ["shared", "per-agent"])
def test_a_fused_fit_takes_the_steps_a_per_agent_fit_takes(kind, loss):
    rng = np.random.default_rng(0)
    data = Dataset(
        {a: rng.normal(size=(600, 7)).astype(np.float32) for a in AGENTS},
        {a: torch.from_numpy(rng.normal(size=(600, 4)).astype(np.float32) * 3) for a in AGENTS},
    )
    torch.manual_seed(0)
    start = StudentNet(StudentMeta(kind, AGENTS, dict.fromkeys(AGENTS, 7), dict.fromkeys(AGENTS, 4), [16, 16]))
    assert start.can_fuse()
    loss = make_loss(loss[0], temperature=loss[1], alpha=loss[2])
    fitted = {}
    for fused in (False, True):
        net = copy.deepcopy(start)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        done = fit(net, data, None, dict.fromkeys(AGENTS, loss), dict.fromkeys(AGENTS, Categorical(4)), opt,
            steps=60, chunk=20, batch_size=64, patience=0, rng=np.random.default_rng(1),
            joint_loss=loss if fused else None)  # fmt: skip
        assert done.fused == fused
        fitted[fused] = net.state_dict()
    moved = max(float((fitted[True][k] - start.state_dict()[k]).abs().max()) for k in fitted[True])
    assert moved > 1e-2, "the fit changed the weights"
    for k, w in fitted[False].items():
        assert torch.allclose(fitted[True][k], w, atol=1e-5), k
