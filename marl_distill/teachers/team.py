"""Saved SB3 teachers as one joint policy, and the action distributions distillation learns from.

PPO's distribution comes from the public ``policy.get_distribution``; DQN's is softmax(Q/tau) from
``policy.q_net`` (Rusu et al. 2015 found tau ~ 0.01 best), returned as logits Q/tau.

Acting (``act_single`` / ``act_batch``) runs each teacher's actor network through the same numpy runtime as the
students (``marl_distill.policy.numpy_mlp``), so latencies compare networks, not runtimes; ``act_single_sb3`` is what an
SB3 user pays through ``predict``. A model the numpy reader cannot reproduce exactly acts through a torch forward
pass instead, and ``acting_runtime`` says so.

RecurrentPPO teachers (``teachers.recurrent``) carry an LSTM state per agent: the team then is recurrent
(``policy.memory``), acts through torch, and its memoryless agents (a team may mix algorithms) carry nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import CategoricalDistribution, DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork

from marl_distill.errors import UserError
from marl_distill.policy.memory import State
from marl_distill.policy.numpy_mlp import NumpyMLP, Unsupported
from marl_distill.policy.spec import EnvSpec
from marl_distill.teachers.config import ALGOS
from marl_distill.teachers.recurrent import RecurrentActor, distribution_step, is_recurrent_model, state_size
from marl_distill.teachers.train import MANIFEST
from marl_distill.utils.files import read_json


def teacher_logits(model: BaseAlgorithm, obs: np.ndarray, dqn_temperature: float = 0.01) -> torch.Tensor:
    """Action logits of one SB3 model for a batch of observations."""
    if is_recurrent_model(model):
        raise TypeError(f"{type(model).__name__} needs its LSTM state: use teachers.recurrent.distribution_step")
    with torch.no_grad():
        obs_t, _ = model.policy.obs_to_tensor(obs)
        if isinstance(model, DQN):
            return (model.policy.q_net(obs_t) / dqn_temperature).float().cpu()
        policy = model.policy
        if (
            type(model) is PPO
            and isinstance(policy.action_dist, CategoricalDistribution)
            and type(policy).get_distribution is ActorCriticPolicy.get_distribution  # no custom override to skip
        ):
            # get_distribution's own steps, without building (and validating) a torch Categorical: its logits are
            # exactly action_net(latent) - logsumexp
            features = BaseModel.extract_features(policy, obs_t, policy.pi_features_extractor)
            logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
            return (logits - logits.logsumexp(dim=-1, keepdim=True)).float().cpu()
        if isinstance(model, (PPO, MaskablePPO)):  # masks are applied by whoever acts, from the env's own
            dist = policy.get_distribution(obs_t).distribution
            if isinstance(dist, torch.distributions.Normal):  # diagonal Gaussian: [mean, log_std]
                return torch.cat([dist.loc, dist.scale.log()], dim=-1).float().cpu()
            return dist.logits.float().cpu()
    raise TypeError(f"no action distribution for {type(model).__name__}")


def _acting_tensors(model: BaseAlgorithm) -> list[torch.Tensor]:
    """Parameters used to act: PPO's actor path (features, policy MLP, action head), DQN's Q-network."""
    policy = model.policy
    if isinstance(model, DQN):
        modules = [policy.q_net]
    elif is_recurrent_model(model):
        modules = [policy.pi_features_extractor, policy.lstm_actor, policy.mlp_extractor.policy_net, policy.action_net]
    else:
        modules = [policy.pi_features_extractor, policy.mlp_extractor.policy_net, policy.action_net]
    tensors = [p for m in modules for p in m.parameters()]
    log_std = getattr(policy, "log_std", None)  # a Gaussian actor's state-independent std
    return tensors + ([log_std] if isinstance(log_std, torch.nn.Parameter) else [])


def acting_params(model: BaseAlgorithm) -> int:
    """Parameters used to act: PPO's actor path (features, policy MLP, action head), DQN's Q-network."""
    return sum(p.numel() for p in _acting_tensors(model))


def acting_weight_bytes(model: BaseAlgorithm) -> int:
    """Bytes of ``acting_params``'s tensors at their stored precision."""
    return sum(p.numel() * p.element_size() for p in _acting_tensors(model))


class NumpyActor:
    """``model.predict(obs, deterministic=True)`` of a flatten + MLP SB3 policy, through the numpy runtime.

    Raises ``Unsupported`` (the fallback's reason) for anything it would not reproduce exactly: other extractors
    (CNN, dict), policy subclasses, gSDE or squashed actions, non-Box observations."""

    runtime = "numpy"

    def __init__(self, model: BaseAlgorithm) -> None:
        policy = model.policy
        obs_space, act_space = policy.observation_space, policy.action_space
        if not isinstance(obs_space, gym.spaces.Box):
            raise Unsupported(f"observation space {type(obs_space).__name__} (numpy reads Box observations)")
        self.obs_shape = tuple(obs_space.shape)
        # SB3's preprocess_obs for a Box: a float cast, and /255 for an image space when normalize_images is set
        self.image = bool(policy.normalize_images and is_image_space(obs_space))
        if isinstance(model, DQN) and type(policy) is DQNPolicy and type(policy.q_net) is QNetwork:
            extractor, nets = policy.q_net.features_extractor, (policy.q_net.q_net,)
        elif isinstance(model, (PPO, MaskablePPO)) and type(policy) in (ActorCriticPolicy, MaskableActorCriticPolicy):
            if type(policy.mlp_extractor) is not MlpExtractor:
                raise Unsupported(f"mlp_extractor {type(policy.mlp_extractor).__name__}")
            if not isinstance(policy.action_dist, (CategoricalDistribution, MaskableCategoricalDistribution)) and not (
                isinstance(policy.action_dist, DiagGaussianDistribution) and not policy.squash_output
            ):
                raise Unsupported(f"action distribution {type(policy.action_dist).__name__}")
            extractor, nets = policy.pi_features_extractor, (policy.mlp_extractor.policy_net, policy.action_net)
        else:
            raise Unsupported(f"policy {type(policy).__name__} of {type(model).__name__}")
        if type(extractor) is not FlattenExtractor:
            raise Unsupported(f"features extractor {type(extractor).__name__} (numpy reads a flatten)")
        self.mlp = NumpyMLP.of(*nets)
        if self.mlp.in_dim != int(np.prod(self.obs_shape)):
            raise Unsupported(f"first Linear takes {self.mlp.in_dim} inputs, observations have {self.obs_shape}")
        self.macs: int | None = self.mlp.macs
        self.box = isinstance(act_space, gym.spaces.Box)
        if self.box:  # the deterministic action is the Gaussian's mean, clipped to the box as predict does
            self.low, self.high = act_space.low, act_space.high
        self.act_shape = tuple(act_space.shape)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """``(batch, *obs_shape)`` observations -> ``(batch, *action_shape)`` actions."""
        x = np.asarray(obs, dtype=np.float32).reshape(-1, self.mlp.in_dim)
        if self.image:
            x = x / np.float32(255.0)
        out = self.mlp(x)
        if self.box:
            return np.clip(out, self.low, self.high).reshape(-1, *self.act_shape)
        return out.argmax(axis=1)


class TorchActor:
    """The fallback: the policy's own torch forward (``get_distribution`` / ``q_net``) under no_grad, then
    ``predict``'s own post-processing (clip, or unscale a squashed action)."""

    runtime = "torch"

    def __init__(self, model: BaseAlgorithm) -> None:
        self.model = model
        self.macs: int | None = None  # the walker could not read the path, so it cannot count it either

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        policy = self.model.policy
        with torch.no_grad():
            obs_t, _ = policy.obs_to_tensor(np.asarray(obs))
            if isinstance(self.model, DQN):
                actions = policy.q_net(obs_t).argmax(dim=1)
            else:
                actions = policy.get_distribution(obs_t).get_actions(deterministic=True)
        out = actions.cpu().numpy().reshape(-1, *policy.action_space.shape)
        if isinstance(policy.action_space, gym.spaces.Box):
            if policy.squash_output:
                return policy.unscale_action(out)
            return np.clip(out, policy.action_space.low, policy.action_space.high)
        return out


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
        self.actors, self.acting_runtime = _actors(self.models)
        self._lstm = {a: m for a, m in self.models.items() if is_recurrent_model(m)}
        self.recurrent = bool(self._lstm)
        self._sb3_state: dict[str, tuple] = {}

    @classmethod
    def load(cls, run_dir: Path, spec: EnvSpec, **kwargs: object) -> TeacherTeam:
        """Open ``run_dir/teachers/AGENT.zip`` with plain ``PPO.load`` / ``DQN.load``."""
        manifest_path = Path(run_dir) / "teachers" / MANIFEST
        if not manifest_path.exists():
            raise UserError(f"no teachers in {run_dir} (missing teachers/{MANIFEST}); run train-teachers first")
        try:
            listed = read_json(manifest_path)["agents"]
            entries = {agent: (entry["algo"], entry["file"]) for agent, entry in listed.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            msg = f"{manifest_path} is damaged ({type(exc).__name__}); restore it or train the teachers again"
            raise UserError(msg) from None
        models = {agent: _load_model(algo, manifest_path.parent / file) for agent, (algo, file) in entries.items()}
        for agent, model in models.items():  # a view of another size than the one trained on: one line, not SB3's
            space = model.observation_space
            if agent in spec.observation_spaces and isinstance(space, gym.spaces.Box):
                want = int(np.prod(space.shape))
                if want != spec.obs_dim(agent):
                    raise UserError(
                        f"teacher {agent!r} in {run_dir} was trained on observations of size {want}, the env's teacher "
                        f"view gives {spec.obs_dim(agent)}; use the env settings and view it was trained with"
                    )
        return cls(spec, models, **kwargs)  # type: ignore[arg-type]

    def logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {a: teacher_logits(self.models[a], o, self.dqn_temperature) for a, o in obs.items()}

    def initial_state(self, n: int) -> State:
        """Zero LSTM states for ``n`` env copies, for the agents whose teacher is recurrent."""
        return {a: np.zeros((n, state_size(m)), np.float32) for a, m in self._lstm.items()}

    def step(self, obs: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]) -> tuple[dict, State]:
        """Distribution parameters for every agent in ``obs`` and the next states of the recurrent ones."""
        out, nxt = {}, {}
        for a, o in obs.items():
            if a in self._lstm:
                out[a], nxt[a] = distribution_step(self._lstm[a], o, state[a])
            else:
                out[a] = teacher_logits(self.models[a], o, self.dqn_temperature)
        return out, nxt

    def logit_scale(self, agent: str) -> float:
        """Factor from ``logits`` back to the model's own outputs: tau for DQN (logits are Q/tau), else 1."""
        return self.dqn_temperature if isinstance(self.models[agent], DQN) else 1.0

    def acting_params(self) -> int:
        """Summed over agents; a model shared by several agents counts once."""
        unique = {id(m): m for m in self.models.values()}
        return sum(acting_params(m) for m in unique.values())

    def weight_bytes(self) -> int:
        """Bytes of the acting parameters at their stored precision; a shared model counts once."""
        unique = {id(m): m for m in self.models.values()}
        return sum(acting_weight_bytes(m) for m in unique.values())

    def acting_macs(self) -> int | None:
        """Multiply-accumulates per joint step: each agent's actor runs once (a shared model once per agent);
        None when a model acts through the torch fallback (its path was not read)."""
        macs = [self.actors[a].macs for a in self.spec.agents]
        return None if any(m is None for m in macs) else sum(macs)  # type: ignore[misc]

    def act_single(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One observation per agent -> greedy actions through the acting runtime (numpy, like the students)."""
        return {a: self.actors[a](o)[0] for a, o in obs.items()}

    def act_batch(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A batch of observations per agent -> greedy actions, each agent's batch as one matrix per layer."""
        return {a: self.actors[a](o) for a, o in obs.items()}

    def act_single_sb3(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One observation per agent -> actions, the way a user deploys SB3 teachers (``predict``; a recurrent one
        passes its state back in, as its users do)."""
        out = {}
        for a, o in obs.items():
            if a in self._lstm:
                out[a], self._sb3_state[a] = self.models[a].predict(o, state=self._sb3_state.get(a), deterministic=True)
            else:
                out[a] = self.models[a].predict(o, deterministic=True)[0]
        return out


def _load_model(algo: str, path: Path) -> BaseAlgorithm:
    """``ALGO.load(path)``, with a missing or damaged file refused in one line instead of SB3's traceback."""
    if algo not in ALGOS:
        raise UserError(f"{path.parent / MANIFEST} names algo {algo!r}; this version knows {sorted(ALGOS)}")
    if not path.is_file():
        raise UserError(f"teacher file {path} is missing; restore it or train the teachers again (train-teachers)")
    try:
        return ALGOS[algo].load(path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - SB3 raises ValueError, BadZipFile, KeyError, ... for a damaged zip
        reason = " ".join(str(exc).split())[:200]
        raise UserError(
            f"{path} could not be opened by {ALGOS[algo].__name__}.load ({type(exc).__name__}: {reason}); the file "
            "is damaged, not an SB3 zip, or from an incompatible SB3/torch: restore it or train the teachers again"
        ) from None


def _actors(models: Mapping[str, BaseAlgorithm]) -> tuple[dict[str, NumpyActor | TorchActor], str]:
    """Every agent's acting path and the runtime's label: numpy for all, or torch for all when any model cannot
    be read (so one team's latency never mixes runtimes)."""
    reasons = {}
    actors: dict[str, NumpyActor | TorchActor] = {}
    for agent, model in models.items():
        try:
            actors[agent] = NumpyActor(model)
        except Unsupported as err:
            reasons[agent] = str(err)
    if not reasons:
        return actors, "numpy"
    why = "; ".join(f"{a}: {r}" for a, r in reasons.items())
    fallback = {a: RecurrentActor(m) if is_recurrent_model(m) else TorchActor(m) for a, m in models.items()}
    return fallback, f"torch (fallback: {why})"
