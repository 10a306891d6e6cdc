"""The lab from Python: every command of ``marl-distill`` as a function, and trained teams loaded to act.

The command line is a thin layer over these functions, so a notebook, a sweep of your own and the CLI take
one code path and write the same run folders. Bad input raises ``UserError`` with one line naming the problem.

>>> import marl_distill as md
>>> metrics = md.run("experiments/quickstart.toml", out="runs/quickstart")  # doctest: +SKIP
>>> student = md.load_student("runs/quickstart/students/shared")  # doctest: +SKIP
>>> observations, _ = env.reset(seed=0)  # doctest: +SKIP
>>> actions = student.act(observations)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marl_distill import config as config_mod
from marl_distill.config import EnvConfig, ExperimentConfig
from marl_distill.env.registry import resolve
from marl_distill.env.views import LOCAL
from marl_distill.errors import UserError
from marl_distill.pipeline import runner
from marl_distill.policy.act import ActingPolicy
from marl_distill.policy.joint import JointPolicy
from marl_distill.students import StudentTeam
from marl_distill.students.mlp import META
from marl_distill.teachers.config import TeacherConfig
from marl_distill.utils.files import read_json

ConfigLike = ExperimentConfig | str | Path


def _config(config: ConfigLike, overrides: Sequence[str]) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        return config_mod.from_python(config, list(overrides))
    return config_mod.load(Path(config), list(overrides))


def run(
    config: ConfigLike,
    *,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Teachers, students, metrics and report into one run folder (``marl-distill run``).

    Args:
        config: an ``ExperimentConfig`` or the path of an experiment TOML.
        out: the run folder (default ``runs/NAME``: the TOML's file name, or the config's ``name``).
        overrides: ``key=value`` settings laid over the config, as ``--set`` takes them.
        resume: continue an interrupted run in ``out`` (finished stages are kept).
        workers: processes that distill and evaluate side by side (default: one per usable core).
        progress: bars (True), nothing (False), or bars on a terminal and lines elsewhere (None).

    Returns:
        metrics.json's content.

    >>> metrics = run("experiments/quickstart.toml", overrides=["teachers.steps=20000"])  # doctest: +SKIP
    """
    cfg = _config(config, overrides)
    name = cfg.name if isinstance(config, ExperimentConfig) else Path(config).stem
    folder = Path(out) if out is not None else Path("runs") / name
    return runner.run(cfg, folder, resume=resume, workers=workers, progress=progress)


def train_teachers(
    env: str,
    *,
    out: str | Path,
    teachers: TeacherConfig | None = None,
    env_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    resume: bool = False,
    progress: bool | None = None,
) -> Path:
    """One SB3 learner per agent, trained together, saved as ``out/teachers/AGENT.zip`` (plain SB3 models).

    Args:
        env: a registered id, ``package.module:callable`` or ``path/to/file.py:callable``.
        out: the run folder to create.
        teachers: how they are trained (default ``TeacherConfig()``); its ``seed`` follows ``seed``.
        env_kwargs: keyword arguments for the env factory.
        seed: the run seed (learners and env copies draw from its tree).
        resume: continue interrupted training in ``out`` from its last checkpoint.
        progress: as in ``run``.

    Returns:
        ``out``, which ``distill`` and ``load_teachers`` take.

    >>> folder = train_teachers("simple_spread", out="runs/t", teachers=TeacherConfig(steps=20_000))  # doctest: +SKIP
    """
    cfg = config_mod.build({"seed": seed})
    cfg.env = EnvConfig(env, dict(env_kwargs or {}))
    cfg.teachers = dataclasses.replace(teachers or TeacherConfig(), seed=seed)
    cfg = config_mod.build(config_mod.to_dict(cfg))  # validated, a file spec anchored, as from a TOML
    runner.run(cfg, Path(out), resume=resume, stages=("teachers",), progress=progress)
    return Path(out)


def distill(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    student: str = "shared",
    name: str | None = None,
    extra_teachers: Sequence[str | Path] = (),
    progress: bool | None = None,
    **settings: Any,
) -> tuple[Path, list[str]]:
    """A student of ``run_dir``'s teachers (``marl-distill distill``), with the run's own distill settings except
    those given.

    Args:
        run_dir: a run folder holding teachers.
        out: where the student goes (default: ``run_dir`` itself); another folder becomes a run borrowing them.
        student: ``shared`` or ``per-agent``.
        name: its folder under ``out/students`` (default: the kind).
        extra_teachers: other runs whose teachers are averaged in (default: the run's own).
        progress: as in ``run``.
        **settings: ``DistillConfig`` fields (``hidden=[16]``, ``loss="ce"``, ``samples=...``, ``epochs=...``).

    Returns:
        The student's folder, and the settings that differ from the run's (``key: run's -> this``), which its
        distill record and report also name.

    >>> folder, changed = distill("runs/quickstart", name="shared-16", hidden=[16])  # doctest: +SKIP
    """
    cfg = runner.load_run_config(Path(run_dir))
    fields = {f.name for f in dataclasses.fields(cfg.distill)} - {"students"}
    unknown = sorted(set(settings) - fields)
    if unknown:
        close = difflib.get_close_matches(unknown[0], fields, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the settings are {sorted(fields)}"
        raise UserError(f"distill has no setting {unknown[0]!r}; {hint}")
    data = {**config_mod.to_dict(cfg)["distill"], **settings, "students": [student]}
    cfg.distill = config_mod.from_dict(type(cfg.distill), data, "distill")
    cfg.distill.validate()
    for folder in extra_teachers:
        if not (Path(folder) / "teachers").is_dir():
            raise UserError(f"extra teachers {folder} hold no teachers/; pass a run folder from train-teachers")
    if extra_teachers:  # else the run's own extra teachers, if it had any
        cfg.extra_teachers = [str(Path(f).resolve()) for f in extra_teachers]
    target = Path(out) if out is not None else Path(run_dir)
    changed = runner.distill_into(cfg, Path(run_dir), target, student, name, progress=progress)
    return target / "students" / (name or student), changed


def evaluate(
    run_dir: str | Path,
    *,
    episodes: int | None = None,
    overrides: Sequence[str] = (),
    workers: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Teachers, random and every student of ``run_dir`` on the run's own settings (``marl-distill evaluate``);
    writes metrics.json and report.md, which name any setting changed here.

    Args:
        run_dir: a run folder with teachers and students.
        episodes: episodes per policy (default: the run's ``evaluate.episodes``); mixed and cross-seed teams play at
            most as many.
        overrides: ``evaluate.*`` or ``env.cooperative`` settings, ``key=value``.
        workers: as in ``run``.
        progress: as in ``run``.

    Returns:
        metrics.json's content.

    >>> metrics = evaluate("runs/quickstart", overrides=["env.cooperative=false"])  # doctest: +SKIP
    """
    cfg = runner.load_run_config(Path(run_dir))
    before = config_mod.to_dict(cfg)
    other = [s for s in overrides if not s.startswith(("evaluate.", "env.cooperative="))]
    if other:
        raise UserError(f"{other[0]}: evaluate takes evaluate.* keys and env.cooperative; the rest is the run's")
    cfg = config_mod.build(config_mod.apply_overrides(config_mod.to_dict(cfg), list(overrides)))
    if episodes is not None:
        mixed = min(episodes, cfg.evaluate.mixed_episodes)
        cfg.evaluate = dataclasses.replace(cfg.evaluate, episodes=episodes, mixed_episodes=mixed)
    cfg.evaluate.validate()
    after = config_mod.to_dict(cfg)
    changed = config_mod.differences(*({k: c[k] for k in ("env", "evaluate")} for c in (before, after)))
    return runner.stage_evaluate(cfg, Path(run_dir), progress=progress, workers=workers, differs_from_run=changed)


def benchmark(
    config: str | Path,
    *,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    ray_address: str | None = None,
    log: Any = None,
    command: str = "",
) -> dict[str, Any]:
    """A grid of tasks x student settings x seeds into one report (``marl-distill benchmark``).

    Args:
        config: a benchmark TOML (``marl-distill config --benchmark`` lists its keys).
        out: the benchmark folder (default ``runs/NAME``, NAME: the TOML file's name); finished runs in it are
            reused.
        overrides: ``key=value`` settings laid over the TOML.
        ray_address: run the grid on this Ray cluster instead of local processes.
        log: a function that takes each progress line (default: none).
        command: the command line that reproduces it, for the report.

    Returns:
        summary.json's content.
    """
    from marl_distill.pipeline.benchmark import run_benchmark
    from marl_distill.pipeline.config import load_benchmark

    cfg = load_benchmark(Path(config), list(overrides))
    folder = Path(out) if out is not None else Path("runs") / Path(config).stem
    return run_benchmark(cfg, folder, ray_address=ray_address, log=log or (lambda line: None), command=command)


def export(path: str | Path, *, quantize: str | None = None, out: str | Path | None = None) -> list[dict[str, Any]]:
    """A student folder, or every student and the teachers of a run folder, as ONNX graphs with parity checked
    (``marl-distill export``; needs the ``[export]`` extra). Returns one record per file written."""
    from marl_distill.pipeline.export_run import export_onnx

    return export_onnx(Path(path), quantize=quantize, out=Path(out) if out is not None else None)


@dataclass
class Run:
    """A run folder, loaded: its resolved config, metrics (if evaluated) and trained teams, ready to act."""

    path: Path
    config: ExperimentConfig
    metrics: dict[str, Any] | None
    teachers: ActingPolicy
    students: dict[str, ActingPolicy]


def _local_only(view: str, what: str) -> None:
    """A team acts on raw env observations only if it was trained on them (the local view)."""
    if view != LOCAL:
        raise UserError(f"{what} acts on the {view!r} view, which a raw env observation does not hold; play it "
                        "through marl_distill.env.ViewEnv")  # fmt: skip


def _acting(cfg: ExperimentConfig, team: JointPolicy) -> ActingPolicy:
    env = resolve(cfg.env.id, cfg.env.kwargs)()
    agents = list(env.possible_agents)
    obs = {a: env.observation_space(a) for a in agents}
    act = {a: env.action_space(a) for a in agents}
    env.close()
    return ActingPolicy(team, obs, act, seed=cfg.evaluate.seed)


def load_teachers(run_dir: str | Path) -> ActingPolicy:
    """A run's teachers as one team that acts on raw observations: ``team.act(observations)``."""
    cfg = runner.load_run_config(Path(run_dir))
    factory, spec = runner.env_factory(cfg)
    _local_only(runner.trained_view(runner.teachers_dir(cfg, Path(run_dir))) or LOCAL, f"the teachers of {run_dir}")
    return _acting(cfg, runner.load_teachers(cfg, Path(run_dir), spec))


def load_student(student_dir: str | Path) -> ActingPolicy:
    """A student (``RUN/students/NAME``) as a team that acts on raw observations.

    Returns:
        An ``ActingPolicy``: ``student.act(observations, masks=None, deterministic=True)`` takes the dict an env's
        ``reset`` or ``step`` returns and gives each agent's action for ``env.step``.
    """
    folder = Path(student_dir)
    if not folder.is_dir():  # a misspelt name: list the students beside it
        raise UserError(f"{folder} does not exist; pass a student folder, RUN/students/NAME"
                        f"{_students_in(folder.parent)}")  # fmt: skip
    if not (folder / META).is_file():
        raise UserError(f"{folder} holds no student ({META} missing); pass RUN/students/NAME"
                        f"{_students_in(folder / 'students')}")  # fmt: skip
    _local_only(read_json(folder / META).get("view", LOCAL), f"the student in {folder}")
    cfg = runner.load_run_config(folder.parent.parent)
    _, spec = runner.env_factory(cfg)
    return _acting(cfg, StudentTeam.load(folder, spec))  # this student alone, not every one of its run


def _students_in(folder: Path) -> str:
    """``; this run's students: a, b`` where ``folder`` holds students, else nothing."""
    found = sorted(p.name for p in folder.glob("*") if (p / META).is_file())
    return f"; this run's students: {', '.join(found)}" if found else ""


def load_run(path: str | Path) -> Run:
    """A run folder's config, metrics, teachers and students (``Run``)."""
    folder = Path(path)
    cfg = runner.load_run_config(folder)
    metrics = read_json(folder / "metrics.json") if (folder / "metrics.json").is_file() else None
    students = {p.name: load_student(p) for p in sorted((folder / "students").glob("*")) if (p / META).is_file()}
    return Run(folder, cfg, metrics, load_teachers(folder), students)
