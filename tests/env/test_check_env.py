"""check-env: PettingZoo's tests plus what they miss, with exit 2 and the first violation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test
from worlds import LeakyTargetGame

from marl_distill.cli import cli


@pytest.mark.parametrize("env, agents", [("climbing_game", 2), ("penalty_game", 2), ("navigation", 3)])
def test_built_in_worlds_pass_check_env(capsys, env, agents):
    assert cli(["check-env", env, "--env-kwargs", '{"max_cycles": 10}' if env == "navigation" else "{}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: parallel env, {agents} agents") and "steps checked" in out


def test_check_env_runs_pettingzoo_tests_on_turn_based_envs(capsys):
    assert cli(["check-env", "pettingzoo.classic.tictactoe_v3:env"]) == 0
    assert "aec" in capsys.readouterr().out.lower()


def test_navigation_vector_api_steps_every_copy_like_the_pettingzoo_api():
    from marl_distill_envs.navigation import NavigationBatch, parallel_env

    rng = np.random.default_rng(0)
    actions = rng.integers(5, size=(25, 4, 3))
    batch = NavigationBatch(4, 3, max_cycles=25)
    batch.reset(seed=7)
    single = [parallel_env() for _ in range(4)]
    for k, env in enumerate(single):  # copy k of the batch starts where a single env would
        env.reset(seed=7)
        env.world.pos, env.world.vel = batch.pos[k : k + 1].copy(), batch.vel[k : k + 1].copy()
        env.world.landmarks = batch.landmarks[k : k + 1].copy()
    for t in range(25):
        obs, rewards, truncated = batch.step(actions[t])
        for k, env in enumerate(single):
            o, r, _, trunc, _ = env.step({f"agent_{i}": actions[t, k, i] for i in range(3)})
            np.testing.assert_allclose(obs[k], np.stack(list(o.values())), rtol=1e-6)
            np.testing.assert_allclose(rewards[k], list(r.values()), rtol=1e-6)
            assert truncated[k] == all(trunc.values()) == (t == 24)


def test_check_env_refuses_observations_outside_their_space_that_pettingzoo_lets_through(capsys):
    parallel_api_test(LeakyTargetGame(n_agents=2), num_cycles=50)  # PettingZoo's own test does not notice
    code = cli(["check-env", "worlds:leaky_target_game"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "agent 'agent_1'" in err and "step 3 of episode 0" in err and "outside its declared space" in err


TEMPLATE = Path(__file__).resolve().parents[2] / "envs" / "template" / "my_env.py"


def test_the_env_template_passes_check_env_and_trains(tmp_path, capsys):
    spec = f"{TEMPLATE}:parallel_env"
    assert cli(["check-env", spec]) == 0 and capsys.readouterr().out.startswith("ok: parallel env, 2 agents")
    tiny = ["--steps", "800", "--n-envs", "4", "--ppo-kwargs", '{"n_steps": 50, "batch_size": 100}']
    assert cli(["train-teachers", spec, "--out", str(tmp_path / "t"), *tiny]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "broken, hint",
    [  # the two ways PettingZoo's seed test most often fails, each with its fix in the one line
        (("spaces.Discrete(3) for a in", "MOVES for a in"), "two envs share one action space object"),
        (("self.np_random.integers(0, self.size, size=2)", "np.random.randint(0, self.size, size=2)"), "seeded in"),
    ],
)
def test_check_env_says_why_pettingzoo_seed_tests_fail(tmp_path, capsys, broken, hint):
    text = TEMPLATE.read_text()
    assert broken[0] in text
    (tmp_path / "bad_env.py").write_text(text.replace(broken[0], broken[1]) + "\nMOVES = spaces.Discrete(3)\n")
    assert cli(["check-env", f"{tmp_path / 'bad_env.py'}:parallel_env"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "PettingZoo's API test failed: Incorrect" in err and hint in err, err
