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
    out = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith(installed_plugin))
    assert "rps-plugin" in out[at] and "player_0, player_1" in out[at + 1], out[at : at + 2]
    at = next(i for i, line in enumerate(out) if line.startswith("simple_speaker_listener"))
    speaker, listener = out[at + 1], out[at + 2]  # agents with different spaces: one line each, aligned
    assert "speaker_0" in speaker and "(3,)" in speaker and "listener_0" in listener and "(11,)" in listener
    assert speaker.index("obs") == listener.index("obs") and speaker.index("act") == listener.index("act")
    metrics = chain(installed_plugin, tmp_path, capsys)
    assert metrics["_meta"]["env"] == installed_plugin
    assert "rps_plugin" not in sys.modules  # it is reached through the entry point, not imported by name


def test_file_path_spec_with_env_workers(tmp_path, capsys, monkeypatch):
    """`path/to/file.py:callable`, relative to the current folder, also in spawned env worker processes."""
    (tmp_path / "my").mkdir()
    (tmp_path / "my" / "signal_game.py").write_text(
        "from pettingzoo.classic import rps_v2\n\n\n"
        "def parallel_env(**kwargs):\n    return rps_v2.parallel_env(**kwargs)\n"
    )
    (tmp_path / "cfg.toml").write_text(
        '[env]\nid = "my/signal_game.py:parallel_env"\n'
        "[teachers]\nsteps = 512\nn_envs = 4\nenv_workers = 2\nppo = { n_steps = 64, batch_size = 128 }\n"
        "[distill]\nsamples = 300\nepochs = 2\n[evaluate]\nepisodes = 10\nmixed_episodes = 4\n"
    )
    monkeypatch.chdir(tmp_path)
    assert cli(["run", "cfg.toml", "--out", "out"]) == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(metrics["shared"]["per_agent_return"]) == {"player_0", "player_1"}
    assert cli(["train-teachers", "my/nothing_here.py:parallel_env", "--out", "x"]) == 2
    assert "cannot import" in capsys.readouterr().err and not (tmp_path / "x").exists()
    # the run folder keeps the file's path relative to itself: it evaluates from any working folder, and after
    # the run folder and the file move together
    assert 'id = "../my/signal_game.py:parallel_env"' in (tmp_path / "out" / "config.toml").read_text()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli(["evaluate", str(tmp_path / "out"), "--episodes", "4"]) == 0, capsys.readouterr().err
    (tmp_path / "moved").mkdir()
    for name in ("out", "my"):
        (tmp_path / name).rename(tmp_path / "moved" / name)
    assert cli(["evaluate", str(tmp_path / "moved" / "out"), "--episodes", "4"]) == 0, capsys.readouterr().err
