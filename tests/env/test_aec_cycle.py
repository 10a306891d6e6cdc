"""The registry's mpe2 envs run through CycleParallel: it must play exactly PettingZoo's aec_to_parallel."""

from __future__ import annotations

import numpy as np
import pytest
from mpe2 import simple_speaker_listener_v4, simple_spread_v3

from marl_distill.env.aec_cycle import CycleParallel
from marl_distill.env.joint_vec_env import make_parallel
from marl_distill.env.registry import resolve


@pytest.mark.parametrize(
    ("module", "kwargs"),
    [(simple_spread_v3, {"N": 3, "max_cycles": 5}), (simple_speaker_listener_v4, {"max_cycles": 5})],
)
def test_cycle_parallel_plays_like_pettingzoos_wrapper(module, kwargs) -> None:
    ours, theirs = CycleParallel(module.env(**kwargs)), module.parallel_env(**kwargs)
    rng = np.random.default_rng(0)
    for episode in range(3):  # across truncation and reset
        (obs_a, _), (obs_b, _) = ours.reset(seed=episode), theirs.reset(seed=episode)
        steps = 0
        while theirs.agents:
            assert ours.agents == theirs.agents and obs_a.keys() == obs_b.keys()
            for a in obs_b:
                np.testing.assert_array_equal(obs_a[a], obs_b[a])
            actions = {a: int(rng.integers(theirs.action_space(a).n)) for a in theirs.agents}
            obs_a, rew_a, term_a, trunc_a, _ = ours.step(actions)
            obs_b, rew_b, term_b, trunc_b, _ = theirs.step(actions)
            assert dict(rew_a) == dict(rew_b) and term_a == term_b and trunc_a == trunc_b
            steps += 1
        assert steps == 5 and not ours.agents
    np.testing.assert_array_equal(ours.state(), theirs.state())


def test_registry_mpe2_ids_are_cycled_parallel_envs() -> None:
    env = make_parallel(resolve("simple_spread", {"N": 2}))
    assert isinstance(env, CycleParallel) and len(env.possible_agents) == 2
    with pytest.raises(ValueError, match="is_parallelizable"):
        CycleParallel(__import__("pettingzoo.classic.tictactoe_v3", fromlist=["env"]).env())


def test_check_only_wrappers_are_skipped_but_their_check_is_kept() -> None:
    """Discrete mpe2 envs are stepped under their assertion wrappers, still refusing an action outside the space;
    continuous ones keep mpe2's clipping wrapper in the path (a clipped action is a different step)."""
    discrete = CycleParallel(simple_spread_v3.env(N=2, max_cycles=5))
    assert discrete.stepper is discrete.raw
    discrete.reset(seed=0)
    with pytest.raises(AssertionError, match="outside its space"):
        discrete.step({a: 7 for a in discrete.agents})
    continuous = CycleParallel(simple_spread_v3.env(N=2, max_cycles=5, continuous_actions=True))
    assert continuous.stepper is continuous.aec
    ours, theirs = continuous, simple_spread_v3.parallel_env(N=2, max_cycles=5, continuous_actions=True)
    ours.reset(seed=1), theirs.reset(seed=1)
    too_big = {a: np.full(5, 3.0, dtype=np.float32) for a in theirs.agents}  # clipped to 1.0 by the wrapper
    obs_a, *_ = ours.step(too_big)
    obs_b, *_ = theirs.step(too_big)
    for a in obs_b:
        np.testing.assert_array_equal(obs_a[a], obs_b[a])
