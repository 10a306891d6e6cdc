"""Deployment without the lab: a venv with no torch and no SB3, set up by the recipe docs/guides/onnx.md gives,
plays a run's ONNX exports (MLP teachers, a GRU student whose state the script carries) and gets evaluate's
returns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import TINY

from marl_distill.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def test_exports_play_in_a_venv_without_torch(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY)
    run = tmp_path / "run"
    lean = ["--set", 'distill.students=["per-agent"]', "--set", "evaluate.mixed_teams=false"]
    lean += ["--set", "distill.arch=gru"]  # the student's graph carries a state: the script threads it
    assert cli(["run", str(tmp_path / "tiny.toml"), "--out", str(run), *lean]) == 0, capsys.readouterr().err
    assert cli(["export", str(run)]) == 0, capsys.readouterr().err
    venv = tmp_path / "deploy"
    python = venv / "bin" / "python"
    quiet = {"capture_output": True, "text": True, "timeout": 600}
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    steps = [  # the ONNX guide's recipe, word for word
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
        [str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "experiments" / "deploy_requirements.txt")],
    ]
    for step in steps:
        done = subprocess.run(step, env=env, **quiet)
        assert done.returncode == 0, (step, done.stderr[-2000:])
    lacks = subprocess.run([str(python), "-c", "import torch"], env=env, **quiet)
    assert lacks.returncode != 0 and "No module named 'torch'" in lacks.stderr
    play = subprocess.run([str(python), str(ROOT / "experiments" / "deploy_onnx.py"), str(run)], env=env, **quiet)
    assert play.returncode == 0, play.stderr[-2000:]
    assert play.stdout.count(" equal") == 2 and "neither" in play.stdout, play.stdout
