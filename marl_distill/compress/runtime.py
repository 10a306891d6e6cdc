"""An exported graph run by onnxruntime, as a joint policy of the lab: evaluated, timed and compared by the same
code as every other team (int8 students and int8 teachers included).

The lab hands policies encoded observations; the graph takes raw ones, so ``OnnxTeam`` decodes them first
(``observations.decode_batch``, exact). Timing (``act_single_onnx``) feeds raw observations prepared beforehand:
what a deployment pays per joint step, one ``session.run`` for the whole team.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from marl_distill.compress.graph import read_meta
from marl_distill.policy.observations import decode_batch
from marl_distill.policy.spec import EnvSpec


def session(model: Any, threads: int = 1) -> Any:
    """An onnxruntime CPU session on ``model`` (a ModelProto or its bytes), ``threads`` threads for one call."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def weight_bytes_of(model: Any) -> int:
    """Bytes of the networks' weights at their stored precision (int8 weights with their scales and zero points
    after quantization); the one-hot tables, bounds and agent-id rows of preprocessing are not weights."""
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer if t.name.startswith("net"))


class OnnxTeam:
    """A team acting through one exported graph (any precision) in onnxruntime."""

    acting_runtime = "onnxruntime"

    def __init__(
        self,
        spec: EnvSpec,
        model: Any,
        raw_spaces: Mapping[str, gym.Space],
        *,
        params: int | None = None,
        macs: int | None = None,
        dqn_temperature: float = 0.01,
        deterministic: bool = True,
    ) -> None:
        self.spec = spec
        self.model = model
        self.meta = read_meta(model)
        self.raw = dict(raw_spaces)
        self.deterministic = deterministic
        self.dqn_temperature = dqn_temperature
        self.session = session(model)
        self.row_by_row = any(n.op_type in ("DynamicQuantizeMatMul", "DynamicQuantizeLinear", "MatMulInteger")
                              for n in model.graph.node)  # fmt: skip
        """Dynamic quantization scales activations over the whole input, so one row's output depends on the
        others: such a graph is run one joint step per call, as a deployment at batch 1 runs it."""
        self._states = {a: int(m["state_size"]) for a, m in self.meta["per_agent"].items() if m.get("state_input")}
        self.recurrent = bool(self._states)
        """A recurrent student's graph: it takes and gives a state per agent (``policy.memory``)."""
        self.onnx_bytes = len(model.SerializeToString())
        self._params, self._macs = params, macs
        self._weight_bytes = weight_bytes_of(model)

    def _feeds(self, obs: Mapping[str, np.ndarray], *, encoded: bool = True) -> dict[str, np.ndarray]:
        """Graph inputs for every agent (absent agents get a copy of a present one's batch of zeros: the graph
        runs every agent; their outputs are dropped)."""
        n = len(next(iter(obs.values())))
        feeds = {}
        for a in self.spec.agents:
            m = self.meta["per_agent"][a]
            if a in obs:
                x = decode_batch(self.raw[a], obs[a]) if encoded else np.asarray(obs[a])
            else:
                x = np.zeros((n, *m["obs_shape"][1:]), dtype=m["obs_dtype"])
                if isinstance(self.raw[a], gym.spaces.Discrete):
                    x += int(self.raw[a].start)
            feeds[m["obs_input"]] = np.ascontiguousarray(x, dtype=m["obs_dtype"])
            if m["mask_input"]:
                feeds[m["mask_input"]] = np.ones((n, self.spec.head(a).size), dtype=bool)
        return feeds

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of one ``session.run``, by name."""
        names = [o.name for o in self.session.get_outputs()]
        n = len(next(iter(feeds.values())))
        if not self.row_by_row or n <= 1:
            return dict(zip(names, self.session.run(names, dict(feeds))))
        rows = [self.session.run(names, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(n)]
        return {name: np.concatenate([r[j] for r in rows]) for j, name in enumerate(names)}

    def initial_state(self, n: int) -> dict[str, np.ndarray]:
        return {a: np.zeros((n, size), np.float32) for a, size in self._states.items()}

    def run_step(
        self, feeds: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``run`` with every agent's state fed in; its outputs and the next state per agent."""
        per = self.meta["per_agent"]
        outputs = self.run({**feeds, **{per[a]["state_input"]: np.asarray(state[a], np.float32) for a in self._states}})
        return outputs, {a: outputs[per[a]["state_output"]] for a in self._states}

    def step(self, obs: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
        """A recurrent graph's logits and next states for the agents in ``obs`` (the others run on zeros)."""
        if not obs:
            return {}, {}
        n = len(next(iter(obs.values())))
        full = {
            a: np.asarray(state[a]) if a in state else np.zeros((n, k), np.float32) for a, k in self._states.items()
        }
        outputs, nxt = self.run_step(self._feeds(obs), full)
        return self._to_logits(obs, outputs), {a: nxt[a] for a in obs if a in nxt}

    def _to_logits(self, obs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        result = {}
        for a in obs:
            m = self.meta["per_agent"][a]
            params = outputs[m["params_output"]]
            if m["params_kind"] == "q_values":
                params = params / np.float32(self.dqn_temperature)
            result[a] = torch.from_numpy(np.ascontiguousarray(params, dtype=np.float32))
        return result

    def logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The lab's logits (Q/tau for DQN teachers) from the graph's params; masks are applied by the caller."""
        if self.recurrent:
            raise TypeError("a recurrent graph needs its state: use step")
        if not obs:
            return {}
        lengths = {len(o) for o in obs.values()}
        if len(lengths) > 1:  # the graph wants one batch size for every agent: run agents one by one
            out: dict[str, torch.Tensor] = {}
            for a, o in obs.items():
                out.update(self.logits({a: o}))
            return out
        return self._to_logits(obs, self.run(self._feeds(obs)))

    def prepare_single(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One joint observation (encoded, one row per agent) -> the graph's raw inputs, before timing (a recurrent
        graph's states as zeros: the same work as any other state)."""
        feeds = self._feeds({a: np.asarray(o)[None] for a, o in obs.items()})
        per = self.meta["per_agent"]
        return {**feeds, **{per[a]["state_input"]: s for a, s in self.initial_state(1).items()}}

    def act_single_onnx(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Every agent's action for one joint step: one ``session.run`` on prepared raw inputs."""
        return self.session.run(self._action_names, dict(feeds))

    @property
    def _action_names(self) -> list[str]:
        return [self.meta["per_agent"][a]["action_output"] for a in self.spec.agents]

    def acting_params(self) -> int | None:
        return self._params

    def acting_macs(self) -> int | None:
        return self._macs

    def weight_bytes(self) -> int:
        return self._weight_bytes
