"""Pruning: structured pruning drops the weakest hidden units and nothing else; magnitude pruning zeroes exactly
the smallest weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from worlds import TargetGame

from marl_distill.compress.prune import magnitude, nonzero_params, structured
from marl_distill.errors import UserError
from marl_distill.policy.spec import EnvSpec
from marl_distill.students import StudentMeta, StudentNet, StudentTeam

SPEC = EnvSpec.of(TargetGame(n_agents=3))


def _obs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {a: rng.normal(size=(32, SPEC.obs_dim(a))).astype(np.float32) for a in SPEC.agents}


@pytest.mark.parametrize("kind", ["shared", "per-agent"])
def test_structured_pruning_removes_only_dead_units(kind: str) -> None:
    torch.manual_seed(0)
    net = StudentNet(StudentMeta.for_spec(SPEC, kind, [6, 5]))
    obs = _obs(np.random.default_rng(0))
    full = StudentTeam(SPEC, structured(net, [6, 5])).logits(obs)  # every unit kept: the same network
    for a, lg in StudentTeam(SPEC, net).logits(obs).items():
        torch.testing.assert_close(full[a], lg, rtol=0, atol=0)
    mlps = [net.shared] if kind == "shared" else list(net.nets.values())
    with torch.no_grad():  # units 1 and 4 of layer 1, unit 0 of layer 2: no incoming weights, tanh(0) = 0
        for mlp in mlps:
            mlp[0].weight[[1, 4]] = 0.0
            mlp[0].bias[[1, 4]] = 0.0
            mlp[2].weight[0] = 0.0
            mlp[2].bias[0] = 0.0
    small = structured(net, [4, 4])
    assert small.meta.hidden == [4, 4]
    kept = StudentTeam(SPEC, small).logits(obs)
    for a, lg in StudentTeam(SPEC, net).logits(obs).items():
        torch.testing.assert_close(kept[a], lg, rtol=1e-6, atol=1e-6)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())
    with pytest.raises(UserError, match="keep the depth"):
        structured(net, [4])


def test_magnitude_pruning_zeroes_the_smallest_weights_of_every_matrix() -> None:
    torch.manual_seed(1)
    net = StudentNet(StudentMeta.for_spec(SPEC, "per-agent", [10]))
    sparse = magnitude(net, 0.5)
    zeroed = 0
    for before, after in zip(net.parameters(), sparse.parameters()):
        if before.dim() == 2:  # weights: half of each matrix, the smallest |w|, are zero; the rest unchanged
            n = before.numel() // 2 if before.numel() % 2 == 0 else round(0.5 * before.numel())
            assert int((after == 0).sum()) == n
            kept = after != 0
            assert torch.equal(after[kept], before[kept])
            assert before[~kept].abs().max() <= before[kept].abs().min()
            zeroed += n
        else:
            assert torch.equal(before, after)
    assert nonzero_params(sparse) == nonzero_params(net) - zeroed
