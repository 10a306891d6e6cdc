"""A whole team's acting path as one ONNX graph: raw env observations in, distribution parameters and actions out.

The most common complaint about SB3's ONNX recipe is an exported policy that does not match ``predict()``: the
graph there starts after preprocessing and stops before masks. This graph holds all of it, so a deployment feeds
what the env hands out and steps the env with what comes back:

- inputs, per agent: ``obs_<agent>`` (the raw observation at the env's dtype; Discrete and MultiDiscrete as
  int64 indices) and, for agents with action masks, ``mask_<agent>`` (bool, batch x actions). Every input shares
  the leading ``batch`` dimension.
- preprocessing as the lab does it (``marl_distill.policy.observations``): float cast, uint8 images / 255, one-hot of
  Discrete / MultiDiscrete observations, flatten; a shared student's zero padding and one-hot agent id.
- the networks: each MLP once (a shared student, or a teacher model serving several agents, runs all its agents'
  rows in one stacked MatMul per layer).
- outputs, per agent: ``params_<agent>`` (logits; Q-values for DQN teachers; ``[mean, log_std]`` for Box actions)
  with illegal actions at -1e9, and ``action_<agent>``: the greedy action, ready for ``env.step`` (a Discrete
  space's ``start`` added, a Box mean clipped to its bounds).
- recurrent (GRU) students, per agent: input ``state_in_<agent>`` and output ``state_out_<agent>`` (float32, batch x
  state size). A deployment feeds zeros when an episode starts, then each step feeds back ``state_out`` as the
  next ``state_in`` for the agents that acted, keeping the state of an agent that did not (waiting, or gone).

The ``marl_distill`` metadata entry (JSON) repeats this per agent, with the shared student's layout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from marl_distill.policy.distributions import MASKED_LOGIT, Categorical, DiagGaussian, Head
from marl_distill.policy.numpy_gru import NumpyGRU
from marl_distill.policy.numpy_mlp import NumpyMLP
from marl_distill.policy.observations import _is_image, encoded_space

OPSET = 17
FORMAT = "marl-distill team v1"
META_KEY = "marl_distill"


@dataclass(frozen=True)
class AgentPath:
    """How one agent acts inside the graph."""

    agent: str
    obs_space: gym.Space
    """The raw observation space (its ``observation`` part when the agent has an action mask)."""
    masked: bool
    net: int
    """Index of the network this agent's rows run through."""
    head: Head
    params_kind: str
    """logits, q_values or gaussian (the network emits [mean, log_std]); gaussian_mean: the network emits the
    mean and ``log_std`` is a learned constant (SB3 PPO)."""
    out_size: int
    """How many of the network's outputs belong to this agent (a shared head is as wide as the widest agent)."""
    pad_to: int | None = None
    """Shared student: width the encoded observation is zero-padded to before the agent id."""
    agent_id: int | None = None
    """Shared student: the agent's index in the one-hot id appended after the padding."""
    n_ids: int = 0
    """Shared student: length of the one-hot id."""
    log_std: np.ndarray | None = field(default=None, compare=False)
    action_start: int = 0
    state_size: int = 0
    """Recurrent network: the agent's hidden-state width (0: memoryless)."""


def obs_input_dtype(space: gym.Space) -> np.dtype:
    """The dtype a deployment feeds for ``space``'s observations."""
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        return np.dtype(np.int64)
    return np.dtype(space.dtype)


def obs_input_shape(space: gym.Space) -> tuple[int, ...]:
    return () if isinstance(space, gym.spaces.Discrete) else tuple(int(d) for d in space.shape)


def encoding_of(space: gym.Space) -> str:
    """What the graph does to the raw observation before the network, in words (for the metadata)."""
    if isinstance(space, gym.spaces.Box):
        return "float32 / 255, flattened" if _is_image(space) else "float32, flattened"
    if isinstance(space, gym.spaces.Discrete):
        return f"one-hot of (obs - {int(space.start)}) over {int(space.n)}"
    if isinstance(space, gym.spaces.MultiDiscrete):
        return "one-hot of each (obs - start) over its nvec, side by side"
    return "float32, flattened"


class _Builder:
    """Nodes and initializers with unique names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0
        self.log_std: dict[int, str] = {}
        """A Gaussian network's log_std initializer, once per network however many agents act through it."""

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, array: np.ndarray, stem: str = "c") -> str:
        name = self.name(stem)
        self.inits.append(self.numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], stem: str | None = None, **attrs: Any) -> str:
        out = self.name(stem or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def _encode(b: _Builder, x: str, space: gym.Space) -> str:
    """The lab's observation encoder (``observations.encoder``) as graph nodes: (batch, ...) -> (batch, dim)."""
    from onnx import TensorProto

    if isinstance(space, gym.spaces.Discrete):
        idx = b.op("Sub", [x, b.const(np.array(int(space.start), np.int64))])
        return b.op("Gather", [b.const(np.eye(int(space.n), dtype=np.float32), "eye"), idx], axis=0)
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec = np.ravel(space.nvec).astype(np.int64)
        offsets = np.cumsum([0, *nvec[:-1]]).astype(np.int64) - np.ravel(space.start).astype(np.int64)
        idx = b.op("Add", [b.op("Flatten", [x], axis=1), b.const(offsets)])
        hot = b.op("Gather", [b.const(np.eye(int(nvec.sum()), dtype=np.float32), "eye"), idx], axis=0)
        return b.op("ReduceSum", [hot, b.const(np.array([1], np.int64))], keepdims=0)
    y = b.op("Cast", [x], to=TensorProto.FLOAT)
    if isinstance(space, gym.spaces.Box) and _is_image(space):
        y = b.op("Div", [y, b.const(np.array(255.0, np.float32))])
    return b.op("Flatten", [y], axis=1)


def _mlp(b: _Builder, x: str, mlp: NumpyMLP, stem: str) -> str:
    for i, layer in enumerate(mlp.layers):
        x = b.op("MatMul", [x, b.const(np.asarray(layer.w, np.float32), f"{stem}_W{i}")])
        if layer.b is not None:
            x = b.op("Add", [x, b.const(np.asarray(layer.b, np.float32), f"{stem}_b{i}")])
        if layer.activation == "tanh":
            x = b.op("Tanh", [x])
        elif layer.activation == "relu":
            x = b.op("Relu", [x])
        elif layer.activation == "sigmoid":
            x = b.op("Sigmoid", [x])
        elif layer.activation == "leaky_relu":
            x = b.op("LeakyRelu", [x], alpha=layer.param)
        elif layer.activation == "elu":
            x = b.op("Elu", [x], alpha=layer.param)
    return x


def _gru(b: _Builder, x: str, h: str, gru: NumpyGRU, stem: str) -> tuple[str, str]:
    """(outputs, next state) of a GRU network, torch's GRUCell equations: r and z gates, n = tanh(x_n + r * h_n),
    h' = n + z * (h - n)."""
    if gru.pre is not None:
        x = _mlp(b, x, gru.pre, f"{stem}_pre")
    gi = b.op("Add", [b.op("MatMul", [x, b.const(np.asarray(gru.w_ih, np.float32), f"{stem}_Wih")]),
                      b.const(np.asarray(gru.b_ih, np.float32), f"{stem}_bih")])  # fmt: skip
    gh = b.op("Add", [b.op("MatMul", [h, b.const(np.asarray(gru.w_hh, np.float32), f"{stem}_Whh")]),
                      b.const(np.asarray(gru.b_hh, np.float32), f"{stem}_bhh")])  # fmt: skip
    sizes = b.const(np.array([gru.size] * 3, np.int64))
    i_parts, h_parts = [b.name("gi") for _ in range(3)], [b.name("gh") for _ in range(3)]
    b.nodes.append(b.helper.make_node("Split", [gi, sizes], i_parts, axis=1))
    b.nodes.append(b.helper.make_node("Split", [gh, sizes], h_parts, axis=1))
    r = b.op("Sigmoid", [b.op("Add", [i_parts[0], h_parts[0]])])
    z = b.op("Sigmoid", [b.op("Add", [i_parts[1], h_parts[1]])])
    n = b.op("Tanh", [b.op("Add", [i_parts[2], b.op("Mul", [r, h_parts[2]])])])
    h_next = b.op("Add", [n, b.op("Mul", [z, b.op("Sub", [h, n])])])
    return _mlp(b, h_next, gru.head, f"{stem}_head"), h_next


def _head(b: _Builder, out: str, path: AgentPath, mask: str | None) -> tuple[str, str]:
    """(params, action) of one agent from its network output rows."""
    head = path.head
    if path.params_kind != "gaussian_mean":
        out = b.op(
            "Slice", [out, b.const(np.array([0], np.int64)), b.const(np.array([path.out_size], np.int64)),
                      b.const(np.array([1], np.int64))]
        )  # fmt: skip
    if isinstance(head, Categorical):
        if mask is not None:
            out = b.op("Where", [mask, out, b.const(np.array(MASKED_LOGIT, np.float32))])
        action = b.op("ArgMax", [out], axis=1, keepdims=0)
        if path.action_start:
            action = b.op("Add", [action, b.const(np.array(path.action_start, np.int64))])
        return out, action
    assert isinstance(head, DiagGaussian)
    if path.params_kind == "gaussian_mean":
        mean = out
        if path.net not in b.log_std:  # a weight of the network: named net*, counted in weight bytes once
            b.log_std[path.net] = b.const(np.asarray(path.log_std, np.float32).reshape(1, -1), f"net{path.net}_log_std")
        log_std = b.op("Expand", [b.log_std[path.net], b.op("Shape", [mean])])
        params = b.op("Concat", [mean, log_std], axis=1)
    else:
        params = out
        mean = b.op(
            "Slice", [out, b.const(np.array([0], np.int64)), b.const(np.array([head.dim], np.int64)),
                      b.const(np.array([1], np.int64))]
        )  # fmt: skip
    action = b.op("Max", [b.op("Min", [mean, b.const(head.high)]), b.const(head.low)])
    return params, action


def _split_rows(b: _Builder, out: str, count: int) -> list[str]:
    """Equal parts of stacked rows, one batch per agent."""
    parts = [b.name("rows") for _ in range(count)]
    b.nodes.append(b.helper.make_node("Split", [out], parts, axis=0))
    return parts


def build_model(
    nets: Sequence[NumpyMLP | NumpyGRU],
    paths: Sequence[AgentPath],
    *,
    source: str,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """The team's ONNX model (an ``onnx.ModelProto``), checked by ``onnx.checker``."""
    import onnx
    from onnx import TensorProto, helper

    b = _Builder()
    inputs, outputs, meta_agents = [], [], {}
    rows: dict[int, list[tuple[AgentPath, str]]] = {}
    masks: dict[str, str] = {}
    for path in paths:
        obs_name = f"obs_{path.agent}"
        dtype = helper.np_dtype_to_tensor_dtype(obs_input_dtype(path.obs_space))
        inputs.append(helper.make_tensor_value_info(obs_name, dtype, ["batch", *obs_input_shape(path.obs_space)]))
        x = _encode(b, obs_name, path.obs_space)
        if path.pad_to is not None:
            width = path.pad_to + path.n_ids
            if width != nets[path.net].in_dim:
                raise ValueError(f"shared input of width {width} for a network taking {nets[path.net].in_dim}")
            x = b.op(
                "Pad",
                [x, b.const(np.array([0, 0, 0, width - int(np.prod(encoded_space(path.obs_space).shape))], np.int64))],
            )
            agent_row = np.zeros((1, width), np.float32)
            agent_row[0, path.pad_to + int(path.agent_id or 0)] = 1.0
            x = b.op("Add", [x, b.const(agent_row, "agent_id")])
        if path.masked:
            masks[path.agent] = f"mask_{path.agent}"
            inputs.append(helper.make_tensor_value_info(masks[path.agent], TensorProto.BOOL, ["batch", path.head.size]))
        rows.setdefault(path.net, []).append((path, x))
    net_out: dict[str, str] = {}
    state_out: dict[str, str] = {}
    for net, members in rows.items():
        stacked = b.op("Concat", [x for _, x in members], axis=0) if len(members) > 1 else members[0][1]
        # (agents x batch, in): every agent's rows through one MatMul per layer
        if isinstance(nets[net], NumpyGRU):
            for path, _ in members:
                name = f"state_in_{path.agent}"
                inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", path.state_size]))
            states = [f"state_in_{p.agent}" for p, _ in members]
            h = b.op("Concat", states, axis=0) if len(states) > 1 else states[0]
            out, h_next = _gru(b, stacked, h, nets[net], f"net{net}")
            h_parts = _split_rows(b, h_next, len(members)) if len(members) > 1 else [h_next]
            for (path, _), part in zip(members, h_parts):
                state_out[path.agent] = part
        else:
            out = _mlp(b, stacked, nets[net], f"net{net}")
        parts = _split_rows(b, out, len(members)) if len(members) > 1 else [out]
        for (path, _), part in zip(members, parts):
            net_out[path.agent] = part
    for path in paths:
        params, action = _head(b, net_out[path.agent], path, masks.get(path.agent))
        p_name, a_name = f"params_{path.agent}", f"action_{path.agent}"
        b.nodes.append(helper.make_node("Identity", [params], [p_name]))
        b.nodes.append(helper.make_node("Identity", [action], [a_name]))
        outputs.append(helper.make_tensor_value_info(p_name, TensorProto.FLOAT, ["batch", path.head.size]))
        if isinstance(path.head, Categorical):
            outputs.append(helper.make_tensor_value_info(a_name, TensorProto.INT64, ["batch"]))
        else:
            outputs.append(helper.make_tensor_value_info(a_name, TensorProto.FLOAT, ["batch", path.head.dim]))
        meta_agents[path.agent] = _agent_meta(path, p_name, a_name, masks.get(path.agent))
        if path.agent in state_out:
            s_name = f"state_out_{path.agent}"
            b.nodes.append(helper.make_node("Identity", [state_out[path.agent]], [s_name]))
            outputs.append(helper.make_tensor_value_info(s_name, TensorProto.FLOAT, ["batch", path.state_size]))
            meta_agents[path.agent].update(state_input=f"state_in_{path.agent}", state_output=s_name,
                                           state_size=path.state_size)  # fmt: skip
    graph = helper.make_graph(b.nodes, f"marl_distill_{source}", inputs, outputs, b.inits)
    graph.doc_string = (__doc__ or "").strip()
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="marl-distill")
    model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime releases a year old
    meta = {"format": FORMAT, "source": source, "agents": [p.agent for p in paths], "per_agent": meta_agents}
    if state_out:
        meta["state"] = (
            "feed zeros (batch x state_size) as state_in when an episode starts; after each step feed state_out "
            "back as state_in for the agents that acted, and keep the state of an agent that did not act"
        )
    helper.set_model_props(model, {META_KEY: json.dumps({**meta, **(extra or {})})})
    onnx.checker.check_model(model)
    return model


def _agent_meta(path: AgentPath, params: str, action: str, mask: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "obs_input": f"obs_{path.agent}",
        "obs_dtype": str(obs_input_dtype(path.obs_space)),
        "obs_shape": ["batch", *obs_input_shape(path.obs_space)],
        "obs_space": str(path.obs_space),
        "encoding": encoding_of(path.obs_space),
        "mask_input": mask,
        "params_output": params,
        "params_kind": "gaussian" if path.params_kind == "gaussian_mean" else path.params_kind,
        "action_output": action,
    }
    if isinstance(path.head, Categorical):
        meta["action_start"] = path.action_start
    else:
        meta["action_low"], meta["action_high"] = path.head.low.tolist(), path.head.high.tolist()
    if path.pad_to is not None:
        meta["shared_input"] = {"padded_to": path.pad_to, "agent_id_index": path.pad_to + int(path.agent_id or 0)}
        meta["shared_outputs_read"] = path.out_size
    return meta


def read_meta(model: Any) -> dict[str, Any]:
    """The ``marl_distill`` metadata of a model this module built ({} for any other model)."""
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            return json.loads(prop.value)
    return {}
