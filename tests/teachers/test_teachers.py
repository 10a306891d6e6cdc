"""Per-agent SB3 teachers trained together: isolation, lockstep, truncation, save/reload."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv
from worlds import ConstantReward, DyingTargetGame, TargetGame

from marl_distill.evaluation import run_episodes
from marl_distill.policy.spec import EnvSpec
from marl_distill.teachers import TeacherConfig, TeacherTeam, train_teachers
from marl_distill.teachers.lockstep import LearnerSpec
from marl_distill.teachers.train import learner_specs

PPO_FAST = {"n_steps": 64, "batch_size": 128, "n_epochs": 10, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def target_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("target")
    cfg = TeacherConfig(steps=6_000, n_envs=8, seed=1, ppo=PPO_FAST)
    result = train_teachers(lambda: TargetGame(n_agents=3), cfg, out_dir=out, progress=False)
    return out, result


def test_each_learner_learns_from_its_own_observations_and_rewards(target_run):
    # Targets are private and independent: a learner fed another agent's observation or reward stays at
    # chance (1/3 of the reward per step); one fed its own learns to hit its target every time.
    _, result = target_run
    spec = EnvSpec.of(TargetGame(n_agents=3))
    team = TeacherTeam(spec, result.models)
    roll = run_episodes(
        lambda: TargetGame(n_agents=3), team, episodes=40, seed=0, n_envs=8, rng=np.random.default_rng(0)
    )
    for agent, returns in roll.per_agent.items():
        assert returns.mean() >= 0.9 * 5, f"{agent} hit its target {returns.mean():.2f}/5 times per episode"


def test_learners_see_the_same_env_steps_ppo_beside_dqn():
    TargetGame.steps_taken = 0
    cfg = TeacherConfig(
        algo="ppo",
        agent_algo={"agent_1": "dqn"},
        steps=1_000,
        n_envs=4,
        seed=0,
        ppo={"n_steps": 48, "batch_size": 64},
        dqn={"train_freq": 5, "learning_starts": 100},
    )
    result = train_teachers(lambda: TargetGame(n_agents=3), cfg, progress=False)
    assert isinstance(result.models["agent_1"], DQN) and isinstance(result.models["agent_0"], PPO)
    steps = {a: m.num_timesteps for a, m in result.models.items()}
    # every learner got exactly one transition per env copy per joint step, and nothing else stepped the env
    assert set(steps.values()) == {result.joint_steps * 4}, steps
    assert TargetGame.steps_taken == result.joint_steps * 4
    assert result.joint_steps * 4 >= 1_000 and result.joint_steps % 240 == 0  # lcm(48, 5) rollouts


def test_time_limit_is_a_truncation_so_values_bootstrap():
    # Reward 1 forever, cut after 4 steps. With gamma = 0.8 the true value is 1/(1-0.8) = 5; a learner that
    # treated the cut as terminal could never value the state above 1+0.8+0.64+0.512 = 2.95.
    cfg = TeacherConfig(steps=6_000, n_envs=4, seed=0, ppo={**PPO_FAST, "gamma": 0.8, "gae_lambda": 1.0})
    result = train_teachers(ConstantReward, cfg, progress=False)
    for agent, model in result.models.items():
        obs, _ = model.policy.obs_to_tensor(np.ones((1, 2), np.float32))
        with torch.no_grad():
            value = float(model.policy.predict_values(obs))
        assert value > 4.0, f"{agent} values the state at {value:.2f}: the time limit was treated as terminal"


def test_saved_teachers_reload_with_plain_sb3_to_the_same_actions(target_run):
    out, result = target_run
    rng = np.random.default_rng(3)
    obs = rng.random((64, 6)).astype(np.float32)
    for agent, model in result.models.items():
        loaded = PPO.load(out / "teachers" / f"{agent}.zip", device="cpu")
        np.testing.assert_array_equal(
            loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0]
        )
    assert sorted(p.name for p in (out / "tb").iterdir()) == ["agent_0_1", "agent_1_1", "agent_2_1"]


def test_same_seed_same_teachers_in_process_or_with_env_worker_processes():
    # DyingTargetGame's agent_1 leaves mid-episode: its absent rows are replaced the same way on both paths
    cfg = TeacherConfig(steps=512, n_envs=4, seed=5, ppo={"n_steps": 32, "batch_size": 64})
    a = train_teachers(DyingTargetGame, cfg, progress=False).models
    cfg.env_workers = 2
    b = train_teachers(DyingTargetGame, cfg, progress=False).models
    for agent in a:
        for pa, pb in zip(a[agent].policy.parameters(), b[agent].policy.parameters()):
            torch.testing.assert_close(pa, pb)


def test_env_calls_reach_the_right_copies_in_process_and_in_workers():
    # SB3's get_attr / set_attr / env_method on a learner's VecEnv end up here, on the shared env copies
    from marl_distill.env.joint_vec_env import JointVecEnv
    from marl_distill.env.subproc_joint_vec_env import SubprocJointVecEnv

    for venv in (JointVecEnv(TargetGame, 5), SubprocJointVecEnv(TargetGame, 5, 2)):
        for i in range(5):
            venv.call("set", "tag", (i * 10,), {}, [i])
        assert venv.call("get", "tag", (), {}, [4, 0, 3]) == [40, 0, 30]
        assert venv.call("method", "observation_space", ("agent_0",), {}, [2])[0].shape == (5,)
        with pytest.raises(AttributeError):
            venv.call("get", "no_such_attribute", (), {}, [0, 4])
        assert venv.call("get", "tag", (), {}, [1]) == [10]  # still in step after an error
        venv.close()


class _Spaces(gym.Env):
    """Only the spaces a learner is built on: building an SB3 model steps nothing."""

    def __init__(self, spec: LearnerSpec) -> None:
        self.observation_space, self.action_space = spec.observation_space, spec.action_space


def _built(spec: LearnerSpec) -> BaseAlgorithm:
    return spec.build(DummyVecEnv([lambda: _Spaces(spec)] * spec.n_envs))


def _flat_params(model: BaseAlgorithm) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.policy.parameters()])


def test_no_two_learners_of_ten_runs_share_a_seed_or_their_starting_parameters(tmp_path):
    spec = EnvSpec.of(TargetGame(n_agents=3))
    runs = {run: learner_specs(TeacherConfig(seed=run), spec, 1, tmp_path, None) for run in range(10)}
    seeds = [s.seed for specs in runs.values() for s in specs]
    assert len(seeds) == 30 and len(set(seeds)) == 30
    # run 0's agent_1 and run 1's agent_0 were once both seeded 1 (run seed + agent index)
    a, b, again = _built(runs[0][1]), _built(runs[1][0]), _built(runs[0][1])
    assert not torch.equal(_flat_params(a), _flat_params(b))
    assert torch.equal(_flat_params(a), _flat_params(again))  # the same spec starts the same


@pytest.mark.parametrize(
    ("n_envs", "dqn", "per_transition"),
    [(1, {}, 1 / 4), (16, {}, 1 / 4), (8, {"train_freq": 5}, 1 / 4), (16, {"gradient_steps": 2}, 2 / 64)],
)
def test_dqn_takes_one_gradient_step_per_four_transitions_per_agent_unless_told(tmp_path, n_envs, dqn, per_transition):
    # SB3 counts train_freq in vector steps: with 16 copies its defaults made 1 gradient step per 64 transitions
    cfg = TeacherConfig(algo="dqn", n_envs=n_envs, dqn=dqn)
    for spec in learner_specs(cfg, EnvSpec.of(TargetGame(n_agents=2)), 1, tmp_path, None):
        model = _built(spec)
        assert isinstance(model, DQN) and model.train_freq.unit.value == "step"
        assert model.gradient_steps / (model.train_freq.frequency * n_envs) == pytest.approx(per_transition)
