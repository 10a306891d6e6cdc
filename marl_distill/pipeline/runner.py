"""One experiment: config -> teachers -> students -> metrics -> report, in one run folder.

Each stage reads what the previous one wrote, so the CLI's single-stage commands and ``run`` share this code,
and ``--resume`` skips every stage whose artifacts already exist.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from marl_distill import config as config_mod
from marl_distill.config import ExperimentConfig
from marl_distill.distillation import distill
from marl_distill.env.joint_vec_env import make_parallel
from marl_distill.env.registry import declared_cooperative, resolve
from marl_distill.env.views import LOCAL, Views, view_factory
from marl_distill.errors import UserError
from marl_distill.evaluation import evaluate_all
from marl_distill.evaluation.metrics import score_against
from marl_distill.evaluation.report import write_report
from marl_distill.pipeline import run_notes
from marl_distill.pipeline.writing import writing
from marl_distill.policy.joint import JointPolicy, TeacherEnsemble
from marl_distill.policy.spec import EnvSpec
from marl_distill.students import KINDS, StudentTeam
from marl_distill.students.mlp import META
from marl_distill.teachers import TeacherTeam, train_teachers
from marl_distill.teachers.train import MANIFEST, refuse_turns_for_recurrent
from marl_distill.utils.files import read_json, write_json
from marl_distill.utils.folder_lock import LOCK, check_free
from marl_distill.utils.progress import stage
from marl_distill.utils.provenance import commit as provenance_commit
from marl_distill.utils.provenance import provenance
from marl_distill.utils.workers import usable_cpus

CONFIG = "config.toml"
RESERVED = frozenset({"teacher", "random", "teacher-int8", "random-int8"})
"""Policy names metrics.json gives teachers and the random policy: no student may take them."""
STAGES = ("teachers", "distill", "evaluate")


def check_dir(run_dir: Path, resume: bool, *, can_resume: bool = True) -> None:
    """Refuse, writing nothing, a folder the command must not write into: a file, a user's non-empty folder, or
    (without ``resume``) one of our run folders. ``--resume`` only continues a folder this project made (its
    config.toml present); it is suggested only where the command has it (``can_resume``)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a folder; pass another --out")
    if not (run_dir.is_dir() and any(p.name != LOCK for p in run_dir.iterdir())):
        return
    check_free(run_dir)
    ours = (run_dir / CONFIG).is_file()
    if not ours:
        raise UserError(f"{run_dir} already holds files and is not a marl-distill run folder ({CONFIG} missing); "
                        "nothing was written: pass a new --out")  # fmt: skip
    if not resume:
        tail = ", or --resume (resume=True) to continue that run" if can_resume else ""
        raise UserError(f"{run_dir} already holds a run; pass a new --out (out=){tail}")


def prepare_dir(run_dir: Path, resume: bool, *, can_resume: bool = True) -> None:
    """``check_dir``, then create the folder."""
    check_dir(run_dir, resume, can_resume=can_resume)
    Path(run_dir).mkdir(parents=True, exist_ok=True)


def check_runnable(cfg: ExperimentConfig, stages: tuple[str, ...] = STAGES) -> None:
    """What would fail inside a stage, refused before anything is written: the env (it builds, its spaces), the
    teachers' settings against its agents and action spaces, and borrowed teachers that must exist."""
    factory, spec = env_factory(cfg)
    if "teachers" in stages and not cfg.teachers_from:
        cfg.teachers.validate(spec.agents, spec.action_spaces)
        refuse_turns_for_recurrent(factory, cfg.teachers, spec.agents)
    for folder in [cfg.teachers_from, *cfg.extra_teachers]:
        if folder and not (Path(folder) / "teachers" / MANIFEST).is_file():
            raise UserError(f"{folder} holds no teachers (teachers/{MANIFEST} missing); point at a teachers run")
    borrowed = trained_view(Path(cfg.teachers_from)) if cfg.teachers_from else None
    check_views(
        cfg, Views(resolve(cfg.env.id, cfg.env.kwargs), borrowed or cfg.teachers.view, cfg.distill.student_view)
    )


def check_views(cfg: ExperimentConfig, views: Views) -> None:
    """Settings that need teachers and students on one view, and the distillation budget for the sampling that
    ``auto`` becomes with these views, refused before anything is written."""
    cfg.distill.resolved(views.same).validate()
    if not views.same and cfg.evaluate.int8:
        raise UserError(
            "evaluate.int8 plays exported graphs, which read one view; with teachers.view != distill.student_view set "
            "evaluate.int8 = false and export the students with marl-distill export"
        )
    if not views.same and cfg.distill.init_from_teacher:
        raise UserError("distill.init_from_teacher needs students that see what teachers see (the same view)")


def load_run_config(run_dir: Path) -> ExperimentConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir} is not a marl-distill run folder ({CONFIG} missing)")
    return config_mod.load(path, run_folder=True)


def env_factory(cfg: ExperimentConfig) -> tuple[Any, EnvSpec]:
    factory = resolve(cfg.env.id, cfg.env.kwargs)
    env = make_parallel(factory)
    spec = EnvSpec.of(env)
    env.close()
    return factory, spec


def teachers_dir(cfg: ExperimentConfig, run_dir: Path) -> Path:
    return Path(cfg.teachers_from) if cfg.teachers_from else Path(run_dir)


def trained_view(folder: Path) -> str | None:
    """The view the teachers in ``folder`` were trained on, as their teachers.json records it (local before views
    existed); None where there are no teachers yet."""
    manifest = Path(folder) / "teachers" / MANIFEST
    if not manifest.is_file():
        return None
    try:
        return str(read_json(manifest).get("view", LOCAL))
    except (ValueError, AttributeError):
        return None  # damaged: TeacherTeam.load says so in one line


def views_of(cfg: ExperimentConfig, run_dir: Path | None = None) -> Views:
    """The env as teachers and students see it: the teachers' view as they were trained (borrowed teachers keep
    theirs), the students' as configured."""
    own = trained_view(teachers_dir(cfg, run_dir)) if run_dir is not None else None
    factory = resolve(cfg.env.id, cfg.env.kwargs)
    return Views(factory, own or cfg.teachers.view, cfg.distill.student_view)


def stage_teachers(cfg: ExperimentConfig, run_dir: Path, *, progress: bool | None = None) -> None:
    if cfg.teachers_from or (Path(run_dir) / "teachers" / MANIFEST).exists():
        return
    factory = view_factory(resolve(cfg.env.id, cfg.env.kwargs), cfg.teachers.view)
    with writing(run_dir), stage("teachers", progress):
        train_teachers(factory, cfg.teachers, out_dir=Path(run_dir), progress=progress)


def load_teachers(cfg: ExperimentConfig, run_dir: Path, spec: EnvSpec) -> TeacherTeam:
    return TeacherTeam.load(teachers_dir(cfg, run_dir), spec, dqn_temperature=cfg.distill.dqn_temperature)


def other_teachers(folder: Path, views: Views, cfg: ExperimentConfig) -> JointPolicy:
    """Another run's teachers (an ensemble member, a cross-play partner) as they act in ``views.play``: they must
    have been trained on this run's teacher view."""
    seen = trained_view(Path(folder)) or LOCAL
    if seen != views.teacher_view:
        raise UserError(
            f"the teachers in {folder} were trained on the {seen!r} view and this run's on {views.teacher_view!r}; "
            "teachers played or averaged together must share a view"
        )
    team = TeacherTeam.load(Path(folder), views.teacher_spec, dqn_temperature=cfg.distill.dqn_temperature)
    return views.teachers(team)


def extra_teachers(cfg: ExperimentConfig, views: Views) -> dict[str, JointPolicy]:
    return {folder: other_teachers(Path(folder), views, cfg) for folder in cfg.extra_teachers}


def distill_source(cfg: ExperimentConfig, run_dir: Path, views: Views) -> JointPolicy:
    """What students learn from: this run's teachers, averaged with any extra teacher runs, each reading its own
    view of ``views.play``."""
    primary = views.teachers(load_teachers(cfg, run_dir, views.teacher_spec))
    extras = list(extra_teachers(cfg, views).values())
    return TeacherEnsemble([primary, *extras]) if extras else primary


def stage_distill(
    cfg: ExperimentConfig,
    run_dir: Path,
    *,
    progress: bool | None = None,
    workers: int | None = None,
    names: dict[str, str] | None = None,
    note: dict[str, Any] | None = None,
) -> None:
    """Distill the students not yet in ``run_dir``; ``workers`` processes (default: one per usable core) distill
    them side by side, with the same results as one at a time. ``names``: folder name by kind (default: the
    kind); ``note``: keys added to each student's distill record."""
    torch.set_num_threads(cfg.torch_threads)
    names = {k: (names or {}).get(k, k) for k in cfg.distill.students}
    todo = [k for k in cfg.distill.students if not (Path(run_dir) / "students" / names[k] / META).exists()]
    if not todo:
        return
    views = views_of(cfg, run_dir)
    teachers = distill_source(cfg, run_dir, views)
    sub = config_mod.from_dict(type(cfg.distill), {**config_mod.to_dict(cfg)["distill"], "students": todo})
    with writing(run_dir), stage("distill", progress):
        distill(views.play, teachers, sub, views=views, out_dir=Path(run_dir), progress=progress,
                workers=workers or usable_cpus(), names=names, note=note)  # fmt: skip


def distill_into(
    cfg: ExperimentConfig, run_dir: Path, out: Path, kind: str, name: str | None = None, *, progress: bool | None = None
) -> list[str]:
    """``marl-distill distill``: a ``kind`` student of ``run_dir``'s teachers into ``out/students/NAME`` (``out``:
    ``run_dir`` itself, or a new run folder borrowing those teachers), everything checked before the first file is
    written. Settings that differ from the run's own ``[distill]`` (and extra teachers) are written into the
    student's distill record (and so its report); they are returned as ``key: run's -> this``. A named student
    draws the seeds of its kind, so two students of one kind differ by their settings alone (a paired comparison);
    one with the run's own settings would be an exact copy and is refused."""
    check_free(out)  # a busy folder first: what else is wrong may be the other command's work in progress
    name = name or kind
    taken = RESERVED | {k for k in KINDS if k != kind}  # another kind's folder would pass for that kind's student
    if name in taken or name.endswith("-int8") or not all(c.isalnum() or c in "-_." for c in name or "-"):
        raise UserError(f"--name {name!r}: use letters, digits, '-', '_' and '.', not {sorted(taken)} or *-int8")
    same = Path(out).resolve() == Path(run_dir).resolve()
    if (Path(out) / "students" / name).exists():
        raise UserError(f"{Path(out) / 'students' / name} exists; choose another --name or --out")
    run_cfg = load_run_config(run_dir)

    def setup(c: ExperimentConfig) -> dict[str, Any]:
        return {"distill": {**config_mod.to_dict(c)["distill"], "students": None}, "extra_teachers": c.extra_teachers}

    changed = config_mod.differences(setup(run_cfg), setup(cfg))
    if same and name != kind and not changed and (Path(out) / "students" / kind / META).exists():
        raise UserError(
            f"students/{kind} was distilled with these settings and the same seeds, so {name!r} would be an exact "
            "copy; change a setting (e.g. --hidden) to compare students of one kind"
        )
    if same and cfg.distill.student_view != run_cfg.distill.student_view:
        raise UserError(
            f"--student-view {cfg.distill.student_view} differs from {run_dir}'s distill.student_view, whose students "
            "are evaluated on that view; pass a new --out"
        )
    views = views_of(cfg, run_dir)
    check_views(cfg, views)
    distill_source(cfg, run_dir, views)  # missing or damaged teachers (extra ones too): refused before OUT
    if not same:
        check_dir(out, resume=False, can_resume=False)
    with writing(out):
        if not same:
            cfg.teachers_from = str(teachers_dir(cfg, run_dir).resolve())
            config_mod.save(cfg, Path(out) / CONFIG)
        note = {"differs_from_run": changed} if changed else None
        stage_distill(cfg, Path(out), names={kind: name}, note=note, progress=progress)
    return changed


def load_students(
    cfg: ExperimentConfig, run_dir: Path, spec: EnvSpec, view: str | None = None
) -> dict[str, StudentTeam]:
    """Every finished student of ``run_dir``; with ``view``, one distilled for another view is refused."""
    folder = Path(run_dir) / "students"
    names = sorted(p.name for p in folder.iterdir() if (p / META).exists()) if folder.is_dir() else []
    return {name: StudentTeam.load(folder / name, spec, view=view) for name in names}


def played_students(cfg: ExperimentConfig, run_dir: Path, views: Views) -> dict[str, Any]:
    """``run_dir``'s students as they act in ``views.play``."""
    loaded = load_students(cfg, run_dir, views.student_spec, views.student_view)
    return {name: views.students(team) for name, team in loaded.items()}


def stage_evaluate(
    cfg: ExperimentConfig,
    run_dir: Path,
    *,
    progress: bool | None = None,
    workers: int | None = None,
    differs_from_run: list[str] | None = None,
) -> dict[str, Any]:
    """metrics.json and report.md; ``workers`` processes (default: one per usable core) play episodes side by side.
    ``differs_from_run``: settings (``key: run's -> used``) other than the run's config.toml, said in both."""
    check_free(run_dir)  # before minutes of loading; the lock itself is taken once everything loaded
    torch.set_num_threads(cfg.torch_threads)
    views = views_of(cfg, run_dir)
    factory = views.play
    teachers = views.teachers(load_teachers(cfg, run_dir, views.teacher_spec))
    students = played_students(cfg, run_dir, views)
    start = time.perf_counter()
    cross = {folder: played_students(cfg, Path(folder), views) for folder in cfg.evaluate.cross_play}
    cross_teachers = {}  # other runs' teachers, played beside ours: drift the teachers already had
    own = teachers_dir(cfg, run_dir).resolve()
    for folder in cfg.evaluate.cross_play:
        other_cfg = load_run_config(Path(folder))
        if teachers_dir(other_cfg, Path(folder)).resolve() != own:
            cross_teachers[folder] = other_teachers(teachers_dir(other_cfg, Path(folder)), views, other_cfg)
    # exported graphs read one view: with two, evaluation does not export (marl-distill export does, per view)
    eval_cfg = cfg.evaluate if views.same else dataclasses.replace(cfg.evaluate, onnx=False)
    with writing(run_dir), stage("evaluate", progress):
        metrics = evaluate_all(
            factory,
            teachers,
            students,
            eval_cfg,
            cross_play=cross,
            cross_teachers=cross_teachers,
            progress=progress,
            workers=workers or usable_cpus(),
            cooperative=cooperative(cfg),
        )
        for folder, other in extra_teachers(cfg, views).items():
            shared = metrics["_meta"]["shared_goal"]["value"]
            scores = score_against(factory, other, students, cfg.evaluate, cooperative=shared)
            for name, score in scores.items():
                metrics[name].setdefault("by_teacher", {})[folder] = score
        metrics["teacher"]["bytes_on_disk"] = _bytes(teachers_dir(cfg, run_dir) / "teachers", "*.zip")
        for name in students:
            metrics[name]["bytes_on_disk"] = _bytes(Path(run_dir) / "students" / name, "weights.pt")
        described = {n: run_notes.describe(Path(run_dir) / "students" / n, s.meta) for n, s in students.items()}
        metrics["_meta"] = {
            "env": cfg.env.id,
            "agents": list(views.teacher_spec.agents),
            "views": views.record(),
            "setup": comparable_setup(cfg),
            "evaluation_seconds": round(time.perf_counter() - start, 2),
            **metrics.get("_meta", {}),
            "students": described,
            **({"differs_from_run": differs_from_run} if differs_from_run else {}),
            "provenance": provenance(),
        }
        write_json(Path(run_dir) / "metrics.json", metrics)
        manifest = teachers_dir(cfg, run_dir) / "teachers" / MANIFEST
        notes = run_notes.notes(cfg, described, views, read_json(manifest) if manifest.is_file() else None)
        if differs_from_run:
            notes += f"\n\nEvaluated with settings other than the run's: {'; '.join(differs_from_run)}."
        write_report(Path(run_dir), metrics, f"{cfg.name}: {cfg.env.id}", notes)
    return metrics


def cooperative(cfg: ExperimentConfig) -> bool | None:
    """``env.cooperative`` where set, else what the env's registry entry declares; None leaves it to evaluation
    (the env's own ``metadata``, then the rewards)."""
    if isinstance(cfg.env.cooperative, bool):
        return cfg.env.cooperative
    return declared_cooperative(cfg.env.id, None)


def comparable_setup(cfg: ExperimentConfig) -> dict[str, Any]:
    """What two runs must share for their teachers to be compared as views of one setting: the env's arguments and
    every teacher setting that shapes learning (not the view, seed, logging or process layout)."""
    skip = {"view", "seed", "tensorboard", "env_workers", "torch_threads", "checkpoint_every"}
    teachers = {k: v for k, v in config_mod.to_dict(cfg)["teachers"].items() if k not in skip}
    return {"env_kwargs": dict(cfg.env.kwargs), "teachers": teachers}


def _bytes(folder: Path, pattern: str) -> int:
    """What a policy costs to ship: its saved weights (teachers: the SB3 zips, which also hold value nets)."""
    return sum(p.stat().st_size for p in folder.glob(pattern))


def check_continuable(cfg: ExperimentConfig, run_dir: Path, resume: bool) -> None:
    """``check_dir``, and with ``resume`` a saved config that must equal ``cfg`` (the keys that differ are named)."""
    check_dir(run_dir, resume)
    saved = run_dir / CONFIG
    if not saved.exists():
        return
    borrowed = trained_view(Path(cfg.teachers_from)) if cfg.teachers_from else None  # auto follows their view
    same = config_mod.comparable(config_mod.to_dict(load_run_config(run_dir)), borrowed)
    changed = config_mod.differences(same, config_mod.comparable(config_mod.to_dict(cfg), borrowed))
    if changed:
        shown = "; ".join(changed[:3]) + (f" (and {len(changed) - 3} more)" if len(changed) > 3 else "")
        raise UserError(f"{saved} differs from this config in {shown}; resume with the same config or use a new --out")


def run(
    cfg: ExperimentConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    progress: bool | None = None,
    stages: tuple[str, ...] = STAGES,
    workers: int | None = None,
) -> dict:
    """The pipeline's ``stages`` into ``run_dir``; with ``resume`` finished stages are kept, not redone.
    ``workers``: processes for distillation and evaluation (default: one per usable core)."""
    provenance_commit()  # the checkout as this run starts, not as it ends
    run_dir = Path(run_dir)
    saved = run_dir / CONFIG
    check_continuable(cfg, run_dir, resume)  # nothing is written before every check has passed
    check_runnable(cfg, stages)
    with writing(run_dir):
        check_continuable(cfg, run_dir, resume)  # again, held: another command may have written it meanwhile
        if not saved.exists():
            config_mod.save(cfg, saved)
        if "teachers" in stages:
            stage_teachers(cfg, run_dir, progress=progress)
        if "distill" in stages:
            stage_distill(cfg, run_dir, progress=progress, workers=workers)
        return stage_evaluate(cfg, run_dir, progress=progress, workers=workers) if "evaluate" in stages else {}
