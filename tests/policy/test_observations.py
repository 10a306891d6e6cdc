"""The declared observation preprocessor: images, other dtypes and discrete observations reach MLP teachers and
students as float32 Boxes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from helpers import distill_and_evaluate, teachers_for
from worlds import MixedObsTargetGame

from marl_distill.policy.observations import encoded_space, encoder
from marl_distill.policy.spec import EnvSpec


def test_encoders():
    image = gym.spaces.Box(0, 255, (2, 2, 1), np.uint8)
    np.testing.assert_allclose(encoder(image)(np.full((2, 2, 1), 255, np.uint8)), np.ones((2, 2, 1)))
    assert encoded_space(image) == gym.spaces.Box(0.0, 1.0, (2, 2, 1), np.float32)
    assert encoder(gym.spaces.Box(-1, 1, (2,), np.float64))(np.array([0.5, -1.0])).dtype == np.float32
    np.testing.assert_array_equal(encoder(gym.spaces.Discrete(3, start=1))(3), [0, 0, 1])
    np.testing.assert_array_equal(encoder(gym.spaces.MultiDiscrete([2, 3]))([1, 0]), [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(encoder(gym.spaces.MultiDiscrete([3, 2], start=[1, 5]))([3, 6]), [0, 0, 1, 0, 1])


def test_image_float64_and_discrete_observers_learn_and_distill():
    spec = EnvSpec.of(MixedObsTargetGame())
    assert [spec.obs_dim(a) for a in spec.agents] == [9, 3, 3]
    assert all(s.dtype == np.float32 for s in spec.observation_spaces.values())
    teachers = teachers_for(MixedObsTargetGame, steps=6_000)
    _, metrics = distill_and_evaluate(MixedObsTargetGame, teachers, epochs=20)
    assert metrics["teacher"]["team_return"]["mean"] > 0.9 * 15  # every agent finds its target, whatever it sees
    for name in ("shared", "per-agent"):
        assert metrics[name]["joint_action_agreement"] >= 0.95, metrics[name]
