"""marl-distill: per-agent SB3 teachers of a PettingZoo env, distilled into compact shared or per-agent students.

The Python API: every ``marl-distill`` command as a function (``run``, ``train_teachers``, ``distill``,
``evaluate``, ``benchmark``, ``export``), trained teams loaded to act on raw env observations (``load_run``,
``load_teachers``, ``load_student``), and the configs. Importing the package loads nothing heavy (no torch):
each name is imported on first use.

>>> import marl_distill as md
>>> metrics = md.run("experiments/quickstart.toml", out="runs/quickstart")  # doctest: +SKIP
>>> student = md.load_student("runs/quickstart/students/shared")  # doctest: +SKIP
>>> actions = student.act(observations)  # doctest: +SKIP
"""

from marl_distill.utils.lazy import lazy_exports

_MODULES = {
    "pipeline.api": (
        "Run",
        "benchmark",
        "distill",
        "evaluate",
        "export",
        "load_run",
        "load_student",
        "load_teachers",
        "run",
        "train_teachers",
    ),
    "config": ("EnvConfig", "ExperimentConfig"),
    "teachers.config": ("TeacherConfig",),
    "distillation.config": ("DistillConfig",),
    "evaluation.config": ("EvalConfig",),
    "pipeline.config": ("BenchmarkConfig",),
    "policy.act": ("ActingPolicy",),
    "errors": ("RunFailed", "UserError"),
}
__all__ = sorted(name for names in _MODULES.values() for name in names)
__getattr__, __dir__ = lazy_exports(__name__, _MODULES)
