"""Fitting a recurrent student on sequences: chunks of consecutive steps of one episode, truncated
back-propagation through each chunk, with burn-in from the state stored when the step was collected.

Collection (``collect``) keeps every row's episode id, rows of one episode in time order, and the student's hidden
state entering that step (zero at the episode's first step). A chunk is ``seq_len`` steps of one episode; before it,
up to ``burn_in`` earlier steps of the same episode are replayed without gradients, starting from the stored state
of the first of them (R2D2's stored state with burn-in, Kapturowski et al. 2019). A chunk at an episode's start
needs no burn-in: its state is zero, exactly.

Stored states age as the weights change: the state a student entered a step with at collection time is not what
the current weights would carry there, and in a memory task a short burn-in cannot restore what was seen before
it. ``refresh`` therefore recomputes every stored state with the current weights, each episode replayed from its
first step; ``fit`` calls it before every epoch-sized chunk of gradient steps, so a stored state is never older
than one such chunk, and the burn-in covers what changed since.

An agent's state moves only on the steps it acted, as when it acts (``policy.memory``); its loss counts only those.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from marl_distill.distillation.collect import Dataset
from marl_distill.students import StudentNet


class Sequences:
    """``data``'s rows cut into chunks of at most ``seq_len`` consecutive steps of one episode."""

    def __init__(self, data: Dataset, seq_len: int, burn_in: int = 0) -> None:
        if data.episode is None:
            raise ValueError("sequences need episode ids (collect records them)")
        order = np.argsort(data.episode, kind="stable")  # rows grouped by episode, each in time order
        episode = data.episode[order]
        first = np.r_[True, episode[1:] != episode[:-1]]
        starts = np.flatnonzero(first)
        lengths = np.diff(np.r_[starts, len(order)])
        position = np.arange(len(order)) - np.repeat(starts, lengths)  # step within its episode
        remaining = np.repeat(starts + lengths, lengths) - np.arange(len(order))
        heads = np.flatnonzero(position % seq_len == 0)  # where chunks begin, in ``order``
        self.data, self.seq_len, self.burn_in = data, seq_len, burn_in
        self.order = order
        self.episode_start, self.episode_length = starts, lengths
        self.start = heads
        self.length = np.minimum(seq_len, remaining[heads])
        self.burn = np.minimum(burn_in, position[heads])
        self.acting = {a: data.acting.get(a, np.ones(len(data), dtype=bool)) for a in data.obs}

    def __len__(self) -> int:
        return len(self.start)

    def unroll(
        self, net: StudentNet, agent: str, inputs: torch.Tensor, chunks: Sequence[int] | np.ndarray
    ) -> tuple[torch.Tensor | None, np.ndarray]:
        """``agent``'s logits on the steps of ``chunks`` it acted on, and those steps' rows in the dataset.

        ``inputs``: the agent's encoded observations, one per dataset row. Columns are aligned so every chunk's
        burn-in ends at the same column: shorter burn-ins and shorter chunks are padded, and padding moves no state.
        """
        chunks = np.asarray(chunks)
        width_burn, width = self.burn_in, self.seq_len
        first = self.start[chunks] - self.burn[chunks]  # in ``order``: where each chunk's replay begins
        cols = np.arange(width_burn + width) - width_burn  # column c holds step start + c of the chunk
        at = self.start[chunks, None] + cols[None, :]
        valid = (cols[None, :] >= -self.burn[chunks, None]) & (cols[None, :] < self.length[chunks, None])
        rows = self.order[np.where(valid, at, first[:, None])]  # padding points at a real row, never used
        moves = valid & self.acting[agent][rows]
        state = self.data.state[agent][self.order[first]]
        h = torch.as_tensor(state, dtype=torch.float32)
        outs, kept = [], []
        for c in range(width_burn + width):
            if not moves[:, c].any():
                continue
            live = torch.from_numpy(moves[:, c])
            if c < width_burn:  # burn-in: bring the stored state up to date, no gradient
                with torch.no_grad():
                    _, nxt = net.step(agent, inputs[rows[:, c]], h)
                h = torch.where(live[:, None], nxt, h)
                continue
            out, nxt = net.step(agent, inputs[rows[:, c]], h)
            h = torch.where(live[:, None], nxt, h)
            outs.append(out[live])
            kept.append(rows[moves[:, c], c])
        if not outs:
            return None, np.empty(0, dtype=np.int64)
        return torch.cat(outs), np.concatenate(kept)

    def refresh(self, net: StudentNet, inputs: dict[str, torch.Tensor]) -> None:
        """Recompute every row's stored state (``Dataset.state``, in place) with ``net``'s current weights: each
        episode replayed from its first step and a zero state, without gradients. ``inputs``: encoded observations
        per agent, one per dataset row."""
        t = np.arange(int(self.episode_length.max()))
        valid = t[None, :] < self.episode_length[:, None]
        rows = self.order[np.where(valid, self.episode_start[:, None] + t[None, :], self.episode_start[:, None])]
        with torch.no_grad():
            for agent, x in inputs.items():
                moves = valid & self.acting[agent][rows]
                stored = self.data.state[agent]
                h = torch.zeros(len(rows), stored.shape[1])
                for c in range(len(t)):
                    stored[rows[valid[:, c], c]] = h[torch.from_numpy(valid[:, c])].numpy()
                    if moves[:, c].any():
                        _, nxt = net.step(agent, x[rows[:, c]], h)
                        h = torch.where(torch.from_numpy(moves[:, c])[:, None], nxt, h)


def whole_episodes(data: Dataset) -> Sequences:
    """Every episode of ``data`` as one chunk from its first step (zero state): how a held-out set is scored."""
    if data.episode is None:
        raise ValueError("sequences need episode ids (collect records them)")
    return Sequences(data, seq_len=int(np.unique(data.episode, return_counts=True)[1].max()), burn_in=0)
