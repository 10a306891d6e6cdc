"""Fit a student to teacher-labelled states: a fixed number of minibatch Adam steps, scored on held-out episodes
every epoch-sized chunk of steps, keeping the best chunk's weights. A recurrent student is fitted on sequences
(``sequences``): a minibatch holds as many chunks as make ``batch_size`` steps on average (chunks at an episode's
end are shorter than ``seq_len``), its stored states are recomputed before every epoch-sized chunk of steps, and
held-out episodes are replayed from their first step."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl_distill.distillation.collect import Dataset
from marl_distill.distillation.losses import LossFn
from marl_distill.distillation.sequences import Sequences, whole_episodes
from marl_distill.errors import UserError
from marl_distill.policy.distributions import DiagGaussian, Head, apply_mask
from marl_distill.students import StudentNet
from marl_distill.utils.plotting import pyplot, save_figure

HELD_KEYS = ("held_loss", "agreement", "action_mse")
"""The history fields measured on held-out episodes (None when ``distill.holdout`` is 0)."""


def held_out(
    net: StudentNet, data: Dataset, loss_fns: Mapping[str, LossFn], heads: Mapping[str, Head]
) -> dict[str, float | None]:
    """Held-out loss, argmax agreement (Discrete agents) and action MSE (Box agents) against the teachers."""
    loss, hits, n_cat, sq, n_box = 0.0, 0, 0, 0.0, 0
    episodes = whole_episodes(data) if net.recurrent else None
    with torch.no_grad():
        for agent, obs in data.obs.items():
            if episodes is not None:  # each episode from its first step and a zero state, as the student acts
                raw, rows = episodes.unroll(net, agent, net.encode(agent, obs), np.arange(len(episodes)))
            else:
                acted = data.acting[agent] if agent in data.acting else np.ones(len(obs), dtype=bool)
                rows = np.flatnonzero(acted)
                raw = net(agent, net.encode(agent, obs[rows])) if len(rows) else None
            if raw is None or not len(rows):
                continue
            mask = data.masks[agent][rows] if agent in data.masks else None
            pred = apply_mask(raw, mask)
            target = apply_mask(data.teacher_logits[agent][torch.from_numpy(rows)], mask)
            n = len(rows)
            loss += float(loss_fns[agent](pred, target))
            head = heads[agent]
            if isinstance(head, DiagGaussian):
                sq += float(head.action_mse(target, pred).sum())
                n_box += n
            else:
                hits += int(head.agree(target, pred).sum())
                n_cat += n
    return {
        "held_loss": loss / max(len(data.obs), 1),
        "agreement": hits / n_cat if n_cat else None,
        "action_mse": sq / n_box if n_box else None,
    }


@dataclass
class Fitted:
    """What one ``fit`` did."""

    history: list[dict[str, Any]]
    """One row per evaluated chunk of gradient steps."""
    best: int
    """Index in ``history`` of the chunk whose weights ``net`` holds at the end."""
    steps: int
    """Gradient steps taken (the budget, unless early stopping cut it)."""
    scored: bool = True
    """Whether chunks were scored on held-out episodes (without them the last weights are kept, unjudged)."""
    rows_per_step: float = 0.0
    """Steps (rows) per agent in one minibatch, on average: ``batch_size`` capped by the data for an MLP; for a
    recurrent student, its chunks per step times the chunks' mean length."""
    fused: bool = False
    """Whether every agent's rows went through one pass a step (``joint_loss``), not one pass per agent."""

    @property
    def undertrained(self) -> bool | None:
        """The kept chunk is the last one: the student may still have been improving when the budget ran out.
        None without held-out episodes: nothing tells whether it was still improving."""
        return self.best == len(self.history) - 1 if self.scored else None


def minibatches(n: int, size: int, agents: Sequence[str], rng: np.random.Generator) -> Iterator[dict[str, np.ndarray]]:
    """Endless shuffled passes over ``n`` rows joined end to end, ``min(size, n)`` rows a step, so a step budget
    needs no whole number of epochs; each agent draws its own order (a shared student's agents see different rows
    in one step)."""
    size = min(size, n)
    left = {a: np.empty(0, dtype=np.int64) for a in agents}
    while True:
        for a in agents:
            if len(left[a]) < size:
                left[a] = np.concatenate([left[a], rng.permutation(n)])
        yield {a: left[a][:size] for a in agents}
        left = {a: v[size:] for a, v in left.items()}


def fit(
    net: StudentNet,
    train: Dataset,
    held: Dataset | None,
    loss_fns: Mapping[str, LossFn],
    heads: Mapping[str, Head],
    opt: torch.optim.Optimizer,
    *,
    steps: int,
    chunk: int,
    batch_size: int,
    patience: int,
    rng: np.random.Generator,
    on_chunk: Callable[[dict[str, Any]], None] | None = None,
    seq_len: int = 16,
    burn_in: int = 0,
    joint_loss: LossFn | None = None,
) -> Fitted:
    """Train ``net`` in place for ``steps`` gradient steps, scored on ``held`` after every ``chunk`` steps.

    A fixed step count (not epochs over data whose size differs between sampling schemes) is what makes budgets
    equal. ``net`` ends with the weights of the chunk with the lowest held-out loss; with ``patience`` > 0 it stops
    after that many chunks without a lower one, leaving the rest of ``steps`` unspent (``Fitted.steps`` says how
    many were taken). ``held`` None turns scoring and early stopping off: the final weights are the last ones and
    the rows' held-out fields are None. A recurrent ``net`` draws chunks of ``seq_len`` steps with up to
    ``burn_in`` steps replayed before each (``sequences``). ``joint_loss``: one loss that serves every agent (the
    same head, loss and scale), given where it does: a net that ``can_fuse`` then answers all agents' rows in one
    pass and the loss is taken once over them, where every agent acted in every row and none has action masks.
    Their mean is the mean of the per-agent losses (equal rows per agent), so the fit is the same, in fewer ops.
    """
    inputs = {a: net.encode(a, o) for a, o in train.obs.items()}
    masks = {a: torch.as_tensor(m, dtype=torch.bool) for a, m in train.masks.items()}
    acting = {a: torch.as_tensor(m, dtype=torch.bool) for a, m in train.acting.items()}
    chunks = Sequences(train, seq_len, burn_in) if net.recurrent else None
    if chunks is not None:  # as many chunks a step as make batch_size steps on average
        per_step = max(1, round(batch_size * len(chunks) / len(train)))
        batches = minibatches(len(chunks), per_step, list(inputs), rng)
        rows_per_step = min(per_step, len(chunks)) * len(train) / len(chunks)
    else:
        batches = minibatches(len(train), batch_size, list(inputs), rng)
        rows_per_step = float(min(batch_size, len(train)))
    every_row = all(bool(m.all()) for m in acting.values())
    fused = joint_loss is not None and net.can_fuse() and not masks and every_row and list(inputs) == net.meta.agents
    best, best_at, best_state, stale, taken, history = math.inf, 0, None, 0, 0, []
    while taken < steps:
        if chunks is not None:  # stored states from the current weights (``Sequences.refresh``)
            chunks.refresh(net, inputs)
        net.train()
        losses, idle = [], 0
        for _ in range(min(chunk, steps - taken)):
            order = next(batches)
            if fused:
                loss = _fused_loss(net, train, inputs, order, joint_loss)  # type: ignore[arg-type]
            else:
                loss = _per_agent_loss(net, train, inputs, order, chunks, acting, masks, loss_fns)
            if loss is None:  # no agent acted in any row of this batch: nothing to fit, the step is spent unlogged
                idle += 1
                continue
            value = float(loss.detach())
            if not math.isfinite(value):  # a diverged student is refused, not saved
                raise UserError(
                    f"the distillation loss became {value} at gradient step {taken + len(losses) + idle + 1} of this "
                    "round; nothing was saved for this student: lower distill.lr, or check the teachers' outputs (a "
                    "DQN teacher's Q/tau with a tiny distill.dqn_temperature overflows)"
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(value)
        taken += len(losses) + idle
        net.eval()
        scores = held_out(net, held, loss_fns, heads) if held is not None else dict.fromkeys(HELD_KEYS)
        loss_mean = float(np.mean(losses)) if losses else None
        row = {"epoch": len(history) + 1, "loss": loss_mean, **scores, "grad_steps": taken}
        history.append(row)
        if on_chunk is not None:
            on_chunk(row)
        if held is None:
            best_at = len(history) - 1
        elif row["held_loss"] < best:
            best, best_at, best_state, stale = row["held_loss"], len(history) - 1, copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
            if patience and stale >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return Fitted(history, best_at, taken, scored=held is not None, rows_per_step=rows_per_step, fused=fused)


def _fused_loss(
    net: StudentNet, train: Dataset, inputs: Mapping[str, torch.Tensor], order: Mapping[str, np.ndarray], loss: LossFn
) -> torch.Tensor:
    """Every agent's drawn rows in one pass and one loss over them all: with equal rows per agent, the mean of the
    per-agent losses."""
    rows = [torch.from_numpy(order[a]) for a in inputs]
    raw = net.fused([x.index_select(0, i) for x, i in zip(inputs.values(), rows)])
    return loss(raw, torch.cat([train.teacher_logits[a].index_select(0, i) for a, i in zip(inputs, rows)]))


def _per_agent_loss(
    net: StudentNet,
    train: Dataset,
    inputs: Mapping[str, torch.Tensor],
    order: Mapping[str, np.ndarray],
    chunks: Sequences | None,
    acting: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    loss_fns: Mapping[str, LossFn],
) -> torch.Tensor | None:
    """The mean over agents of each agent's loss on its drawn rows (those it acted on; a recurrent student's drawn
    chunks, unrolled); None where no agent acted in any of them."""
    loss = None  # gathers (index_select) and no zero to start from: the same numbers in fewer, cheaper ops
    for agent, x in inputs.items():
        if chunks is not None:  # the steps of the drawn chunks this agent acted on, unrolled
            raw, rows = chunks.unroll(net, agent, x, order[agent])
            if raw is None:
                continue
            idx = torch.from_numpy(rows)
        else:
            idx = torch.from_numpy(order[agent])
            if agent in acting:  # only the rows where this agent acted
                idx = idx[acting[agent].index_select(0, idx)]
                if len(idx) == 0:
                    continue
            raw = net(agent, x.index_select(0, idx))
        mask = masks[agent].index_select(0, idx) if agent in masks else None
        pred = apply_mask(raw, mask)
        target = apply_mask(train.teacher_logits[agent].index_select(0, idx), mask)
        term = loss_fns[agent](pred, target)
        loss = term if loss is None else loss + term
    return None if loss is None else loss / len(inputs)


def plot_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Train and held-out loss and held-out agreement (or action MSE) against gradient steps, the budget every
    sampling scheme shares; DAgger rounds marked. Without a held-out set (holdout 0) only the train loss is drawn."""
    plt = pyplot()
    x = [h.get("grad_steps", i + 1) for i, h in enumerate(history)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(x, [_nan(h["loss"]) for h in history], label="train")
    held = [h.get("held_loss") for h in history]
    if any(v is not None for v in held):
        ax1.plot(x, [_nan(v) for v in held], label="held-out")
    ax1.set_yscale("log")
    ax1.set_ylabel("distillation loss")
    ax1.legend(loc="upper right")
    if any(h.get("agreement") is not None for h in history):
        ax2.plot(x, [_nan(h.get("agreement")) for h in history], label="held-out agreement (Discrete agents)")
        ax2.set_ylabel("argmax agreement with teacher")
        ax2.set_ylim(0, 1.01)
        ax2.legend(loc="lower right")
    elif any(h.get("action_mse") is not None for h in history):
        ax2.plot(x, [_nan(h.get("action_mse")) for h in history], label="held-out action MSE (Box agents)")
        ax2.set_ylabel("action MSE vs teacher")
        ax2.legend(loc="lower right")
    else:
        ax2.text(0.5, 0.5, "no held-out episodes (holdout = 0)", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_axis_off()
    drawn = (ax1, ax2) if ax2.axison else (ax1,)
    for ax in drawn:
        ax.set_xlabel("gradient steps (all rounds)")
    for i in range(1, len(history)):
        if history[i]["iteration"] != history[i - 1]["iteration"]:
            for ax in drawn:
                ax.axvline(x[i - 1], color="grey", lw=0.6, ls="--")  # where the round's steps ended
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
