"""``marl-distill export``: a run's students (and teachers) as ONNX graphs, each reading its own party's view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from marl_distill.errors import UserError
from marl_distill.pipeline.runner import CONFIG, load_run_config, load_students, load_teachers, teachers_dir, views_of
from marl_distill.pipeline.writing import writing
from marl_distill.students import StudentTeam
from marl_distill.students.mlp import META
from marl_distill.utils.folder_lock import check_free


def export_onnx(path: Path, *, quantize: str | None = None, out: Path | None = None) -> list[dict[str, Any]]:
    """Export a student folder, or every student and the teachers of a run folder, to ONNX (parity checked; see
    ``compress.export``). Files: ``students/NAME/student[.int8].onnx`` and ``teachers/teachers[.int8].onnx``, or
    ``--out`` (a file for a student folder, a folder for a run folder). Returns one record per file, and one
    ``{"policy", "skipped": reason}`` for teachers that cannot be exported (their students still are)."""
    from marl_distill.compress import require_export

    require_export()
    from marl_distill.compress.paths import raw_obs_spaces, team_paths

    path = Path(path)
    holder = path.parent.parent if (path / META).is_file() else path
    check_free(holder)
    suffix = f".{quantize}.onnx" if quantize else ".onnx"
    jobs: list[tuple[str, Any, Path, Any]] = []
    skipped: list[dict[str, Any]] = []
    if (path / META).is_file():
        run_dir = path.parent.parent
        cfg = load_run_config(run_dir)
        views = views_of(cfg, run_dir)
        team = StudentTeam.load(path, views.student_spec, view=views.student_view)
        jobs = [(path.name, team, out or path / f"student{suffix}", views.student_factory)]
    elif (path / CONFIG).is_file():
        cfg = load_run_config(path)
        views = views_of(cfg, path)  # each graph reads its own party's view
        own = teachers_dir(cfg, path).resolve() == path.resolve()
        beside = out or (path / "teachers" if own else path)  # never into another run's teachers/
        teachers = load_teachers(cfg, path, views.teacher_spec)
        try:  # a teacher the graph builder cannot read (e.g. acting through torch) is skipped, not fatal
            team_paths(teachers, raw_obs_spaces(views.teacher_factory))
            jobs = [("teacher", teachers, beside / f"teachers{suffix}", views.teacher_factory)]
        except UserError as exc:
            skipped.append({"policy": "teacher", "skipped": str(exc)})
        for name, team in load_students(cfg, path, views.student_spec, views.student_view).items():
            file = out / f"{name}{suffix}" if out else path / "students" / name / f"student{suffix}"
            jobs.append((name, team, file, views.student_factory))
    else:
        raise UserError(f"{path} is neither a student folder ({META}) nor a run folder ({CONFIG}); pass one of them")
    from marl_distill.compress.export import exported, write_model

    if not jobs:
        raise UserError(f"nothing in {path} can be exported: {skipped[0]['skipped']}")
    for _, _, file, _ in jobs:  # refuse before writing anything
        write_model(None, file, check_only=True)
    if out is not None and (path / CONFIG).is_file() and (out.suffix == ".onnx" or out.is_file()):
        raise UserError(f"--out {out} must be a folder when exporting a run folder (one file per team)")
    done = [
        (name, file, *exported(team, factory, quantize=quantize, seed=cfg.evaluate.seed))
        for name, team, file, factory in jobs
    ]
    records = []  # every team exported and checked before the first file is written
    with writing(holder):
        for name, file, model, report in done:
            write_model(model, file)
            records.append({"policy": name, "file": str(file), **report, "onnx_bytes": file.stat().st_size})
    return records + skipped


def describe(rec: dict[str, Any]) -> str:
    """One line a person reads for one of ``export_onnx``'s records."""
    if "skipped" in rec:
        return f"{rec['policy']:>10}: skipped ({rec['skipped']})"
    line = f"{rec['policy']:>10}: {rec['file']}  {rec['onnx_bytes']:,} bytes, {rec['precision']}, parity max "
    line += f"|torch - onnxruntime| {rec['parity_fp32']['max_abs_diff']:.1e} on {rec['parity_fp32']['rows']} rows"
    if "int8_vs_fp32" in rec:
        line += f"; int8 vs fp32 actions {json.dumps(rec['int8_vs_fp32'])}"
    return line
