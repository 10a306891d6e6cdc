"""Which network and head each agent of a team acts through: the input ``graph.build_model`` needs, read from
a student team or from the teachers' SB3 actors (through the same reader the numpy runtime uses)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN

from marl_distill.compress.graph import AgentPath
from marl_distill.env.joint_vec_env import make_parallel
from marl_distill.errors import UserError
from marl_distill.policy.distributions import Categorical
from marl_distill.policy.numpy_gru import NumpyGRU
from marl_distill.policy.numpy_mlp import NumpyMLP
from marl_distill.policy.observations import has_mask
from marl_distill.students import StudentTeam
from marl_distill.teachers import TeacherTeam
from marl_distill.teachers.team import NumpyActor

Team = StudentTeam | TeacherTeam


def raw_obs_spaces(factory: Callable[[], Any]) -> dict[str, gym.Space]:
    """The env's own observation spaces (the ``observation`` part where an action mask comes beside it): what a
    deployment feeds the graph."""
    env = make_parallel(factory)
    out = {}
    for agent in env.possible_agents:
        space = env.observation_space(agent)
        out[agent] = space["observation"] if has_mask(space) else space
    env.close()
    return out


def _start(space: gym.Space) -> int:
    return int(space.start) if isinstance(space, gym.spaces.Discrete) else 0


def student_paths(team: StudentTeam, raw: Mapping[str, gym.Space]) -> tuple[list[NumpyMLP | NumpyGRU], list[AgentPath]]:
    spec, meta, net = team.spec, team.meta, team.net
    paths = []
    state, nets = net.state_size, net.numpy_nets()
    if meta.kind == "shared":
        for i, a in enumerate(meta.agents):
            head = spec.head(a)
            kind = "logits" if isinstance(head, Categorical) else "gaussian"
            paths.append(
                AgentPath(a, raw[a], a in spec.masked, 0, head, kind, meta.n_actions[a], net.max_obs, i,
                          len(meta.agents), action_start=_start(spec.action_spaces[a]), state_size=state)
            )  # fmt: skip
        return nets, paths
    for i, a in enumerate(meta.agents):
        head = spec.head(a)
        kind = "logits" if isinstance(head, Categorical) else "gaussian"
        paths.append(
            AgentPath(a, raw[a], a in spec.masked, i, head, kind, meta.n_actions[a],
                      action_start=_start(spec.action_spaces[a]), state_size=state)
        )  # fmt: skip
    return nets, paths


def teacher_paths(team: TeacherTeam, raw: Mapping[str, gym.Space]) -> tuple[list[NumpyMLP], list[AgentPath]]:
    """Each SB3 actor once (a model serving several agents runs their rows together); refused, naming the agent
    and the reason, where the numpy reader could not read a model (the same models act through torch in the lab)."""
    if team.recurrent:  # every export path reads the teachers here
        raise UserError(
            "ONNX export of recurrent (recurrent_ppo) teachers is not available yet; export their students, which "
            "may be recurrent (gru) themselves"
        )
    spec = team.spec
    nets: list[NumpyMLP] = []
    index: dict[int, int] = {}
    paths = []
    for a in spec.agents:
        actor, model = team.actors[a], team.models[a]
        if not isinstance(actor, NumpyActor):
            raise UserError(f"the teacher of {a} cannot be exported ({team.acting_runtime}); export its students")
        if actor.image:
            raise UserError(f"the teacher of {a} rescales image observations itself; it cannot be exported")
        if id(model) not in index:
            index[id(model)] = len(nets)
            nets.append(actor.mlp)
        head = spec.head(a)
        log_std = None
        if isinstance(model, DQN):
            kind = "q_values"
        elif isinstance(head, Categorical):
            kind = "logits"
        else:
            kind = "gaussian_mean"
            log_std = model.policy.log_std.detach().cpu().numpy().astype(np.float32)
        size = head.size if kind != "gaussian_mean" else head.dim
        paths.append(
            AgentPath(a, raw[a], a in spec.masked, index[id(model)], head, kind, size, log_std=log_std,
                      action_start=_start(spec.action_spaces[a]))
        )  # fmt: skip
    return nets, paths


def team_paths(team: Team, raw: Mapping[str, gym.Space]) -> tuple[list[Any], list[AgentPath], str]:
    """(networks, per-agent paths, source label) of a student or teacher team."""
    if isinstance(team, StudentTeam):
        return (*student_paths(team, raw), f"student:{team.meta.kind}")
    if isinstance(team, TeacherTeam):
        return (*teacher_paths(team, raw), "teachers")
    raise UserError(f"{type(team).__name__} cannot be exported; export a student or the teachers")


def reference_params(team: Team, encoded: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The team's own torch outputs on encoded observations, in the graph's ``params`` units (Q-values, not Q/tau,
    for DQN teachers): what parity is checked against."""
    with torch.no_grad():
        if isinstance(team, StudentTeam):
            return {a: t.numpy() for a, t in team.net.joint_logits(encoded).items()}
        out = {}
        for a, obs in encoded.items():
            model = team.models[a]
            if isinstance(model, DQN):
                obs_t, _ = model.policy.obs_to_tensor(obs)
                out[a] = model.policy.q_net(obs_t).float().cpu().numpy()
            else:
                out[a] = team.logits({a: obs})[a].numpy()
        return out
