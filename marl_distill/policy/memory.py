"""Policies with memory, behind the same joint-policy protocol as memoryless ones.

A recurrent policy says ``recurrent = True`` and provides ``initial_state(n)`` (per agent, an ``(n, size)`` float32
array of zeros: SB3's and the ONNX graph's convention of a state that starts at zero each episode) and
``step(obs, state) -> (logits, next_state)``, a pure function of its inputs. ``Carried`` binds such a policy to
the hidden states of ``n`` env copies so that collection, evaluation and acting call ``logits`` as they do for any
policy; it owns the three rules every caller must get right:

- a state starts at zero when its copy starts an episode (``reset``);
- only an agent that acted takes its next state: a waiting agent (another's turn) or one that left keeps its own
  (``advance``);
- ``rows`` says which copies the next call's observation rows belong to (evaluation hands only unfinished copies).

A memoryless policy passes through ``Carried`` untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

State = dict[str, np.ndarray]


def is_recurrent(policy: Any) -> bool:
    """Does ``policy`` carry a hidden state from step to step?"""
    return bool(getattr(policy, "recurrent", False))


class Carried:
    """``policy`` with the hidden states of ``n_envs`` env copies: a joint policy whose ``logits`` reads and whose
    ``advance`` writes them."""

    def __init__(self, policy: Any, n_envs: int) -> None:
        self.policy = policy
        self.spec = policy.spec
        self.deterministic = getattr(policy, "deterministic", True)  # callers that pass their own need none
        self.recurrent = is_recurrent(policy)
        self.state: State = policy.initial_state(n_envs) if self.recurrent else {}
        self.rows: np.ndarray = np.arange(n_envs)
        """Which copies the rows of the next ``logits`` call belong to."""
        self._next: State = {}

    def logits(self, obs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out, self._next = step_of(self.policy, obs, {a: self.state[a][self.rows] for a in obs if a in self.state})
        return out

    def current(self) -> State:
        """The states of the copies in ``rows`` (before the step they are acting on), per agent."""
        return {a: s[self.rows].copy() for a, s in self.state.items()}

    def advance(self, acting: Mapping[str, np.ndarray]) -> None:
        """Keep the states the last ``logits`` call produced for the agents that acted (rows as in ``rows``)."""
        for a, h in self._next.items():
            took = np.asarray(acting[a], dtype=bool) if a in acting else np.ones(len(h), dtype=bool)
            self.state[a][self.rows[took]] = h[took]
        self._next = {}

    def reset(self, copies: np.ndarray | None = None) -> None:
        """Zero the states of ``copies`` (a bool mask or indices over all copies; None: every copy)."""
        for s in self.state.values():
            if copies is None:
                s[:] = 0
            else:
                s[copies] = 0


def step_of(policy: Any, obs: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray]) -> tuple[dict, State]:
    """``policy.step`` for a recurrent policy; a memoryless one's logits and no state."""
    if is_recurrent(policy):
        return policy.step(obs, {a: state[a] for a in obs if a in state})
    return policy.logits(obs), {}
