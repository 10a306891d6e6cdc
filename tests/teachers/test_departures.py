"""Agents that leave mid-episode: their own done at departure, and no learning on steps they were not there."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import DQN
from turn_worlds import EliminationGame, counted_tictactoe
from worlds import DepartingEarner, DyingTargetGame

from marl_distill.env.joint_vec_env import JointVecEnv
from marl_distill.env.subproc_joint_vec_env import SubprocJointVecEnv
from marl_distill.errors import UserError
from marl_distill.teachers import TeacherConfig, train_teachers
from marl_distill.teachers.absent_rows import AbsentRows
from marl_distill.teachers.lockstep import Coordinator
from marl_distill.teachers.pipe_vec_env import PipeAgentVecEnv

ONES = np.ones((1, 2), np.float32)  # DepartingEarner's only observation


def _value(model) -> float:
    with torch.no_grad():
        return float(model.policy.predict_values(model.policy.obs_to_tensor(ONES)[0]))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("truncate", [False, True])
def test_a_departing_agent_gets_done_once_at_its_own_departure_with_its_terminal_observation(workers, truncate):
    def factory():
        return DyingTargetGame(lives=2, rounds=5, truncate=truncate)

    venv = JointVecEnv(factory, 2) if workers == 1 else SubprocJointVecEnv(factory, 2, workers)
    coordinator = Coordinator(venv, [0, 1], on_step=None)
    try:
        first = coordinator.reset()
        assert first["agent_1"][2].all()
        zeros = {a: np.zeros(2, dtype=np.int64) for a in venv.agents}
        answers = [coordinator.step(zeros) for _ in range(5)]
    finally:
        venv.close()
    dones = np.array([a["agent_1"][2] for a in answers])
    np.testing.assert_array_equal(dones, [[0, 0], [1, 1], [0, 0], [0, 0], [0, 0]])  # at step 2, and only then
    obs, rewards, _, infos, _, present = answers[1]["agent_1"]
    for i in range(2):
        np.testing.assert_array_equal(infos[i]["terminal_observation"], obs[i])
        assert infos[i]["TimeLimit.truncated"] is truncate
        assert infos[i]["episode"]["l"] == 2
    assert not present.any()
    assert all(info == {} for a in answers[2:] for info in a["agent_1"][3])  # no second episode at copy end
    assert all(a["agent_1"][5].tolist() == [False, False] for a in answers[1:4])
    assert answers[4]["agent_1"][5].all()  # back in the copies' next episodes
    _, _, done0, infos0, _, _ = answers[4]["agent_0"]
    assert done0.all() and all(i["TimeLimit.truncated"] and i["episode"]["l"] == 5 for i in infos0)


def test_a_waiting_turn_based_player_is_present_and_a_knocked_out_one_is_not():
    venv = JointVecEnv(counted_tictactoe, 1)
    venv.reset([0])
    assert not venv.acting["player_2"][0] and venv.present["player_2"][0]  # waiting for its turn: still playing
    venv.close()
    venv = JointVecEnv(EliminationGame, 1)
    venv.reset([0])
    step = venv.step({a: np.ones(1, dtype=np.int64) for a in venv.agents})
    assert step.left["player_2"][0] and step.terminated["player_2"][0]
    assert not step.present["player_2"][0] and step.present["player_1"][0] and not step.done[0]
    venv.close()


def test_learners_of_leaving_agents_learn_their_true_values_ppo_and_dqn():
    # agent_1 (PPO) and agent_2 (DQN) earn 1 per step and leave with probability 1/4 after each step, so their
    # value is 1 / (1 - gamma * 3/4) in every state they are in. Trained on the steps after they left (reward 0,
    # the same observation), PPO's value came out 1.73-1.88 for 3.08 and DQN's Q 0.69-0.81 for 1.6.
    cfg = TeacherConfig(
        algo="ppo",
        agent_algo={"agent_2": "dqn"},
        steps=6_000,
        n_envs=8,
        seed=0,
        ppo={"n_steps": 64, "batch_size": 256, "learning_rate": 1e-3, "gamma": 0.9, "gae_lambda": 0.5},
        dqn={"learning_starts": 200, "gamma": 0.5, "learning_rate": 1e-3, "target_update_interval": 200},
    )
    models = train_teachers(lambda: DepartingEarner(n_agents=3), cfg, progress=False).models
    true_v = 1 / (1 - 0.9 * 0.75)
    assert _value(models["agent_1"]) == pytest.approx(true_v, rel=0.2)
    dqn = models["agent_2"]
    with torch.no_grad():
        q = dqn.policy.q_net(dqn.policy.obs_to_tensor(ONES)[0]).numpy()
    np.testing.assert_allclose(q, 1 / (1 - 0.5 * 0.75), rtol=0.2)
    # each leaver's episodes end when it leaves (about 4 steps on average), the stayer's at the time limit
    for agent in ("agent_1", "agent_2"):
        lengths = [e["l"] for e in models[agent].ep_info_buffer]
        assert 3.0 < np.mean(lengths) < 5.0, lengths
    assert {e["l"] for e in models["agent_0"].ep_info_buffer} == {10}


def test_rollouts_where_an_agent_is_absent_throughout_teach_it_nothing():
    # agent_1 earns 1 on the first step of each 12-step episode and leaves; all copies run in step, so most
    # 4-step rollouts hold no step of agent_1 at all. Its value is exactly 1.
    cfg = TeacherConfig(
        steps=3_000, n_envs=4, seed=0, ppo={"n_steps": 4, "batch_size": 16, "n_epochs": 4, "learning_rate": 3e-3}
    )
    result = train_teachers(lambda: DepartingEarner(p_leave=1.0, rounds=12), cfg, progress=False)
    assert _value(result.models["agent_1"]) == pytest.approx(1.0, rel=0.2)
    assert {e["l"] for e in result.models["agent_1"].ep_info_buffer} == {1}


def test_learners_episodes_end_at_departure_with_env_worker_processes():
    cfg = TeacherConfig(steps=640, n_envs=4, env_workers=2, seed=0, ppo={"n_steps": 16, "batch_size": 64})
    models = train_teachers(DyingTargetGame, cfg, progress=False).models
    assert {e["l"] for e in models["agent_1"].ep_info_buffer} == {2}  # its lives
    assert {e["l"] for e in models["agent_0"].ep_info_buffer} == {5}


class ClockedDyingGame(DyingTargetGame):
    """DyingTargetGame (agent_1 leaves after 3 of 4 rounds) whose observations show the round (one-hot, mod 3)
    in place of the target, so each of agent_1's transitions says which of its 3 states it starts from."""

    def __init__(self) -> None:
        super().__init__(lives=3, rounds=4)

    def _observe(self):
        out = super()._observe()
        for o in out.values():
            o[:3] = np.eye(3)[self.t % 3]
        return out


class InlinePipe:
    """One learner's pipe answered in this process by a Coordinator; the other agents play action 0."""

    def __init__(self, coordinator: Coordinator, agent: str) -> None:
        self.coordinator, self.agent, self.answer = coordinator, agent, None

    def send(self, msg) -> None:
        kind, payload = msg
        venv = self.coordinator.venv
        if kind == "reset":
            self.answer = self.coordinator.reset()[self.agent]
        elif kind == "step":
            actions = {a: np.zeros(venv.n_envs, dtype=np.int64) for a in venv.agents}
            actions[self.agent] = np.asarray(payload)
            self.answer = self.coordinator.step(actions)[self.agent]
        else:
            self.answer = ("ok", venv.call(*payload))

    def recv(self):
        return self.answer


def test_dqn_absent_cells_copy_transitions_drawn_from_the_whole_replay_buffer():
    # agent_1 is in rounds 0-2 of every 4-round episode and absent in round 3; copies run in step and train_freq
    # is 2, so each rollout holding an absent row has one real row: round 2, the departure. Copying within the
    # rollout made every absent cell round 2 (its share of the buffer 1/2); drawn from the whole buffer, absent
    # cells are rounds 0, 1 and 2 alike. 400 steps wrap the 150-row buffer.
    n_envs, steps, rows = 4, 400, 150
    venv = JointVecEnv(ClockedDyingGame, n_envs, autoreset=True)
    try:
        env = PipeAgentVecEnv(
            InlinePipe(Coordinator(venv, list(range(n_envs)), on_step=None), "agent_1"),
            n_envs,
            venv.spec.observation_spaces["agent_1"],
            venv.spec.action_spaces["agent_1"],
        )
        model = DQN(
            "MlpPolicy", env, buffer_size=rows * n_envs, train_freq=2, learning_starts=200, seed=0, device="cpu"
        )
        callback = AbsentRows(env, seed=0, agent="agent_1")
        model.learn(total_timesteps=steps * n_envs, callback=callback)
    finally:
        venv.close()
    buf = model.replay_buffer
    assert buf.full and buf.pos == steps % rows
    step_of_row = np.arange(rows) + rows * ((steps - 1 - np.arange(rows)) // rows)  # latest step stored there
    real = np.repeat((step_of_row % 4 != 3)[:, None], n_envs, axis=1)
    np.testing.assert_array_equal(callback.real, real)  # tracked across wrap-around; copies are no sources
    obs = buf.observations.reshape(rows, n_envs, -1)
    assert (obs[..., :3].sum(-1) == 1).all() and (obs[..., 3:] == [0, 1]).all()  # agent_1's real observations
    round_ = obs[..., :3].argmax(-1)
    np.testing.assert_array_equal(buf.dones, round_ == 2)  # whole transitions copied: the departure ends them
    copied = np.bincount(round_[~real], minlength=3) / (~real).sum()
    np.testing.assert_allclose(copied, 1 / 3, atol=0.12)  # was [0, 0, 1]


def test_dqn_optimize_memory_usage_is_refused_up_front():
    cfg = TeacherConfig(agent_algo={"agent_1": "dqn"}, dqn={"optimize_memory_usage": True})
    with pytest.raises(UserError, match="optimize_memory_usage = false"):
        cfg.validate(("agent_0", "agent_1"))
    TeacherConfig(dqn={"optimize_memory_usage": True}).validate(("agent_0", "agent_1"))  # no DQN learner: fine
