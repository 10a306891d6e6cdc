"""Distill a teacher team into students: collect teacher-labelled states, fit, repeat (DAgger rounds).

Equal budgets: every sampling scheme gets the same teacher-labelled states (``samples`` per agent) and the same
gradient steps (``DistillConfig.total_grad_steps``, by default ``epochs`` epochs of the teacher-driven scheme's
training rows, whatever the scheme), each split evenly over the scheme's rounds: teacher-driven sampling spends
them in one round, student-driven and mixed sampling in ``iterations`` rounds on the growing aggregated data.
Every round is scored on held-out episodes after each epoch-sized chunk of steps (one history row, so rows of all
schemes are alike) and keeps its best chunk's weights. With ``patience`` 0, the default, the whole budget is
always spent; early stopping would leave steps unspent, so ``distill.json`` records the steps actually taken.

Seeds: one ``numpy.random.SeedSequence`` tree per run (``marl_distill.utils.seeding``); a student of kind ``KINDS[i]``
draws from the nodes under ``(DISTILL, i)``:

- ``(DISTILL, i, STUDENT_RNG)``: the numpy Generator for acting samples while collecting, the held-out split,
  the buffers' reservoir draws and the minibatch order;
- ``(DISTILL, i, INIT)``: torch's seed for the student's initial weights;
- ``(DISTILL, i, ENV_RESETS, k)``: round ``k``'s env resets (copy ``c`` resets from that seed + ``c``).

Teacher-driven states are labelled once per run, from ``(LABELS, ...)``, and shared by its students (``labels``).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from marl_distill.distillation.collect import Buffer, collect
from marl_distill.distillation.config import DistillConfig
from marl_distill.distillation.fit import fit, plot_curves
from marl_distill.distillation.labels import (
    Labels,
    fingerprint,
    in_student_view,
    joint_digest,
    label_policy,
    own_labeller,
    shared_labels,
    split,
)
from marl_distill.distillation.losses import make_loss
from marl_distill.distillation.resume import FOLDER, load_round, save_round, spent
from marl_distill.distillation.warm_start import warm_start
from marl_distill.env.views import Views
from marl_distill.policy.distributions import Categorical
from marl_distill.policy.joint import JointPolicy
from marl_distill.students import KINDS, StudentMeta, StudentNet, StudentTeam
from marl_distill.utils.files import write_json
from marl_distill.utils.progress import progress_bar
from marl_distill.utils.seeding import DISTILL, int_seed
from marl_distill.utils.seeding import rng as seed_rng
from marl_distill.utils.workers import can_fork, run_jobs

STUDENT_RNG, INIT, ENV_RESETS = 0, 1, 2
"""Roles under (DISTILL, student kind index) in the run's seed tree."""
RECORD = "distill.json"
"""A student's distillation record (``SUMMARY_KEYS``), written beside its weights."""
SUMMARY_KEYS = (
    "kind",
    "hidden",
    "arch",
    "seq_len",
    "burn_in",
    "loss",
    "temperature",
    "alpha",
    "sampling",
    "views",
    "rounds",
    "labelled_states_per_agent",
    "grad_steps",
    "batch_size",
    "rows_per_step",
    "best_epoch",
    "epochs_run",
    "undertrained",
    "holdout",
    "early_stopping",
    "shared_labels",
    "labels_digest",
)
"""The keys of ``students/KIND/distill.json``: the budget a student got and whether it may be under-trained."""


@dataclass
class DistillResult:
    student: StudentTeam
    history: list[dict[str, Any]]
    """One row per evaluated chunk of gradient steps: epoch (chunk of its round), loss, held-out loss, agreement and
    action MSE (None without held-out episodes), grad_steps (cumulative), iteration, beta, teacher_fraction."""
    summary: dict[str, Any]
    """What ``students/KIND/distill.json`` holds (``SUMMARY_KEYS``): the budget spent and the kept row."""
    rounds: list[dict[str, Any]]
    """Per round: its grad_steps, best_epoch (1-based over all rows) and undertrained (its best row was its last;
    None without held-out episodes)."""


def distill_one(
    factory: Callable[[], Any],
    teachers: JointPolicy,
    meta: StudentMeta,
    cfg: DistillConfig,
    *,
    rng: np.random.Generator,
    init_seed: int,
    reset_seeds: Sequence[int],
    log_dir: Path | None = None,
    progress: bool | None = False,
    init: StudentNet | None = None,
    checkpoint: Path | None = None,
    views: Views | None = None,
    shared: Labels | None = None,
) -> DistillResult:
    """Collect-and-fit rounds for one student; each round's acting team follows the beta schedule, and gets its
    share of the labelled states and gradient steps (``reset_seeds``: one per round). ``init``: start from these
    weights (a fine-tune, e.g. of a pruned student) instead of ``init_seed``'s. ``checkpoint``: a file saved after
    every round but the last, and continued from when it exists (the same student as one uninterrupted run).
    ``views``: teachers and students see different views of ``factory``'s env (which hands out both, see ``views``);
    ``teachers`` already read theirs, and the student acts on, and is fitted to, its own. ``shared``: the run's
    teacher-driven states (``shared_labels``), used instead of collecting where the student is memoryless and the
    teachers act."""
    cfg = cfg.resolved(views is None or views.same)
    torch.manual_seed(init_seed)
    net = StudentNet(meta)
    if init is not None:
        net.load_state_dict(init.state_dict())
    elif cfg.init_from_teacher:
        warm_start(net, getattr(teachers, "models", None))
    spec = views.student_spec if views is not None else teachers.spec
    team = StudentTeam(spec, net)
    actor = views.students(team) if views is not None else team
    # a recurrent student steps its state along every collected episode, acting or not (``collect``)
    rides_along = team.recurrent
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, foreach=True)  # on CPU the same numbers as the loop, faster
    labels = label_policy(teachers, cfg.loss)
    heads = {a: teachers.spec.head(a) for a in meta.agents}
    scale = getattr(labels, "logit_scale", None) if cfg.loss == "mse" else None  # DQN teachers: mse on raw Q
    scale = scale or (lambda _: 1.0)
    loss_fns = {a: make_loss(cfg.loss, cfg.temperature, cfg.alpha, heads[a], scale(a)) for a in meta.agents}
    # one loss for every agent where all share one categorical head and scale: fit can then fuse their passes
    alike = len({(getattr(heads[a], "n", None), scale(a)) for a in meta.agents}) == 1
    joint_loss = loss_fns[meta.agents[0]] if alike and isinstance(heads[meta.agents[0]], Categorical) else None
    schedule, samples, steps = cfg.schedule(), cfg.round_samples(), cfg.round_grad_steps()
    train_buf = Buffer(cfg.buffer_size, rng, whole_episodes=net.recurrent)
    held = max(1, int(cfg.buffer_size * cfg.holdout))
    held_buf = Buffer(held, rng, whole_episodes=net.recurrent) if cfg.holdout > 0 else None
    writer = _writer(log_dir)
    history: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []
    labelled = taken = next_episode = 0
    key = {"kind": meta.kind, "hidden": list(meta.hidden), "init_seed": init_seed, "cfg": asdict(cfg)}
    key["cfg"].pop("students")  # a resumed stage lists only the students still to do
    if key["cfg"]["student_view"] == "local":  # the key of checkpoints made before views existed
        key["cfg"].pop("student_view")
    if key["cfg"]["arch"] == "mlp":  # the key of checkpoints made before recurrent students existed
        for name in ("arch", "seq_len", "burn_in"):
            key["cfg"].pop(name)
    saved = load_round(checkpoint, key, rng)
    if saved is not None:
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        train_buf, held_buf, history, rounds = saved["train_buf"], saved["held_buf"], saved["history"], saved["rounds"]
        labelled, taken, next_episode = saved["labelled"], saved["taken"], saved["next_episode"]
    shared = shared if shared is not None and not rides_along and schedule == [1.0] else None
    for k, beta in enumerate(schedule):
        if k < len(rounds):  # finished before the checkpoint
            continue
        if shared is not None:  # the run's teacher-driven states, labelled and split once for all its students
            fresh_train, fresh_held, frac = shared.train, shared.held, 1.0
        else:
            with progress_bar(
                total=samples[k],
                desc=f"{meta.kind} round {k + 1}/{len(schedule)} beta={beta:.2f}",
                unit="state",
                progress=progress,
            ) as bar:
                got = collect(
                    factory,
                    teachers,
                    labeller=own_labeller(labels),
                    samples=samples[k],
                    n_envs=cfg.n_envs,
                    seed=reset_seeds[k],
                    rng=rng,
                    student=actor if beta < 1 or rides_along else None,
                    beta=beta,
                    sample_actions=cfg.sample_actions,
                    first_episode=next_episode,
                    on_step=bar.update,
                )
            data, frac = in_student_view(got.data, views), got.teacher_fraction
            assert data.episode is not None
            next_episode = int(data.episode.max()) + 1
            fresh_train, fresh_held = (data, None) if held_buf is None else split(data, cfg.holdout, rng)
        labelled += len(fresh_train) + (len(fresh_held) if fresh_held is not None else 0)
        train_buf.add(fresh_train)
        if held_buf is not None and fresh_held is not None:
            held_buf.add(fresh_held)
        digest = hashlib.sha1(usedforsecurity=False)
        for part in (train_buf.data, held_buf.data if held_buf is not None else None):  # what is fitted and scored
            fingerprint(digest, part)

        def log(row: dict[str, Any], k: int = k, beta: float = beta, frac: float = frac, done: int = taken) -> None:
            row.update(grad_steps=done + row["grad_steps"], iteration=k + 1, beta=beta, teacher_fraction=frac)
            if writer is not None:
                for key in ("loss", "held_loss", "agreement", "action_mse"):
                    if row.get(key) is not None:
                        writer.add_scalar(f"distill/{meta.kind}/{key}", row[key], row["grad_steps"])
            history.append(row)

        assert train_buf.data is not None
        fitted = fit(
            net,
            train_buf.data,
            held_buf.data if held_buf is not None else None,
            loss_fns,
            heads,
            opt,
            steps=steps[k],
            chunk=cfg.epoch_steps(),
            batch_size=cfg.batch_size,
            patience=cfg.patience,
            rng=rng,
            on_chunk=log,
            joint_loss=joint_loss,
            seq_len=cfg.seq_len,
            burn_in=cfg.burn_in,
        )
        taken += fitted.steps
        best_epoch = len(history) - len(fitted.history) + fitted.best + 1
        rounds.append({"grad_steps": fitted.steps, "best_epoch": best_epoch, "undertrained": fitted.undertrained,
                       "rows_per_step": fitted.rows_per_step, "labels_digest": digest.hexdigest()})  # fmt: skip
        if checkpoint is not None and k + 1 < len(schedule):
            state = {"net": net.state_dict(), "opt": opt.state_dict(), "train_buf": train_buf, "held_buf": held_buf}
            state.update(history=history, rounds=rounds, labelled=labelled, taken=taken, next_episode=next_episode)
            save_round(checkpoint, key, state, rng)
    if writer is not None:
        writer.close()
    summary = {
        "kind": meta.kind,
        "hidden": list(meta.hidden),
        "arch": meta.arch,
        "seq_len": cfg.seq_len if net.recurrent else None,
        "burn_in": cfg.burn_in if net.recurrent else None,
        "loss": cfg.loss,
        "temperature": cfg.temperature,
        "alpha": cfg.alpha,
        "sampling": cfg.sampling,
        "views": views.record() if views is not None else {"teachers": "local", "students": "local"},
        "rounds": len(schedule),
        "labelled_states_per_agent": labelled,
        "grad_steps": taken,
        "batch_size": cfg.batch_size,
        "rows_per_step": round(float(np.mean([r.get("rows_per_step", cfg.batch_size) for r in rounds])), 1),
        "best_epoch": rounds[-1]["best_epoch"],
        "epochs_run": len(history),
        "undertrained": rounds[-1]["undertrained"],
        "holdout": cfg.holdout,
        "early_stopping": held_buf is not None and cfg.patience > 0,
        "shared_labels": shared is not None,
        "labels_digest": joint_digest([r.get("labels_digest", "") for r in rounds]),
    }
    return DistillResult(StudentTeam(spec, net), history, summary, rounds)


def _writer(log_dir: Path | None) -> Any:
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir))


def student_seeds(cfg: DistillConfig, kind: str) -> dict[str, Any]:
    """``distill_one``'s seed arguments for a student of ``kind`` (its nodes of the run's seed tree)."""
    i = KINDS.index(kind)
    return {
        "rng": seed_rng(cfg.seed, DISTILL, i, STUDENT_RNG),
        "init_seed": int_seed(cfg.seed, DISTILL, i, INIT),
        "reset_seeds": [int_seed(cfg.seed, DISTILL, i, ENV_RESETS, k) for k in range(len(cfg.schedule()))],
    }


def _distill_and_save(
    job: Callable[[], DistillResult],
    name: str,
    cfg: DistillConfig,
    out_dir: Path | None,
    note: Mapping[str, Any] | None = None,
) -> DistillResult:
    """``job`` (a ``distill_one``), then (with ``out_dir``) its curves, budget, plot and student saved by the
    process that distilled it, so side-by-side students also save and draw side by side. The student's own files
    come last: its student.json is what marks it finished for ``--resume``. ``note`` joins its distill record."""
    result = job()
    result.summary.update(note or {})
    if out_dir is not None:
        folder = Path(out_dir) / "students" / name
        write_json(folder / "history.json", result.history)
        write_json(folder / RECORD, result.summary)
        plot_curves(
            result.history,
            Path(out_dir) / "plots" / f"distill_{name}.png",
            f"{name} student: {cfg.loss} loss, {cfg.sampling}-driven sampling",
        )
        result.student.save(folder)
        spent(Path(out_dir) / FOLDER / f"{name}.pt")
    return result


def distill(
    factory: Callable[[], Any],
    teachers: JointPolicy,
    cfg: DistillConfig,
    *,
    out_dir: Path | None = None,
    progress: bool | None = None,
    workers: int = 1,
    views: Views | None = None,
    names: Mapping[str, str] | None = None,
    note: Mapping[str, Any] | None = None,
) -> dict[str, DistillResult]:
    """Distill every requested student; save each under ``out_dir/students/NAME`` with its curves
    (history.json), its budget (distill.json) and a plot. With ``workers`` > 1 students are distilled side by side
    on forked processes: each draws only from its own seeds, so the students are the same as one at a time.
    ``names``: a student's folder name by kind (default: the kind); ``note``: keys added to every distill record.
    Returns the results by name."""
    cfg = cfg.resolved(views is None or views.same)
    cfg.validate()
    side_by_side = workers > 1 and len(cfg.students) > 1 and can_fork()
    shared = shared_labels(factory, teachers, cfg, views=views, progress=progress) if cfg.students else None
    jobs, names = [], {kind: (names or {}).get(kind, kind) for kind in cfg.students}
    for kind in cfg.students:
        name = names[kind]
        one = partial(
            distill_one,
            factory,
            teachers,
            StudentMeta.for_spec(
                views.student_spec if views is not None else teachers.spec,
                kind,
                cfg.hidden,
                views.student_view if views is not None else "local",
                cfg.arch,
            ),
            cfg,
            **student_seeds(cfg, kind),
            log_dir=Path(out_dir) / "tb" / f"distill_{name}" if out_dir is not None else None,
            # one bar per student would interleave; lines (no terminal) say whose they are
            progress=False if side_by_side and (progress or sys.stderr.isatty()) else progress,
            checkpoint=Path(out_dir) / FOLDER / f"{name}.pt" if out_dir is not None else None,
            views=views,
            shared=shared,
        )
        jobs.append(partial(_distill_and_save, one, name, cfg, out_dir, note))
    return dict(zip(names.values(), run_jobs(jobs, workers)))
