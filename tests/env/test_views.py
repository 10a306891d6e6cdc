"""Views: the partially observable navigation world hides what its state holds, and the global view hands a
policy its own observation followed by the state."""

from __future__ import annotations

import numpy as np
import pytest
from marl_distill_envs.navigation import parallel_env

from marl_distill.env.registry import resolve
from marl_distill.env.views import GLOBAL, ViewEnv, global_view
from marl_distill.errors import UserError


def test_limited_sight_hides_what_is_far_and_the_state_holds_everything():
    env = parallel_env(N=3, max_cycles=5, sight=0.5)
    obs, _ = env.reset(seed=0)
    world = env.world
    state = env.state()
    assert state.shape == env.state_space.shape == (18,)
    np.testing.assert_allclose(state[:6], world.pos[0].reshape(-1))
    np.testing.assert_allclose(state[12:], world.landmarks[0].reshape(-1))
    for i, agent in enumerate(env.possible_agents):
        o = obs[agent]
        assert o.shape == env.observation_space(agent).shape == (19,)
        rel, flags = o[4:14].reshape(5, 2), o[14:]
        truth = np.concatenate(
            [world.landmarks[0] - world.pos[0, i], np.delete(world.pos[0], i, axis=0) - world.pos[0, i]]
        )
        near = np.linalg.norm(truth, axis=1) <= 0.5
        np.testing.assert_array_equal(flags, near.astype(np.float32))
        np.testing.assert_allclose(rel[near], truth[near], rtol=1e-6)
        assert not rel[~near].any()  # nothing leaks from beyond sight
    assert parallel_env(N=3, sight=None).observation_space("agent_0").shape == (14,)  # full view, as before


def test_the_global_view_is_the_local_observation_then_the_state():
    env = ViewEnv(parallel_env(N=2, max_cycles=5, sight=0.3), (GLOBAL,))
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        local = env.env.world.observe()[0]
        for i, agent in enumerate(env.agents):
            assert obs[agent].shape == env.observation_space(agent).shape == (13 + 12,)  # 2 agents, 2 landmarks
            np.testing.assert_array_equal(obs[agent][:13], local[i])
            np.testing.assert_array_equal(obs[agent][13:], env.env.state())
        obs, *_ = env.step({a: 1 for a in env.agents})
    mpe = global_view(resolve("simple_spread", {"N": 2, "max_cycles": 5}))  # mpe2 through state()
    obs, _ = mpe.reset(seed=0)
    assert obs["agent_0"].shape[0] == mpe.env.observation_space("agent_0").shape[0] + mpe.state_space.shape[0]


def test_an_env_without_a_state_has_no_global_view():
    with pytest.raises(UserError, match="no global view"):
        global_view(resolve("penalty_game", {}))


def test_the_partially_observable_world_passes_check_env():
    from marl_distill.cli import cli

    assert cli(["check-env", "navigation", "--env-kwargs", '{"max_cycles": 10, "sight": 0.5}']) == 0


def test_the_history_view_remembers_the_last_observations_of_the_episode_only():
    env = ViewEnv(parallel_env(N=2, max_cycles=5, sight=0.3), ("history:3",))
    plain = parallel_env(N=2, max_cycles=5, sight=0.3)
    seen = []
    for episode in range(2):
        obs, _ = env.reset(seed=episode)
        mine, _ = plain.reset(seed=episode)
        seen = [mine]
        for _ in range(3):
            for agent in env.agents:
                want = [s[agent] for s in seen[::-1][:3]]  # newest first, zeros before the episode began
                want += [np.zeros_like(mine[agent])] * (3 - len(want))
                np.testing.assert_array_equal(obs[agent], np.concatenate(want))
                assert env.observation_space(agent).contains(obs[agent])
            obs, *_ = env.step({a: 2 for a in env.agents})
            mine, *_ = plain.step({a: 2 for a in plain.agents})
            seen.append(mine)


def test_the_grid_world_draws_what_is_in_its_window_where_it_is():
    """Each object within sight adds weights summing to 1 whose centroid is its relative position;
    objects outside add nothing; the PettingZoo API passes check-env."""
    from marl_distill.cli import cli

    env = parallel_env(N=3, max_cycles=5, sight=0.6, grid=7)
    obs, _ = env.reset(seed=3)
    world, g = env.world, 7
    centres = np.linspace(-0.6, 0.6, g)
    located = 0
    for _ in range(3):
        for i, agent in enumerate(env.possible_agents):
            o = obs[agent]
            assert o.shape == env.observation_space(agent).shape == (4 + 2 * g * g,)
            np.testing.assert_allclose(o[2:4], world.pos[0, i], rtol=1e-6)
            truth = [world.landmarks[0] - world.pos[0, i], np.delete(world.pos[0], i, axis=0) - world.pos[0, i]]
            for channel, rel in zip((o[4 : 4 + g * g], o[4 + g * g :]), truth):
                image = channel.reshape(g, g)
                inside = np.linalg.norm(rel, axis=1) <= 0.6  # the same disc as the coordinates' sight
                assert image.sum() == pytest.approx(inside.sum(), abs=1e-5)
                if inside.sum() == 1:  # one object: its centroid is where it is
                    centroid = [(image.sum(1) * centres).sum(), (image.sum(0) * centres).sum()]
                    np.testing.assert_allclose(centroid, rel[inside][0], atol=1e-5)
                    located += 1
        obs, *_ = env.step({a: 4 for a in env.agents})
    assert located >= 3  # seed 3 gives six single-object channels
    assert cli(["check-env", "navigation", "--env-kwargs", '{"max_cycles": 10, "sight": 0.5, "grid": 5}']) == 0
    with pytest.raises(ValueError, match="grid"):
        parallel_env(sight=0.5, grid=1)
    with pytest.raises(ValueError, match="sight"):
        parallel_env(grid=5)
