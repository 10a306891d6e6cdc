"""The head of a run's report.md: the teachers as configured, and each student as its own distill record says it
was distilled (the config may have changed since: ``distill RUN --out RUN --name ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marl_distill.config import ExperimentConfig
from marl_distill.distillation.trainer import RECORD
from marl_distill.env.views import Views
from marl_distill.students import StudentMeta
from marl_distill.utils.files import read_json


def describe(folder: Path, meta: StudentMeta) -> dict[str, Any]:
    """What was actually distilled into ``folder``: its architecture and, from the distill.json the trainer
    writes, its loss, sampling and budget (the config may have changed since: ``distill RUN --out RUN``)."""
    record = Path(folder) / RECORD
    return {"kind": meta.kind, "hidden": meta.hidden, **(read_json(record) if record.is_file() else {})}


def notes(
    cfg: ExperimentConfig, students: dict[str, dict[str, Any]], views: Views, teachers: dict[str, Any] | None = None
) -> str:
    """The report's header: the teachers from the config (and their teachers.json, ``teachers``: whether their
    training was resumed), the students from their own distill records."""
    t = cfg.teachers

    def n(x: Any) -> str:
        return f"{x:,}" if isinstance(x, int) else str(x)

    trained = (teachers or {}).get("transitions_per_learner") or t.steps
    asked = f" ({n(t.steps)} asked for, rounded up to whole rollouts)" if trained != t.steps else ""
    lines = [
        f"Teachers: {t.algo} per agent{' (' + str(t.agent_algo) + ')' if t.agent_algo else ''}, "
        f"{n(trained)} transitions per learner{asked}, {t.n_envs} envs, seed {t.seed}.",
    ]
    resumed = (teachers or {}).get("resumed_at_joint_step")
    if resumed:
        lines[0] += (
            f" Their training was stopped and resumed (--resume) at joint step {', '.join(map(str, resumed))}, "
            "from checkpoints, to the same budget."
        )
    if not views.same:
        auto = cfg.distill.sampling == "auto"
        lines[0] += (
            f" Teachers observe the {views.teacher_view!r} view, students the {views.student_view!r} view: teachers "
            "label from theirs, students are fitted to and act on theirs, and agreement and KL are measured on the "
            "states the student team visits."
            + (
                " Sampling was auto, hence student-driven: teachers act on what the students cannot see, so the "
                "states the teachers visit are not the ones the students' own behaviour reaches."
                if auto
                else ""
            )
        )
    for name, d in students.items():
        if "grad_steps" not in d:
            lines.append(f"- **{name}**: {d['kind']}, hidden {d['hidden']}; no distill.json, budget unknown.")
            continue
        loss = d.get("loss")
        if loss == "kl":
            loss = f"kl (T={d.get('temperature')}, α={d.get('alpha')})"
        warn = " **May be under-trained** (its distill record says so)." if d.get("undertrained") else ""
        if d.get("undertrained") is None and d.get("holdout") == 0:
            warn = " No held-out episodes (holdout = 0): whether it was still improving is unknown."
        if d.get("differs_from_run"):
            warn += f" Distilled with settings other than the run's: {'; '.join(d['differs_from_run'])}."
        arch = ""
        if d.get("arch") == "gru":
            arch = (
                f", gru (sequences of {d.get('seq_len')} steps, burn-in {d.get('burn_in')}, about "
                f"{d.get('rows_per_step')} steps a gradient step)"
            )
        lines.append(
            f"- **{name}**: {d['kind']}{arch}, hidden {d['hidden']}, loss {loss}, {d.get('sampling')}-driven sampling, "
            f"{d.get('rounds')} round(s); budget {n(d['grad_steps'])} gradient steps (batch {d.get('batch_size')}), "
            f"{n(d.get('labelled_states_per_agent'))} labelled states per agent; best epoch {d.get('best_epoch')} "
            f"of {d.get('epochs_run')} run.{warn}"
        )
    same: dict[str, list[str]] = {}
    for name, d in students.items():
        if d.get("shared_labels") and d.get("labels_digest"):
            same.setdefault(d["labels_digest"], []).append(name)
    for names in same.values():
        if len(names) > 1:
            lines.append(
                f"- {', '.join(names)}: fitted and scored on the same teacher-labelled states and held-out episodes "
                "(labelled once for the run), so they differ by what they are, not by what they saw."
            )
    return "\n".join(lines[:1] + (["", "Students (as distilled):", ""] + lines[1:] if len(lines) > 1 else []))
