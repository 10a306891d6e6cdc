"""Compact student networks: one per agent, or one shared by every agent; memoryless (MLP) or recurrent (GRU).

The shared student follows Terry et al. 2020's agent indication: each agent's flattened observation is
zero-padded to the largest observation size and the agent's one-hot id is appended, so one trunk serves
agents with different observation sizes. The head has as many outputs as the largest action space; agent
``a`` reads only its first ``n_actions[a]`` outputs, so a padded action can never be chosen (a masked shared
head, cheaper than one head per agent and still exact for heterogeneous action counts).

A recurrent student (``arch = "gru"``, ``students.recurrent``) has the same inputs and heads around a GRU cell, and
carries one hidden state per agent (``policy.memory``): the shared student's agents share weights, not states.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from marl_distill.errors import UserError
from marl_distill.policy.memory import State
from marl_distill.policy.numpy_gru import NumpyGRU
from marl_distill.policy.numpy_mlp import NumpyMLP
from marl_distill.policy.spec import EnvSpec
from marl_distill.students.recurrent import ARCHS, GRUNet
from marl_distill.utils import faults
from marl_distill.utils.files import atomic_write, read_json, write_json

KINDS = ("shared", "per-agent")
_NO_RNG = np.random.default_rng(0)  # greedy acting draws nothing
WEIGHTS = "weights.pt"
META = "student.json"


def _save(state: dict[str, Any], path: Path) -> None:
    """torch.save through a Python file: a full disk then raises the OSError (ENOSPC) that says so, where torch's
    own writer reports only "unexpected pos"."""
    with open(path, "wb") as f:
        torch.save(state, f)


@dataclass
class StudentMeta:
    """Everything needed to rebuild a student without the env: written as student.json beside the weights."""

    kind: str
    """shared or per-agent."""
    agents: list[str]
    obs_dims: dict[str, int]
    """Flattened observation size per agent."""
    n_actions: dict[str, int]
    """Output size per agent: logits (Discrete) or Gaussian mean + log_std (Box)."""
    hidden: list[int]
    """Hidden layer widths of every MLP."""
    view: str = "local"
    """What the student observes (``views``): local, global or a 'module:callable' view; obs_dims are its sizes."""
    arch: str = "mlp"
    """mlp (memoryless) or gru (the last hidden width is a GRU cell carrying a state per agent through an episode)."""

    @classmethod
    def for_spec(
        cls, spec: EnvSpec, kind: str, hidden: Sequence[int], view: str = "local", arch: str = "mlp"
    ) -> StudentMeta:
        if kind not in KINDS:
            raise UserError(f"unknown student kind {kind!r}; use one of {list(KINDS)}")
        if arch not in ARCHS:
            raise UserError(f"unknown student arch {arch!r}; use one of {list(ARCHS)}")
        if not hidden or any(h < 1 for h in hidden):
            raise UserError(f"hidden sizes must be positive integers, got {list(hidden)}")
        return cls(
            kind,
            list(spec.agents),
            {a: spec.obs_dim(a) for a in spec.agents},
            {a: spec.n_actions(a) for a in spec.agents},
            [int(h) for h in hidden],
            view,
            arch,
        )


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.Tanh()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class StudentNet(nn.Module):
    """Logits for any agent's observations: per-agent nets or one agent-indicated shared net (MLP or GRU)."""

    def __init__(self, meta: StudentMeta) -> None:
        super().__init__()
        self.meta = meta
        self.index = {a: i for i, a in enumerate(meta.agents)}
        make = GRUNet if meta.arch == "gru" else mlp
        if meta.kind == "shared":
            self.max_obs = max(meta.obs_dims.values())
            self.shared = make(self.max_obs + len(meta.agents), meta.hidden, max(meta.n_actions.values()))
        else:
            self.nets = nn.ModuleDict(
                {str(i): make(meta.obs_dims[a], meta.hidden, meta.n_actions[a]) for i, a in enumerate(meta.agents)}
            )

    @property
    def recurrent(self) -> bool:
        return self.meta.arch == "gru"

    @property
    def state_size(self) -> int:
        """Hidden-state values per agent (0: memoryless)."""
        return int(self.meta.hidden[-1]) if self.recurrent else 0

    def numpy_nets(self) -> list[NumpyMLP | NumpyGRU]:
        """The networks in the numpy runtime that acting and export read (sharing the weights' memory): the shared
        net, or one per agent in ``meta.agents`` order."""
        read = (lambda m: m.numpy()) if self.recurrent else NumpyMLP.of
        return (
            [read(self.shared)]
            if self.meta.kind == "shared"
            else [read(self.nets[str(i)]) for i in self.index.values()]
        )

    def encode(self, agent: str, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Flattened float32 input for ``agent``'s batch of observations (padded + id for the shared net)."""
        flat = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        if flat.shape[1] != self.meta.obs_dims[agent]:  # a wider row would spill into the agent-id columns
            raise ValueError(
                f"{agent}'s observations have {flat.shape[1]} values, the student takes {self.meta.obs_dims[agent]}"
            )
        if self.meta.kind != "shared":
            return torch.from_numpy(flat)
        x = np.zeros((len(flat), self.max_obs + len(self.meta.agents)), dtype=np.float32)
        x[:, : flat.shape[1]] = flat
        x[:, self.max_obs + self.index[agent]] = 1.0
        return torch.from_numpy(x)

    def joint_logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Logits for every agent in ``obs``; the shared net answers all agents in one batched forward pass."""
        if self.recurrent:
            raise TypeError("a recurrent student needs its state: use joint_step")
        if self.meta.kind != "shared":
            return {a: self(a, self.encode(a, o)) for a, o in obs.items()}
        agents = list(obs)
        x = torch.cat([self.encode(a, obs[a]) for a in agents])
        out = self.shared(x).split([len(obs[a]) for a in agents])
        return {a: o[:, : self.meta.n_actions[a]] for a, o in zip(agents, out)}

    def can_fuse(self) -> bool:
        """Whether ``fused`` can answer every agent in one pass: a memoryless net whose agents share one action
        size, and for per-agent nets one observation size too."""
        sizes = set(self.meta.n_actions.values())
        same_obs = self.meta.kind == "shared" or len(set(self.meta.obs_dims.values())) == 1
        return not self.recurrent and len(sizes) == 1 and same_obs

    def fused(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits for encoded rows of every agent (``meta.agents`` order, equal row counts), stacked agent after
        agent, in one pass: the shared net over all rows, or the per-agent nets as one batched matrix product per
        layer. The numbers of one ``forward`` per agent, up to float rounding, in a third of the ops (``can_fuse``)."""
        n = next(iter(self.meta.n_actions.values()))
        if self.meta.kind == "shared":
            return self.shared(torch.cat(list(xs)))[:, :n]
        nets = [self.nets[str(i)] for i in range(len(self.meta.agents))]
        x = torch.stack(list(xs))  # (agents, rows, inputs)
        for k, layer in enumerate(nets[0]):
            if isinstance(layer, nn.Linear):
                w = torch.stack([net[k].weight for net in nets])  # (agents, out, in)
                b = torch.stack([net[k].bias for net in nets]).unsqueeze(1)
                x = torch.baddbmm(b, x, w.transpose(1, 2))
            else:
                x = layer(x)
        return x.reshape(-1, n)

    def joint_step(
        self, obs: Mapping[str, np.ndarray], state: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """A recurrent student's logits and next states for every agent in ``obs``, from ``state``."""
        out, nxt = {}, {}
        for a, o in obs.items():
            out[a], nxt[a] = self.step(a, self.encode(a, o), torch.as_tensor(state[a]))
        return out, nxt

    def step(self, agent: str, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A recurrent student's logits and next state for encoded inputs ``x`` of ``agent`` in states ``h``."""
        if self.meta.kind == "shared":
            out, h = self.shared(x, h)
            return out[:, : self.meta.n_actions[agent]], h
        return self.nets[str(self.index[agent])](x, h)

    def forward(self, agent: str, x: torch.Tensor) -> torch.Tensor:
        """Logits for already encoded inputs ``x`` of ``agent`` (memoryless students)."""
        if self.recurrent:
            raise TypeError("a recurrent student needs its state: use step")
        if self.meta.kind == "shared":
            return self.shared(x)[:, : self.meta.n_actions[agent]]
        return self.nets[str(self.index[agent])](x)


class StudentTeam:
    """A trained student network as a joint policy.

    ``logits`` (batches, training, evaluation) runs torch; ``act_single`` / ``act_batch`` (acting, as deployed)
    run the same weights through the numpy runtime that teachers' actors also use
    (``marl_distill.policy.numpy_mlp``), so their latencies compare networks, not runtimes."""

    acting_runtime = "numpy"

    def __init__(self, spec: EnvSpec, net: StudentNet, *, deterministic: bool = True) -> None:
        self.spec = spec
        self.net = net.eval()
        self.deterministic = deterministic
        self._heads = {a: spec.head(a) for a in spec.agents}  # built once: acting time is the network's, not setup
        meta = net.meta
        self.recurrent = net.recurrent
        # the same numpy runtime as teachers' actors (marl_distill.policy.numpy_mlp; numpy_gru for GRU students)
        nets = net.numpy_nets()
        if meta.kind == "shared":
            self._shared = nets[0]
        else:
            self._nets = dict(zip(meta.agents, nets))
        self._acting_state: State = {}
        """A recurrent student's own state while it is timed or deployed through ``act_single`` / ``act_batch``."""

    @property
    def meta(self) -> StudentMeta:
        return self.net.meta

    def logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.net.joint_logits(obs)

    def initial_state(self, n: int) -> State:
        """Zero states for ``n`` env copies, per agent (a recurrent student; ``policy.memory``)."""
        return {a: np.zeros((n, self.net.state_size), dtype=np.float32) for a in self.meta.agents}

    def step(self, obs: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], State]:
        """A recurrent student's logits (torch) and next states (numpy) for the agents in ``obs``."""
        with torch.no_grad():
            out, nxt = self.net.joint_step(obs, {a: torch.from_numpy(np.asarray(state[a])) for a in obs})
        return out, {a: h.numpy() for a, h in nxt.items()}

    def _rows(self, obs: Mapping[str, np.ndarray]) -> tuple[list[str], list[int], np.ndarray]:
        """The shared net's input: every agent's rows, padded and agent-indicated, stacked into one matrix."""
        meta, agents = self.net.meta, list(obs)
        sizes = [len(obs[a]) for a in agents]
        x = np.zeros((sum(sizes), self.net.max_obs + len(meta.agents)), dtype=np.float32)
        start = 0
        for a, n in zip(agents, sizes):
            flat = np.asarray(obs[a], dtype=np.float32).reshape(n, -1)
            x[start : start + n, : flat.shape[1]] = flat
            x[start : start + n, self.net.max_obs + self.net.index[a]] = 1.0
            start += n
        return agents, sizes, x

    def numpy_logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``logits`` through the numpy runtime: the shared net stacks every agent's rows into one matrix."""
        if self.recurrent:
            raise TypeError("a recurrent student needs its state: use numpy_step")
        meta = self.net.meta
        if meta.kind != "shared":
            return {a: self._nets[a](np.asarray(o, dtype=np.float32).reshape(len(o), -1)) for a, o in obs.items()}
        agents, sizes, x = self._rows(obs)
        out = self._shared(x)
        bounds = np.cumsum(sizes)[:-1]
        return {a: o[:, : meta.n_actions[a]] for a, o in zip(agents, np.split(out, bounds))}

    def numpy_step(
        self, obs: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], State]:
        """``step`` through the numpy runtime: logits and next states, per agent."""
        meta = self.net.meta
        if meta.kind != "shared":
            out, nxt = {}, {}
            for a, o in obs.items():
                out[a], nxt[a] = self._nets[a](np.asarray(o, dtype=np.float32).reshape(len(o), -1), state[a])
            return out, nxt
        agents, sizes, x = self._rows(obs)
        out, h = self._shared(x, np.concatenate([state[a] for a in agents]))
        bounds = np.cumsum(sizes)[:-1]
        logits = {a: o[:, : meta.n_actions[a]] for a, o in zip(agents, np.split(out, bounds))}
        return logits, dict(zip(agents, np.split(h, bounds)))

    def _numpy_acting(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Logits for acting through numpy; a recurrent student threads its own acting state from call to call."""
        if not self.recurrent:
            return self.numpy_logits(obs)
        state = {}
        for a, o in obs.items():
            held = self._acting_state.get(a)
            fresh = held is None or len(held) != len(o)  # first call, or another batch size: a new episode
            state[a] = np.zeros((len(o), self.net.state_size), np.float32) if fresh else held
        out, self._acting_state = self.numpy_step(obs, state)
        return out

    def act_batch(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A batch of observations per agent -> greedy actions through numpy (no action masks: this times the
        network; evaluation and ``select_actions`` apply masks). A recurrent student steps its acting state."""
        return {a: self._heads[a].act(lg, True, _NO_RNG) for a, lg in self._numpy_acting(obs).items()}

    def act_single(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One observation per agent -> greedy actions: what a deployed student costs per joint step (the same
        numbers as ``act_batch`` on one row per agent, without its bookkeeping for many rows). A recurrent student
        steps its acting state (a call with another batch size starts from zero)."""
        meta, agents = self.net.meta, list(obs)
        if self.recurrent:
            rows = self._numpy_acting({a: np.asarray(obs[a], dtype=np.float32).reshape(1, -1) for a in agents})
        elif meta.kind == "shared":
            x = np.zeros((len(agents), self.net.max_obs + len(meta.agents)), dtype=np.float32)
            for i, a in enumerate(agents):
                flat = np.asarray(obs[a], dtype=np.float32).reshape(-1)
                x[i, : flat.size] = flat
                x[i, self.net.max_obs + self.net.index[a]] = 1.0
            out = self._shared(x)
            rows = {a: out[i : i + 1, : meta.n_actions[a]] for i, a in enumerate(agents)}
        else:
            rows = {a: self._nets[a](np.asarray(obs[a], dtype=np.float32).reshape(1, -1)) for a in agents}
        return {a: self._heads[a].act(lg, True, _NO_RNG)[0] for a, lg in rows.items()}

    def acting_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def weight_bytes(self) -> int:
        """Bytes of the weights used to act, at their stored precision (a shared net counts once)."""
        return sum(p.numel() * p.element_size() for p in self.net.parameters())

    def acting_macs(self) -> int:
        """Multiply-accumulates per joint step: the shared net runs its full forward once per agent row."""
        if self.net.meta.kind == "shared":
            return len(self.net.meta.agents) * self._shared.macs
        return sum(m.macs for m in self._nets.values())

    def save(self, folder: Path) -> None:
        """Weights (a plain state_dict) and student.json metadata, each written atomically."""
        folder = Path(folder)
        atomic_write(folder / WEIGHTS, lambda tmp: _save(self.net.state_dict(), tmp))
        faults.point("student-weights")
        write_json(folder / META, asdict(self.meta))

    @classmethod
    def load(cls, folder: Path, spec: EnvSpec, *, view: str | None = None) -> StudentTeam:
        """The student saved in ``folder``, refused in one line where it does not fit ``spec`` (the env as the
        student sees it) or was distilled for another ``view``."""
        folder = Path(folder)
        if not (folder / META).exists():
            raise UserError(f"{folder} holds no student ({META} missing); run distill first")
        meta = StudentMeta(**read_json(folder / META))
        if list(spec.agents) != meta.agents:
            raise UserError(f"student in {folder} was built for agents {meta.agents}, the env has {spec.agents}")
        if view is not None and meta.view != view:
            raise UserError(
                f"student in {folder} acts on the {meta.view!r} view, this run's students on {view!r}; evaluate it "
                f"with distill.student_view = {meta.view!r}"
            )
        sizes = {a: spec.obs_dim(a) for a in meta.agents}
        if sizes != meta.obs_dims:
            raise UserError(
                f"student in {folder} takes observations of sizes {meta.obs_dims}, the env's {meta.view!r} view gives "
                f"{sizes}; use the env settings and view it was distilled with"
            )
        net = StudentNet(meta)
        net.load_state_dict(torch.load(folder / WEIGHTS, weights_only=True))
        return cls(spec, net)
