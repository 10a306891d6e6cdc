"""check-env: PettingZoo's tests plus what they miss, with exit 2 and the first violation."""

from __future__ import annotations

from pettingzoo.test import parallel_api_test
from worlds import LeakyTargetGame

from marl_distill.cli import cli


def test_check_env_passes_a_good_env(capsys):
    assert cli(["check-env", "climbing_game", "--env-kwargs", '{"rounds": 5}']) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: parallel env, 2 agents") and "steps checked" in out


def test_check_env_refuses_observations_outside_their_space_that_pettingzoo_lets_through(capsys):
    parallel_api_test(LeakyTargetGame(n_agents=2), num_cycles=50)  # PettingZoo's own test does not notice
    code = cli(["check-env", "worlds:leaky_target_game"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "agent 'agent_1'" in err and "step 3 of episode 0" in err and "outside its declared space" in err
