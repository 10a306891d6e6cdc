"""The docs site builds offline with every link and reference resolved, and its generated references list every
config key and every command-line option (the same sources as `marl-distill config` and `--help`)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import typer

from marl_distill.cli import app
from marl_distill.config import ExperimentConfig, build
from marl_distill.pipeline.config import BenchmarkConfig

ROOT = Path(__file__).resolve().parents[1]


def _keys(cls: type, obj: object, path: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        key = f"{path}.{f.name}" if path else f.name
        out += _keys(type(value), value, key) if dataclasses.is_dataclass(value) else [key]
    return out


def test_the_docs_build_strict_and_list_every_key_and_option(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    config = (tmp_path / "site" / "reference" / "config" / "index.html").read_text()
    keys = _keys(ExperimentConfig, build({})) + _keys(BenchmarkConfig, BenchmarkConfig())
    assert [k for k in keys if f"<code>{k}</code>" not in config] == []
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    options = [o for c in commands.values() for p in c.params for o in p.opts if o.startswith("--")]
    assert len(commands) >= 9 and [o for o in options if o not in cli] == []
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert all(name in api for name in ("train_teachers", "load_student", "ActingPolicy", "DistillConfig"))


def test_every_metrics_json_key_of_a_real_run_is_in_the_run_folder_reference():
    """The committed quickstart run's metrics.json (docs/results/data): each policy key and each _meta key."""
    import json

    metrics = json.loads((ROOT / "docs" / "results" / "data" / "quickstart" / "metrics.json").read_text())
    page = (ROOT / "docs" / "reference" / "run-folder.md").read_text()
    keys = {k for name, m in metrics.items() if name != "_meta" for k in m} | set(metrics["_meta"])
    assert len(keys) > 25 and sorted(k for k in keys if f"`{k}`" not in page) == []
