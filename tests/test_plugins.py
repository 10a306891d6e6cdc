"""The three ways to plug in an env, each end to end on PettingZoo envs this project does not ship:
a registered id (mpe2's simple_spread), a module:callable spec (pettingzoo.classic's rock-paper-scissors) and
an installed package's entry point (the same game declared under the group marl_distill.envs)."""

from __future__ import annotations

import json
import sys

import pytest

from marl_distill.cli import cli


def chain(env: str, tmp_path, capsys) -> dict:
    """train-teachers -> distill -> evaluate through the CLI; returns metrics.json."""
    teachers, students = tmp_path / "t", tmp_path / "s"
    steps = ["--steps", "1024", "--n-envs", "4", "--ppo-kwargs", '{"n_steps": 64, "batch_size": 128}']
    assert cli(["train-teachers", env, "--out", str(teachers), *steps]) == 0, capsys.readouterr().err
    assert cli(["distill", str(teachers), "--out", str(students), "--steps", "400", "--epochs", "2"]) == 0
    assert cli(["evaluate", str(students), "--episodes", "10"]) == 0, capsys.readouterr().err
    return json.loads((students / "metrics.json").read_text())


def test_registered_id(tmp_path, capsys):
    metrics = chain("simple_spread", tmp_path, capsys)
    assert set(metrics["shared"]["action_agreement"]) == {"agent_0", "agent_1", "agent_2"}


def test_module_callable_spec(tmp_path, capsys):
    metrics = chain("pettingzoo.classic.rps_v2:parallel_env", tmp_path, capsys)
    assert set(metrics["shared"]["per_agent_return"]) == {"player_0", "player_1"}


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A package installed the way pip installs one: a dist-info folder on sys.path declaring the entry point."""
    site = tmp_path / "site"
    info = site / "rps_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rps-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[marl_distill.envs]\nrps_plugin = pettingzoo.classic.rps_v2:parallel_env\n")
    monkeypatch.syspath_prepend(str(site))
    return "rps_plugin"


def test_entry_point(installed_plugin, tmp_path, capsys):
    assert cli(["envs"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(installed_plugin)]
    assert listed and "player_0" in listed[0] and "rps-plugin" in listed[0], listed
    metrics = chain(installed_plugin, tmp_path, capsys)
    assert metrics["_meta"]["env"] == installed_plugin
    assert "rps_plugin" not in sys.modules  # it is reached through the entry point, not imported by name
