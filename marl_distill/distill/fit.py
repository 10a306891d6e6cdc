"""Fit a student to teacher-labelled states: minibatch Adam, held-out agreement, early stop on the best epoch."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl_distill.distill.collect import Dataset
from marl_distill.distill.losses import LossFn
from marl_distill.distributions import DiagGaussian, Head, apply_mask
from marl_distill.plotting import pyplot, save_figure
from marl_distill.students import StudentNet


def held_out(
    net: StudentNet, data: Dataset, loss_fns: Mapping[str, LossFn], heads: Mapping[str, Head]
) -> dict[str, float | None]:
    """Held-out loss, argmax agreement (Discrete agents) and action MSE (Box agents) against the teachers."""
    loss, hits, n_cat, sq, n_box = 0.0, 0, 0, 0.0, 0
    with torch.no_grad():
        for agent, obs in data.obs.items():
            rows = data.acting[agent] if agent in data.acting else np.ones(len(obs), dtype=bool)
            if not rows.any():
                continue
            mask = data.masks[agent][rows] if agent in data.masks else None
            pred = apply_mask(net(agent, net.encode(agent, obs[rows])), mask)
            target = apply_mask(data.teacher_logits[agent][torch.as_tensor(rows)], mask)
            n = int(rows.sum())
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


def fit(
    net: StudentNet,
    train: Dataset,
    held: Dataset,
    loss_fns: Mapping[str, LossFn],
    heads: Mapping[str, Head],
    opt: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    patience: int,
    rng: np.random.Generator,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``net`` in place; stop after ``patience`` epochs without a lower held-out loss and keep the best
    epoch's weights."""
    inputs = {a: net.encode(a, o) for a, o in train.obs.items()}
    masks = {a: torch.as_tensor(m, dtype=torch.bool) for a, m in train.masks.items()}
    acting = {a: torch.as_tensor(m, dtype=torch.bool) for a, m in train.acting.items()}
    n = len(train)
    best, best_state, stale, history = math.inf, copy.deepcopy(net.state_dict()), 0, []
    for epoch in range(epochs):
        net.train()
        order = {a: torch.as_tensor(rng.permutation(n)) for a in inputs}
        losses = []
        for start in range(0, n, batch_size):
            loss = torch.zeros(())
            for agent, x in inputs.items():
                idx = order[agent][start : start + batch_size]
                if agent in acting:  # only the rows where this agent acted
                    idx = idx[acting[agent][idx]]
                    if len(idx) == 0:
                        continue
                mask = masks[agent][idx] if agent in masks else None
                pred, target = apply_mask(net(agent, x[idx]), mask), apply_mask(train.teacher_logits[agent][idx], mask)
                loss = loss + loss_fns[agent](pred, target)
            loss = loss / len(inputs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        net.eval()
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), **held_out(net, held, loss_fns, heads)}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if row["held_loss"] < best:
            best, best_state, stale = row["held_loss"], copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
            if patience and stale >= patience:
                break
    net.load_state_dict(best_state)
    return history


def plot_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Loss and held-out agreement per epoch, DAgger iterations marked."""
    plt = pyplot()
    x = list(range(1, len(history) + 1))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(x, [h["loss"] for h in history])
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch (all iterations)")
    ax1.set_ylabel("distillation loss (train)")
    ax1.plot(x, [h["held_loss"] for h in history], label="held-out")
    ax1.legend(["train", "held-out"], loc="upper right")
    if history[0]["agreement"] is not None:
        ax2.plot(x, [h["agreement"] for h in history], label="held-out agreement (Discrete agents)")
        ax2.set_ylabel("argmax agreement with teacher")
        ax2.set_ylim(0, 1.01)
    else:
        ax2.plot(x, [h["action_mse"] for h in history], label="held-out action MSE (Box agents)")
        ax2.set_ylabel("action MSE vs teacher")
    ax2.set_xlabel("epoch (all iterations)")
    for i in range(1, len(history)):
        if history[i]["iteration"] != history[i - 1]["iteration"]:
            for ax in (ax1, ax2):
                ax.axvline(i + 0.5, color="grey", lw=0.6, ls="--")
    ax2.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
