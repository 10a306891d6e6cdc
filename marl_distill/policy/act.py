"""Acting on what a PettingZoo env hands out: a raw observation dict in, env-ready actions out.

Inside the lab policies read encoded observations (``observations.encoder``) in batches and index Discrete
actions from 0. A user who loads a trained team and plays it in their own loop should not have to know that:
``ActingPolicy.act`` encodes each agent's raw observation, takes the legal actions from a Dict observation's
``action_mask`` (PettingZoo's convention), acts, and adds each Discrete space's ``start`` back. A recurrent team
carries its state from call to call; ``reset`` starts a new episode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from marl_distill.errors import UserError
from marl_distill.policy.joint import JointPolicy, select_actions
from marl_distill.policy.memory import Carried
from marl_distill.policy.observations import encoder, has_mask


class ActingPolicy:
    """A joint policy (teachers, a student, any team) that acts on raw env observations.

    Args:
        policy: the team that chooses the actions.
        observation_spaces: the env's own observation space per agent (Dict with ``action_mask`` where it masks).
        action_spaces: the env's own action space per agent.
        seed: seeds the draws of ``act(..., deterministic=False)``.

    >>> actions = team.act(observations)  # doctest: +SKIP
    """

    def __init__(
        self,
        policy: JointPolicy,
        observation_spaces: Mapping[str, gym.Space],
        action_spaces: Mapping[str, gym.Space],
        *,
        seed: int | None = None,
    ) -> None:
        self.policy = policy
        self._carried = Carried(policy, 1)
        self._copies: Carried | None = None
        """The states of ``act_batch``'s copies (made on its first call, remade when their number changes)."""
        self.spec = policy.spec
        self._encode = {a: encoder(s["observation"] if has_mask(s) else s) for a, s in observation_spaces.items()}
        self._start = {a: int(s.start) for a, s in action_spaces.items() if isinstance(s, gym.spaces.Discrete)}
        self.rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return f"ActingPolicy({type(self.policy).__name__}, agents={list(self.agents)})"

    @property
    def agents(self) -> tuple[str, ...]:
        return self.spec.agents

    def reset(self, copies: Any = None) -> None:
        """A new episode: a recurrent team's state returns to zero (a memoryless team has nothing to forget).
        ``copies``: only those of ``act_batch``'s copies (a bool mask over the copies, such as a vector world's
        ``terminated | truncated``, or their indices); None resets every state and lets the next ``act_batch`` call
        bring another number of copies."""
        if copies is None:
            self._carried.reset()
            self._copies = None
        elif self._copies is not None:
            self._copies.reset(_copy_selection(copies, len(self._copies.rows)))

    def act(
        self,
        observations: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        deterministic: bool = True,
    ) -> dict[str, Any]:
        """The action of every agent in ``observations`` (one observation each, as ``env.reset`` / ``env.step``
        return them). A recurrent team's agents in ``observations`` step their states; call ``reset`` when the env
        is reset.

        Args:
            observations: agent -> its raw observation; a Dict observation's ``action_mask`` is used as its mask.
            masks: agent -> legal actions (bool or 0/1), for masks that do not come inside the observation.
            deterministic: argmax (True) or a draw from the policy's distribution (False).

        Returns:
            agent -> the action to hand to ``env.step`` (an int for Discrete spaces, an array for Box).
        """
        rows = {a: {k: [v] for k, v in o.items()} if _masked(o) else [o] for a, o in observations.items()}
        masks = {a: _one_row(a, m) for a, m in (masks or {}).items()}
        actions = self._act(self._carried, rows, masks, deterministic, 1)
        return {a: self._env_action(a, x[0]) for a, x in actions.items()}

    def act_batch(
        self,
        observations: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        deterministic: bool = True,
    ) -> dict[str, np.ndarray]:
        """Every agent's actions in ``n`` env copies at once, as a vector world (``batched(n)``) hands out its
        observations: one call for all copies instead of ``act`` per copy. A recurrent team keeps one state per
        copy from call to call; ``reset(copies)`` zeroes those whose episodes restart.

        Args:
            observations: agent -> its raw observations, one per copy along the first axis (a Dict observation's
                ``observation`` and ``action_mask`` each so).
            masks: agent -> legal actions per copy, ``(n, actions)``, for masks that do not come inside the
                observation.
            deterministic: argmax (True) or a draw from the policy's distribution (False).

        Returns:
            agent -> an array of ``n`` actions to hand to the vector world's ``step``.
        """
        n = {len(o["observation"] if _masked(o) else o) for o in observations.values()}
        if len(n) != 1:
            raise UserError(f"act_batch needs the same number of copies for every agent, got {sorted(n)}")
        copies = n.pop()
        if self._copies is not None and len(self._copies.rows) != copies:
            if self._copies.recurrent:  # zeroing states behind the caller's back would cut episodes short
                raise UserError(f"act_batch holds the states of {len(self._copies.rows)} copies but got {copies}; "
                                "call reset() before acting in another number of copies")  # fmt: skip
            self._copies = None
        if self._copies is None:
            self._copies = Carried(self.policy, copies)
        actions = self._act(self._copies, observations, masks, deterministic, copies)
        return {a: self._env_actions(a, x) for a, x in actions.items()}

    def _act(
        self, carried: Carried, observations: Mapping[str, Any], masks: Mapping[str, Any] | None, det: bool, n: int
    ) -> dict[str, np.ndarray]:
        """Actions (indexed from 0) for ``n`` rows of raw observations per agent, states advanced in ``carried``."""
        unknown = sorted(set(observations) - set(self._encode))
        if unknown:
            raise UserError(f"no agent {unknown[0]!r} in this team; its agents are {list(self.agents)}: is this the "
                            "env (and env kwargs) it was trained on?")  # fmt: skip
        obs, legal = {}, {a: _mask_rows(a, m, n) for a, m in (masks or {}).items()}
        for agent, rows in observations.items():
            if _masked(rows):
                legal.setdefault(agent, _mask_rows(agent, rows["action_mask"], n))
                rows = rows["observation"]
            obs[agent] = np.stack([self._encode[agent](o) for o in rows])
        try:
            actions, _ = select_actions(carried, obs, self.rng, det, {a: m for a, m in legal.items() if a in obs})
            carried.advance({})
        except (ValueError, RuntimeError) as exc:  # sizes that do not fit: another env, or other env kwargs
            raise UserError(f"{exc}; is this the env (and env kwargs) the team was trained on?") from None
        return actions

    def _env_actions(self, agent: str, actions: Any) -> np.ndarray:
        return np.asarray(actions) + self._start[agent] if agent in self._start else np.asarray(actions)

    def _env_action(self, agent: str, action: Any) -> Any:
        out = self._env_actions(agent, action)
        return int(out) if agent in self._start else out


def _masked(obs: Any) -> bool:
    """Is ``obs`` a Dict observation with its legal actions inside (PettingZoo's ``action_mask``)?"""
    return isinstance(obs, Mapping) and "action_mask" in obs


def _one_row(agent: str, mask: Any) -> np.ndarray:
    """``act``'s mask for one copy, ``(actions,)`` (or ``(1, actions)``), as one row."""
    m = np.asarray(mask)
    if m.ndim == 1 or (m.ndim == 2 and m.shape[0] == 1):
        return m.reshape(1, -1)
    raise UserError(f"{agent}'s action mask has shape {m.shape}; act needs (actions,), the legal actions of one "
                    "copy (act_batch takes one row per copy)")  # fmt: skip


def _mask_rows(agent: str, mask: Any, n: int) -> np.ndarray:
    """``mask`` as ``(n, actions)`` bools, refusing shapes that only reshape by accident (one ``(actions,)`` mask
    for ``n`` copies)."""
    m = np.asarray(mask)
    if m.ndim != 2 or m.shape[0] != n:
        raise UserError(f"{agent}'s action mask has shape {m.shape}; it needs ({n}, actions), one row of legal "
                        "actions per copy")  # fmt: skip
    return m.astype(bool)


def _copy_selection(copies: Any, n: int) -> np.ndarray:
    """``reset``'s ``copies`` checked: a bool mask of length ``n`` or distinct indices below ``n``. An integer array
    of length ``n`` holding only 0s and 1s is refused: it reads as a mask, but numpy would take it as indices."""
    c = np.asarray(copies)
    if c.dtype == bool:
        if c.shape != (n,):
            raise UserError(f"reset's copies mask has shape {c.shape}; it needs ({n},), one bool per copy")
        return c
    c = c.reshape(-1)
    if (
        not np.issubdtype(c.dtype, np.integer)
        or len(np.unique(c)) != len(c)
        or (len(c) and not 0 <= c.min() <= c.max() < n)
        or (len(c) == n and set(c.tolist()) <= {0, 1})
    ):
        raise UserError(f"reset's copies must be a bool mask of {n} copies or distinct copy indices in "
                        f"0..{n - 1}, got {copies!r}; pass a 0/1 mask as .astype(bool)")  # fmt: skip
    return c
