"""Many experiments: tasks x student settings x seeds, run on local processes (or a Ray cluster), one report.

Layout of the benchmark folder::

    teachers/TASK/seed_S/        one teacher run per task and seed, shared by every student setting
    runs/TASK/SETTING/seed_S/    one ordinary run folder per cell, distilling from that teacher run
    results.json, results.csv, report.md, plots/

A cell whose ``metrics.json`` exists under the same resolved config is reused, not redone; a folder whose saved
config differs is refused before anything runs, so a user's results are never overwritten.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marl_distill import config as config_mod
from marl_distill.env.registry import stored
from marl_distill.errors import DiskFull, UserError
from marl_distill.evaluation.summary import write_summary
from marl_distill.pipeline import runner
from marl_distill.pipeline.config import BenchmarkConfig
from marl_distill.pipeline.writing import writing
from marl_distill.teachers.train import MANIFEST
from marl_distill.utils.files import read_json, write_json
from marl_distill.utils.folder_lock import LOCK, check_free
from marl_distill.utils.progress import progress_bar
from marl_distill.utils.workers import die_with_parent, stop_pool

FAILURES = "failures.json"
"""Runs of the last benchmark call that failed: folder, one-line error, traceback and resolved config."""
TEACHER_STAGES = ("teachers",)
DISTILL_STAGES = ("teachers", "distill")


@dataclass
class Cell:
    """One run of the grid."""

    task: str
    setting: str  # "" for a teacher run
    seed: int
    folder: Path
    config: dict[str, Any]
    stages: tuple[str, ...] = runner.STAGES
    """What the first submission runs; cross-seed cells distill first and are evaluated once every seed has."""

    def finished(self) -> bool:
        done = self.folder / (f"teachers/{MANIFEST}" if self.stages == TEACHER_STAGES else "metrics.json")
        return done.exists()

    @property
    def evaluate_later(self) -> bool:
        return self.stages == DISTILL_STAGES


def cells(cfg: BenchmarkConfig, out: Path) -> tuple[list[Cell], list[Cell]]:
    """Teacher runs and student runs, each config resolved and validated before anything runs."""
    out = Path(out).resolve()
    teacher_cells, student_cells = [], []
    for task in cfg.tasks:
        for seed in cfg.seeds:
            base = config_mod.merge(cfg.base, task.config)
            tdir = out / "teachers" / task.name / f"seed_{seed}"
            tconf = config_mod.merge(base, {"name": f"{task.name} teachers", **_seeded(seed)})
            tconf = config_mod.merge(tconf, {"distill": {"students": []}})
            teacher_cells.append(Cell(task.name, "", seed, tdir, _resolved(tconf, tdir), TEACHER_STAGES))
            for setting in cfg.settings:
                sconf = config_mod.merge(base, setting.config)
                sconf = config_mod.merge(
                    sconf,
                    {
                        "name": f"{cfg.name}: {task.name} / {setting.name} / seed {seed}",
                        **_seeded(seed),
                        "teachers_from": str(tdir),
                    },
                )
                sdir = out / "runs" / task.name / setting.name / f"seed_{seed}"
                stages = runner.STAGES
                if task.name in cfg.cross_seed:
                    others = [str(sdir.parent / f"seed_{o}") for o in cfg.seeds if o != seed]
                    sconf = config_mod.merge(sconf, {"evaluate": {"cross_play": others}})
                    stages = DISTILL_STAGES
                student_cells.append(Cell(task.name, setting.name, seed, sdir, _resolved(sconf, sdir), stages))
    return teacher_cells, student_cells


def _seeded(seed: int) -> dict[str, Any]:
    """Config keys that make ``seed`` the run seed of a cell and of each of its stages."""
    return {"seed": seed, **{stage: {"seed": seed} for stage in config_mod.SEEDED_STAGES}}


def _resolved(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    try:
        cfg = config_mod.build(data)
    except UserError as exc:
        raise UserError(f"{folder.parent.name}/{folder.name}: {exc}") from None
    resolved = config_mod.to_dict(cfg)
    saved = folder / runner.CONFIG
    if saved.exists():
        old = config_mod.comparable(config_mod.to_dict(config_mod.load(saved, run_folder=True)))
        new = config_mod.comparable(resolved)
        if old != new and _inside_grid(old) != _inside_grid(new):
            raise UserError(f"{saved} was written by another config; use a new --out (results are never overwritten)")
    return resolved


def _inside_grid(config: dict[str, Any]) -> dict[str, Any]:
    """A cell's config with the paths the grid wrote into it cut to their part inside the grid folder
    (teachers/TASK/seed_S, runs/TASK/SETTING/seed_S): equal for a grid folder that was moved or copied."""
    out = {**config, "evaluate": dict(config["evaluate"])}
    if out.get("teachers_from"):
        out["teachers_from"] = Path(out["teachers_from"]).parts[-3:]
    out["evaluate"]["cross_play"] = [Path(p).parts[-4:] for p in out["evaluate"]["cross_play"]]
    return out


def _follow_move(cell: Cell) -> None:
    """A moved grid's cell: its config.toml (ours) takes the grid's new paths, so the run continues there."""
    saved = cell.folder / runner.CONFIG
    old = config_mod.to_dict(config_mod.load(saved, run_folder=True)) if saved.exists() else None
    if old is not None and config_mod.comparable(old) != config_mod.comparable(cell.config):
        config_mod.save(config_mod.build(cell.config), saved)


def run_cell(config: dict[str, Any], folder: str, stages: tuple[str, ...], workers: int | None = None) -> str:
    """One grid cell in whatever process runs it (a pool worker, a Ray task or this one), with ``workers``
    processes for its distillation and evaluation (default: every usable core)."""
    cfg = config_mod.build(config)
    runner.run(cfg, Path(folder), resume=True, progress=False, stages=stages, workers=workers)
    return folder


class _Local:
    """Runs on this machine: in this process with one worker, else a pool of fresh (spawned) processes."""

    def __init__(self, workers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.before = set(multiprocessing.active_children())
        # a benchmark killed outright takes its cells with it (their last periodic checkpoints stay)
        pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=die_with_parent) if workers > 1 else None
        self.pool = pool

    def submit(self, cell: Cell) -> Any:
        if self.pool is None:
            future: cf.Future = cf.Future()
            try:
                future.set_result(run_cell(cell.config, str(cell.folder), cell.stages))
            except Exception as exc:  # noqa: BLE001 - a failed cell is reported; the others run
                future.set_exception(exc)
            return future
        return self.pool.submit(run_cell, cell.config, str(cell.folder), cell.stages, 1)  # cells fill the cores

    def wait_any(self, pending: list[Any]) -> list[tuple[Any, BaseException | None]]:
        """Finished handles, each with the exception its run raised (None if it finished)."""
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        return [(f, f.exception()) for f in done]

    def close(self, stop: bool = False) -> None:
        """Wait for the running cells; with ``stop`` (Ctrl-C, SIGTERM), stop them now (their checkpoints stay)."""
        if self.pool is not None:
            if stop:
                stop_pool(self.pool, self.before)
            else:
                self.pool.shutdown(cancel_futures=True)


class _Ray:
    """Runs as Ray tasks on the cluster at ``address`` (marl-distill must be installed on its nodes)."""

    def __init__(self, address: str, cpus: float) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("--ray-address needs Ray; install it with: pip install 'marl-distill[ray]'") from None
        self.ray = ray
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        except ConnectionError as exc:
            msg = f"cannot reach a Ray cluster at {address!r} ({exc}); start one with `ray start --head`"
            raise UserError(msg) from None
        self.remote = ray.remote(num_cpus=cpus)(run_cell)
        self.workers = max(1, int(cpus))

    def submit(self, cell: Cell) -> Any:
        return self.remote.remote(cell.config, str(cell.folder), cell.stages, self.workers)

    def wait_any(self, pending: list[Any]) -> list[tuple[Any, BaseException | None]]:
        done, _ = self.ray.wait(pending, num_returns=1)
        out = []
        for handle in done:
            try:
                self.ray.get(handle)
                out.append((handle, None))
            except Exception as exc:  # noqa: BLE001 - Ray wraps the run's own error as its cause
                out.append((handle, getattr(exc, "cause", None) or exc))
        return out

    def close(self, stop: bool = False) -> None:
        self.ray.shutdown()


def run_benchmark(
    cfg: BenchmarkConfig,
    out: Path,
    *,
    ray_address: str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda _: None,
    command: str = "",
) -> dict[str, Any]:
    """Every unfinished cell (each task-seed's teachers first, then its students), then the summary."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder; pass another --out")
    ours = (out / "runs").is_dir() or (out / "teachers").is_dir()
    if out.is_dir() and any(p.name != LOCK for p in out.iterdir()) and not ours:
        raise UserError(f"{out} already holds files and is not a benchmark folder; pass a new --out")
    check_free(out)
    teacher_cells, student_cells = cells(cfg, out)
    checked = set()
    for cell in teacher_cells:  # each task's env and teacher settings, before anything is written
        if cell.task not in checked:
            runner.check_runnable(config_mod.build(cell.config), cell.stages)
            checked.add(cell.task)
    if out.is_dir():  # a moved grid: its cells' configs follow, under the grid's lock
        with writing(out):
            for cell in student_cells:
                _follow_move(cell)
    todo_t = [c for c in teacher_cells if not c.finished()]
    todo_s = [c for c in student_cells if not c.finished()]
    log(
        f"{len(student_cells)} runs ({len(cfg.tasks)} tasks x {len(cfg.settings)} settings x {len(cfg.seeds)} "
        f"seeds): {len(student_cells) - len(todo_s)} finished and reused, {len(todo_s)} to run; "
        f"teacher runs to train: {len(todo_t)} of {len(teacher_cells)} ({len(todo_t) + len(todo_s)} jobs in all)"
    )
    # connect first: a cluster that cannot be reached leaves no folder behind (and none is needed to rebuild the
    # report of a grid whose runs are all finished)
    remote = ray_address and (todo_t or todo_s)
    executor = _Ray(ray_address, cfg.ray_cpus_per_run) if remote else _Local(cfg.workers)
    with writing(out):
        return _run_cells(cfg, out, executor, teacher_cells, student_cells, todo_t, todo_s, progress, command)


def _run_cells(
    cfg: BenchmarkConfig,
    out: Path,
    executor: Any,
    teacher_cells: list[Cell],
    student_cells: list[Cell],
    todo_t: list[Cell],
    todo_s: list[Cell],
    progress: bool | None,
    command: str,
) -> dict[str, Any]:
    """``run_benchmark`` once its folder is checked and held."""
    (out / FAILURES).unlink(missing_ok=True)  # our own record of the last call's failures
    failed: dict[str, dict[str, Any]] = {}
    waiting = {(c.task, c.seed): [s for s in todo_s if (s.task, s.seed) == (c.task, c.seed)] for c in teacher_cells}
    ready = [s for c in teacher_cells if c not in todo_t for s in waiting[(c.task, c.seed)]]
    bar = progress_bar(total=len(todo_t) + len(todo_s), desc="benchmark", unit="job", progress=progress)
    stopped = True  # until the cells are all done: an interruption stops the running ones instead of waiting
    try:
        handles = {}
        for cell in todo_t + ready:
            handles[executor.submit(cell)] = cell
        while handles:
            for handle, error in executor.wait_any(list(handles)):
                cell = handles.pop(handle)
                bar.update(1)
                if isinstance(error, DiskFull):  # every other cell would meet the same full disk: stop the grid
                    raise error
                if error is not None:  # reported at the end; the other cells go on
                    failed[str(cell.folder)] = _failure(cell, error)
                    followers = waiting[(cell.task, cell.seed)] if cell.stages == TEACHER_STAGES else []
                    for follow in followers:
                        failed[str(follow.folder)] = _failure(follow, error, because="its teachers failed")
                        bar.update(1)
                elif cell.stages == TEACHER_STAGES:
                    for follow in waiting[(cell.task, cell.seed)]:
                        handles[executor.submit(follow)] = follow
        # cross-seed cells: every seed's students exist now, so each run can meet the others'
        ready_later = [c for c in todo_s if c.evaluate_later and str(c.folder) not in failed]
        later = [dataclasses.replace(c, stages=("evaluate",)) for c in ready_later]
        handles = {executor.submit(c): c for c in later}
        while handles:
            for handle, error in executor.wait_any(list(handles)):
                cell = handles.pop(handle)
                if error is not None:
                    failed[str(cell.folder)] = _failure(cell, error)
        stopped = False
    finally:
        bar.close()
        executor.close(stop=stopped)
    runs = [
        {
            "task": c.task,
            "setting": c.setting,
            "seed": c.seed,
            "folder": c.folder.relative_to(out.resolve()).as_posix(),
            "metrics": _shareable(read_json(c.folder / "metrics.json"), out),
            "setup": runner.comparable_setup(config_mod.build(c.config)),
        }
        for c in student_cells
        if (c.folder / "metrics.json").is_file()
    ]
    summary = write_summary(out, cfg.name, runs, seeds=cfg.seeds, command=command) if runs else {}
    if failed:
        write_json(out / FAILURES, list(failed.values()))
        first = next(iter(failed.values()))
        raise UserError(
            f"{len(failed)} of {len(teacher_cells) + len(student_cells)} runs failed, the first "
            f"{first['folder']}: {first['error']}; {out / FAILURES} lists each with its error and config; the report "
            f"covers the {len(runs)} finished runs, and the same command retries the failed ones"
        )
    return summary


def _shareable(metrics: dict[str, Any], out: Path) -> dict[str, Any]:
    """A run's metrics with an env file's path relative to the benchmark folder, so that results.json, results.csv
    and the report name no path of this machine, and keep their keys when the folder and the file move together."""
    meta = metrics.get("_meta", {})
    if isinstance(meta.get("env"), str):
        meta["env"] = stored(meta["env"], out)
    return metrics


def _failure(cell: Cell, error: BaseException, because: str = "") -> dict[str, Any]:
    """A failed cell for failures.json: where, why (one line, and the traceback), and its resolved config."""
    line = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    return {
        "folder": str(cell.folder),
        "error": f"{because} ({line})" if because else line,
        "traceback": "".join(traceback.format_exception(error)),
        "config": cell.config,
    }
