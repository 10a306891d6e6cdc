"""Runs on top of the stages: one run stage by stage (``runner``), a grid of runs locally or on Ray
(``benchmark``, configured by ``config.BenchmarkConfig``), and exporting a run's teams (``export_run``)."""

from marl_distill.pipeline.benchmark import run_benchmark
from marl_distill.pipeline.config import BenchmarkConfig, load_benchmark
from marl_distill.pipeline.export_run import export_onnx
from marl_distill.pipeline.runner import load_run_config, run

__all__ = ["BenchmarkConfig", "export_onnx", "load_benchmark", "load_run_config", "run", "run_benchmark"]
