"""Saved SB3 teachers as one joint policy, and the action distributions distillation learns from.

PPO's distribution comes from the public ``policy.get_distribution``; DQN's is softmax(Q/tau) from
``policy.q_net`` (Rusu et al. 2015 found tau ~ 0.01 best), returned as logits Q/tau.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from marl_distill.errors import UserError
from marl_distill.io import read_json
from marl_distill.multiagent import EnvSpec
from marl_distill.teachers.train import ALGOS, MANIFEST


def teacher_logits(model: BaseAlgorithm, obs: np.ndarray, dqn_temperature: float = 0.01) -> torch.Tensor:
    """Action logits of one SB3 model for a batch of observations."""
    with torch.no_grad():
        obs_t, _ = model.policy.obs_to_tensor(obs)
        if isinstance(model, DQN):
            return (model.policy.q_net(obs_t) / dqn_temperature).float().cpu()
        if isinstance(model, (PPO, MaskablePPO)):  # masks are applied by whoever acts, from the env's own
            dist = model.policy.get_distribution(obs_t).distribution
            if isinstance(dist, torch.distributions.Normal):  # diagonal Gaussian: [mean, log_std]
                return torch.cat([dist.loc, dist.scale.log()], dim=-1).float().cpu()
            return dist.logits.float().cpu()
    raise TypeError(f"no action distribution for {type(model).__name__}")


def acting_params(model: BaseAlgorithm) -> int:
    """Parameters used to act: PPO's actor path (features, policy MLP, action head), DQN's Q-network."""
    policy = model.policy
    if isinstance(model, DQN):
        modules = [policy.q_net]
    else:
        modules = [policy.pi_features_extractor, policy.mlp_extractor.policy_net, policy.action_net]
    count = sum(p.numel() for m in modules for p in m.parameters())
    log_std = getattr(policy, "log_std", None)  # a Gaussian actor's state-independent std
    return count + (log_std.numel() if isinstance(log_std, torch.nn.Parameter) else 0)


class TeacherTeam:
    """One SB3 model per agent (the same model may serve several agents) as a joint policy."""

    def __init__(
        self,
        spec: EnvSpec,
        models: Mapping[str, BaseAlgorithm],
        *,
        deterministic: bool = True,
        dqn_temperature: float = 0.01,
    ) -> None:
        missing = sorted(set(spec.agents) - set(models))
        if missing:
            raise UserError(f"no teacher for agents {missing}; train teachers for every agent of the env")
        self.spec = spec
        self.models = dict(models)
        self.deterministic = deterministic
        self.dqn_temperature = dqn_temperature

    @classmethod
    def load(cls, run_dir: Path, spec: EnvSpec, **kwargs: object) -> TeacherTeam:
        """Open ``run_dir/teachers/AGENT.zip`` with plain ``PPO.load`` / ``DQN.load``."""
        manifest_path = Path(run_dir) / "teachers" / MANIFEST
        if not manifest_path.exists():
            raise UserError(f"no teachers in {run_dir} (missing teachers/{MANIFEST}); run train-teachers first")
        manifest = read_json(manifest_path)
        models = {
            agent: ALGOS[entry["algo"]].load(manifest_path.parent / entry["file"], device="cpu")
            for agent, entry in manifest["agents"].items()
        }
        return cls(spec, models, **kwargs)  # type: ignore[arg-type]

    def logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {a: teacher_logits(self.models[a], o, self.dqn_temperature) for a, o in obs.items()}

    def logit_scale(self, agent: str) -> float:
        """Factor from ``logits`` back to the model's own outputs: tau for DQN (logits are Q/tau), else 1."""
        return self.dqn_temperature if isinstance(self.models[agent], DQN) else 1.0

    def acting_params(self) -> int:
        """Summed over agents; a model shared by several agents counts once."""
        unique = {id(m): m for m in self.models.values()}
        return sum(acting_params(m) for m in unique.values())

    def act_single(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One observation per agent -> actions, the way a user deploys SB3 teachers (``predict``)."""
        return {a: self.models[a].predict(o, deterministic=True)[0] for a, o in obs.items()}
