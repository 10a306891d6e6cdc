"""Students that start from their teachers' weights (issue: optional initialisation when shapes allow).

Only a per-agent student can copy a teacher: its MLP has the teacher actor's shape when ``hidden`` equals the
PPO policy's ``net_arch`` for pi and both use tanh. The copy makes the student act exactly like its teacher
before any fitting, so distillation then fine-tunes rather than starts from scratch. A shared student has no
single teacher to copy (its input carries padding and the agent id), so it always starts fresh.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from marl_distill.errors import UserError
from marl_distill.students import StudentNet


def _linears(seq: nn.Module) -> list[nn.Linear]:
    return [m for m in seq.modules() if isinstance(m, nn.Linear)]


def warm_start(net: StudentNet, models: Mapping[str, BaseAlgorithm] | None) -> None:
    """Copy each agent's PPO actor (trunk, action head, and a Gaussian's log_std) into its per-agent student."""
    if net.meta.kind != "per-agent":
        raise UserError("distill.init_from_teacher needs per-agent students (a shared one has no single teacher)")
    if models is None:
        raise UserError("distill.init_from_teacher needs one teacher run, not an ensemble of runs")
    for i, agent in enumerate(net.meta.agents):
        model = models[agent]
        if not isinstance(model, (PPO, MaskablePPO)):
            raise UserError(f"init_from_teacher copies PPO actors; {agent}'s teacher is {type(model).__name__}")
        trunk = model.policy.mlp_extractor.policy_net
        widths = [m.out_features for m in _linears(trunk)]
        tanh = all(isinstance(m, nn.Tanh) for m in trunk if not isinstance(m, nn.Linear))
        in_dim = _linears(trunk)[0].in_features if widths else None
        if widths != net.meta.hidden or not tanh or in_dim != net.meta.obs_dims[agent]:
            raise UserError(
                f"{agent}'s teacher actor has hidden sizes {widths}{'' if tanh else ' (not tanh)'}; "
                f"set distill.hidden = {widths} to start from it, or turn init_from_teacher off"
            )
        student = _linears(net.nets[str(i)])
        head = model.policy.action_net
        with torch.no_grad():
            for mine, theirs in zip(student[:-1], _linears(trunk)):
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
            last, k = student[-1], head.out_features
            last.weight[:k].copy_(head.weight)
            last.bias[:k].copy_(head.bias)
            if last.out_features > k:  # Gaussian [mean, log_std]: the teacher's std is state-independent
                last.weight[k:].zero_()
                last.bias[k:].copy_(model.policy.log_std)
