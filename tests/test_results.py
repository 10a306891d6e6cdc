"""Every results table on the docs site is its rendering from the committed JSON (docs/results/data), by the same
functions that write a benchmark's or a run's report.md, and every summary.json is what its results.json
aggregates to: a page cannot drift from its data, nor its data from the runs' records."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from marl_distill.evaluation.summary import aggregate
from marl_distill.utils.files import read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("render", ROOT / "docs" / "results" / "render.py")
render = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render)  # type: ignore[union-attr]
FOLDERS = sorted(d for d in render.DATA.glob("*") if d.is_dir()) if render.DATA.is_dir() else []


@pytest.mark.parametrize("page", render.pages(), ids=lambda p: p.relative_to(ROOT / "docs").as_posix())
def test_every_results_table_is_its_rendering_from_the_committed_json(page):
    assert page.read_text() == render.rendered(page), f"{page.name} differs: run python docs/results/render.py"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda d: d.name)
def test_each_data_folder_says_where_it_came_from_and_is_shown(folder, tmp_path):
    source = json.loads((folder / "source.json").read_text())
    assert source["kind"] in ("benchmark", "run", *render.SCRIPTS)
    assert source["command"].startswith(("marl-distill ", "python")) and len(source["commit"]) >= 7
    assert source["date"] and source["wall"]
    shown = "".join(p.read_text() for p in render.pages())
    assert f"<!-- render: {folder.name}" in shown, f"data/{folder.name} is on no results page"
    if source["kind"] == "benchmark":
        results = json.loads((folder / "results.json").read_text())
        seeds = {int(s[5:]) for tasks in results.values() for t in tasks.values() for p in t.values() for s in p}
        assert sorted(seeds) == source["seeds"]
        write_json(tmp_path / "summary.json", aggregate(results))  # as the benchmark writes it (NaN as null)
        assert read_json(tmp_path / "summary.json") == read_json(folder / "summary.json")


def test_the_results_pages_have_data():
    assert len(render.pages()) >= 3 and len(FOLDERS) >= 3
