"""Every Python example in README.md and the docs runs as written, on tiny budgets: each ``md.run(...)`` call gets
overrides that shrink the quickstart to seconds, nothing else in the example changes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "teachers.steps=2000", "teachers.n_envs=4", "teachers.ppo.n_steps=50", "teachers.ppo.batch_size=100",
    "distill.samples=1000", "distill.epochs=3", "evaluate.episodes=10", "evaluate.mixed_episodes=4",
    "evaluate.latency_repeats=2", "evaluate.latency_rounds=1", "evaluate.onnx=false",
]  # fmt: skip
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _examples() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            if "md." in block:  # API examples (the reference pages' doctest lines are not blocks)
                out.append((f"{page.relative_to(ROOT)}#{i}", block))
    return out


EXAMPLES = _examples()


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_python_examples_run_as_written_on_tiny_budgets(where, code, tmp_path):
    assert "md.run(" in code or "md.load_" in code, where
    tiny = re.sub(r"md\.run\(([^()]*)\)", rf"md.run(\1, overrides={TINY!r})", code)
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    (tmp_path / "runs" / "quickstart").mkdir(parents=True)  # as after README command 1, which ran the quickstart
    shutil.copy(ROOT / "experiments" / "quickstart.toml", tmp_path / "runs" / "quickstart" / "config.toml")
    (tmp_path / "example.py").write_text(tiny)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (where, done.stderr[-3000:])
