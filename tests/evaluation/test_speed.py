"""Like-for-like acting: teachers' actors through the students' numpy runtime act exactly as SB3's predict, and
the cost keys (MACs, sizes, latencies) are there and counted right. No timing assertions: timings are machine's."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import Spaces, models_for
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from worlds import ContinuousTarget, HeteroTargetGame, TargetGame

from marl_distill.evaluation.speed import cost_metrics, team_costs
from marl_distill.policy.joint import MixedTeam, RandomPolicy
from marl_distill.policy.numpy_mlp import NumpyMLP, Unsupported
from marl_distill.policy.spec import EnvSpec
from marl_distill.students import StudentMeta, StudentNet, StudentTeam
from marl_distill.teachers import TeacherTeam


class TanhExtractor(BaseFeaturesExtractor):
    """A custom (non-flatten) features extractor: the numpy reader must refuse it."""

    def __init__(self, observation_space: gym.Space) -> None:
        super().__init__(observation_space, features_dim=16)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(observation_space.shape)), 16), nn.Tanh())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


def visited(spec: EnvSpec, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {a: rng.uniform(-1.5, 1.5, (n, spec.obs_dim(a))).astype(np.float32) for a in spec.agents}


def predicted(team: TeacherTeam, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {a: team.models[a].predict(o, deterministic=True)[0] for a, o in obs.items()}


@pytest.mark.parametrize("algo", ["ppo", "maskable", "dqn"])
def test_numpy_teachers_choose_sb3_predicts_discrete_actions(algo):
    spec = EnvSpec.of(HeteroTargetGame(sizes=(3, 5)))
    team = TeacherTeam(spec, models_for(spec, algo))
    assert team.acting_runtime == "numpy"
    obs = visited(spec, 2_000)
    want = predicted(team, obs)
    for a, acts in team.act_batch(obs).items():
        np.testing.assert_array_equal(acts, want[a])
        assert len(np.unique(want[a])) > 1  # the check is not vacuous
    for i in range(50):  # batch 1, as timed
        one = team.act_single({a: o[i] for a, o in obs.items()})
        sb3 = team.act_single_sb3({a: o[i] for a, o in obs.items()})
        assert all(one[a] == sb3[a] == want[a][i] for a in spec.agents), i


def test_numpy_teachers_choose_sb3_predicts_box_actions():
    # Gaussian actors act by their clipped mean; numpy and torch sum in different orders, so equal to float32 ulps
    spec = EnvSpec.of(ContinuousTarget(n_agents=2))
    team = TeacherTeam(spec, models_for(spec, "ppo", scale=3_000.0))
    assert team.acting_runtime == "numpy"
    obs = visited(spec, 2_000)
    want = predicted(team, obs)
    for a, acts in team.act_batch(obs).items():
        assert acts.shape == want[a].shape and acts.dtype == want[a].dtype
        np.testing.assert_allclose(acts, want[a], rtol=1e-5, atol=1e-6)
        assert (np.abs(want[a]) == 1.0).any() and (np.abs(want[a]) < 1.0).any()  # clipped and free both seen
    one = team.act_single({a: o[0] for a, o in obs.items()})
    assert all(one[a].shape == want[a][0].shape for a in spec.agents)


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"features_extractor_class": TanhExtractor}, "features extractor TanhExtractor"),
        ({"activation_fn": nn.GELU}, "GELU"),
    ],
)
def test_teachers_the_numpy_reader_cannot_read_fall_back_to_torch_and_say_so(kwargs, reason):
    spec = EnvSpec.of(TargetGame(n_agents=2))
    models = models_for(spec, "ppo")
    env = Spaces(spec.observation_spaces["agent_1"], spec.action_spaces["agent_1"])
    models["agent_1"] = PPO("MlpPolicy", env, n_steps=16, batch_size=16, seed=5, device="cpu", policy_kwargs=kwargs)
    team = TeacherTeam(spec, models)
    assert team.acting_runtime.startswith("torch (fallback: agent_1: ") and reason in team.acting_runtime
    obs = visited(spec, 500)
    want = predicted(team, obs)
    for a, acts in team.act_batch(obs).items():
        np.testing.assert_array_equal(acts, want[a])
    cost = cost_metrics(team, obs, repeats=3)
    assert cost["acting_runtime"] == team.acting_runtime and cost["macs_per_joint_step"] is None


@pytest.mark.parametrize("kind", ["shared", "per-agent"])
def test_students_numpy_runtime_gives_torchs_logits(kind):
    spec = EnvSpec.of(HeteroTargetGame())
    team = StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, kind, [16, 16])))
    obs = visited(spec, 300)
    torch_logits = team.logits(obs)
    for a, lg in team.numpy_logits(obs).items():
        np.testing.assert_allclose(lg, torch_logits[a].numpy(), rtol=1e-5, atol=1e-6)
    for a, acts in team.act_batch(obs).items():
        np.testing.assert_array_equal(acts, torch_logits[a].argmax(-1).numpy())


def test_mac_counts_match_hand_counts():
    # the quickstart's shape: 3 agents, 18 observations, 5 actions each
    agents = ("agent_0", "agent_1", "agent_2")
    box, five = gym.spaces.Box(-1.0, 1.0, (18,), np.float32), gym.spaces.Discrete(5)
    spec = EnvSpec(agents, dict.fromkeys(agents, box), dict.fromkeys(agents, five))
    teachers = TeacherTeam(spec, models_for(spec, "ppo"))  # SB3's default 64-64 actor
    assert teachers.acting_macs() == 3 * (18 * 64 + 64 * 64 + 64 * 5) == 16_704
    dqn = TeacherTeam(spec, models_for(spec, "dqn"))  # the Q-network, 64-64 as well
    assert dqn.acting_macs() == 16_704
    shared = StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, "shared", [32, 32])))
    # 18 observations + a one-hot id of 3 = 21 inputs; the full forward runs once per agent row
    assert shared.acting_macs() == 3 * (21 * 32 + 32 * 32 + 32 * 5) == 5_568
    per_agent = StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, "per-agent", [32, 32])))
    assert per_agent.acting_macs() == 3 * (18 * 32 + 32 * 32 + 32 * 5) == 5_280
    # float32: 4 bytes a parameter; a shared student counts its weights once
    assert shared.weight_bytes() == 4 * shared.acting_params() == 4 * (21 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5)
    assert teachers.weight_bytes() == 4 * teachers.acting_params() == 4 * 3 * (18 * 64 + 64 + 64 * 64 + 64 + 64 * 5 + 5)


def test_numpy_mlp_reads_activations_and_refuses_what_it_cannot_run():
    seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.LeakyReLU(0.1)), nn.Linear(8, 2))
    mlp = NumpyMLP.of(seq)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(mlp(x), seq(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert mlp.macs == 4 * 8 + 8 * 8 + 8 * 2 and mlp.describe() == "4-8-8-2 (leaky_relu(0.1), relu)"
    with pytest.raises(Unsupported, match="Conv1d"):
        NumpyMLP.of(nn.Sequential(nn.Conv1d(1, 1, 3), nn.Linear(4, 2)))


def test_cost_metrics_keys_for_every_kind_of_policy():
    spec = EnvSpec.of(TargetGame(n_agents=3, n_targets=5))
    obs = visited(spec, 20)
    teachers = TeacherTeam(spec, models_for(spec, "ppo"))
    cost = cost_metrics(teachers, obs, repeats=5)
    latencies = {"latency_us_per_joint_step", "latency_us_sb3_predict", "latency_us_batch"}
    assert latencies | {"macs_per_joint_step", "params", "weight_bytes", "acting_runtime"} <= set(cost)
    assert cost["acting_runtime"] == "numpy" and all(cost[k] > 0 for k in latencies)
    assert cost["params"] == teachers.acting_params() and cost["macs_per_joint_step"] == teachers.acting_macs()
    assert "batch-1" in cost["latency_method"] and "torch 1 thread" in cost["latency_method"]
    student = StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, "shared", [16])))
    s_cost = cost_metrics(student, obs, repeats=5)
    assert "latency_us_sb3_predict" not in s_cost and s_cost["acting_runtime"] == "numpy"
    assert {"latency_us_per_joint_step", "latency_us_batch", "macs_per_joint_step", "weight_bytes"} <= set(s_cost)
    zero = {"params": 0, "weight_bytes": 0, "macs_per_joint_step": 0}
    assert cost_metrics(RandomPolicy(spec), obs, repeats=5) == zero
    assert cost_metrics(MixedTeam(teachers, student, ["agent_0"]), obs, repeats=5) == {}
    assert torch.get_num_threads() == 1  # restored to conftest's setting


def test_numpy_teachers_scale_image_observations_as_sb3_does():
    # an MlpPolicy over a uint8 image space: SB3 divides by 255 before its flatten, and so must numpy
    image = gym.spaces.Box(0, 255, (4, 4, 1), np.uint8)
    agents = ("agent_0",)
    spec = EnvSpec(agents, {"agent_0": image}, {"agent_0": gym.spaces.Discrete(4)})
    team = TeacherTeam(spec, models_for(spec, "ppo"))
    assert team.acting_runtime == "numpy"
    obs = {"agent_0": np.random.default_rng(0).integers(0, 256, (500, 4, 4, 1)).astype(np.uint8)}
    np.testing.assert_array_equal(team.act_batch(obs)["agent_0"], predicted(team, obs)["agent_0"])


def test_speed_ups_are_like_for_like_or_absent():
    spec = EnvSpec.of(TargetGame(n_agents=2))
    obs = visited(spec, 20)
    student = StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, "shared", [8])))
    teachers = TeacherTeam(spec, models_for(spec, "ppo"))
    costs = team_costs({"teacher": teachers, "shared": student}, obs, repeats=5, rounds=3)
    assert costs["shared"]["speedup_vs_teacher"] > 0 and "3 interleaved rounds" in costs["shared"]["latency_method"]
    assert "speedup_vs_teacher" not in costs["teacher"]
    # a teacher that falls back to torch is timed, but no ratio is formed against a numpy student
    env = Spaces(spec.observation_spaces["agent_1"], spec.action_spaces["agent_1"])
    models = models_for(spec, "ppo")
    models["agent_1"] = PPO(
        "MlpPolicy", env, n_steps=16, batch_size=16, device="cpu", policy_kwargs={"activation_fn": nn.GELU}
    )
    costs = team_costs({"teacher": TeacherTeam(spec, models), "shared": student}, obs, repeats=5, rounds=2)
    assert costs["teacher"]["latency_us_per_joint_step"] > 0
    assert costs["shared"]["speedup_vs_teacher"] is None and "runtimes differ" in costs["shared"]["speedup_note"]
