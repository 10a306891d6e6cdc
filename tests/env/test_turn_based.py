"""Turn-based (AEC) envs and agents that leave mid-episode, end to end: teachers, students, evaluation."""

from __future__ import annotations

import numpy as np
from helpers import QUICK_EVAL, distill_and_evaluate, teachers_for
from turn_worlds import IllegalMoveCounter, counted_tictactoe
from worlds import DyingTargetGame

from marl_distill.env.joint_vec_env import JointVecEnv, make_parallel
from marl_distill.evaluation.rollout import run_episodes
from marl_distill.policy.joint import MixedTeam, RandomPolicy
from marl_distill.policy.spec import EnvSpec
from marl_distill.teachers import TeacherConfig, TeacherTeam, train_teachers


def test_tictactoe_teachers_and_student_never_play_an_illegal_move():
    cfg = TeacherConfig(
        algo="maskable_ppo",
        steps=20_000,
        n_envs=8,
        seed=0,
        ppo={"n_steps": 64, "batch_size": 256, "learning_rate": 1e-3, "ent_coef": 0.01},
    )
    teachers = TeacherTeam(EnvSpec.of(make_parallel(counted_tictactoe)), train_teachers(counted_tictactoe, cfg).models)
    results, metrics = distill_and_evaluate(counted_tictactoe, teachers, epochs=20)
    IllegalMoveCounter.illegal = IllegalMoveCounter.moves = 0
    rng = np.random.default_rng(0)
    policies = [teachers, *(r.student for r in results.values())]
    for policy in policies:
        run_episodes(counted_tictactoe, policy, episodes=200, seed=0, n_envs=16, rng=rng)
    assert IllegalMoveCounter.moves > 3 * 200 * 5  # whole games were played, counted by the env itself
    assert IllegalMoveCounter.illegal == 0
    # agreement counts only the moves each player makes on its turn, not the forced waits in between
    for name in results:
        assert metrics[name]["action_agreement"]["player_1"] >= 0.9, metrics[name]
        assert sum(metrics[name]["agreement_states"].values()) < 0.7 * 2 * metrics[name]["team_return"]["episodes"] * 9
    # the first player learned to beat a random second player; a win (+1) arrives on the loser's turn too
    random = RandomPolicy(teachers.spec)
    vs_random = run_episodes(
        counted_tictactoe, MixedTeam(random, teachers, ["player_1"]), episodes=200, seed=0, n_envs=16, rng=rng
    )
    baseline = run_episodes(counted_tictactoe, random, episodes=200, seed=0, n_envs=16, rng=rng)
    assert vs_random.per_agent["player_1"].mean() > baseline.per_agent["player_1"].mean() + 0.2
    np.testing.assert_allclose(vs_random.per_agent["player_1"], -vs_random.per_agent["player_2"])
    # zero-sum: no team sum is scored; each seat is, with its outcomes as win / draw / loss rates
    assert metrics["_meta"]["shared_goal"]["value"] is False and metrics["teacher"]["normalized_return"] is None
    seats = metrics["teacher"]["per_seat"]
    assert all(abs(sum(s["win_draw_loss"].values()) - 1) < 1e-9 for s in seats.values()), seats
    second = seats["player_2"]  # random moving second against the first-moving teacher loses almost every game
    assert (
        second["gap_over_random"]["significant"]
        and metrics["random"]["per_seat"]["player_2"]["win_draw_loss"]["loss"] > 0.8
    )
    for name in results:  # each seat scored only where the teachers beat random there
        for seat, s in seats.items():
            assert (metrics[name]["per_seat"][seat]["normalized"] is None) != s["gap_over_random"]["significant"]
        assert metrics[name]["per_seat"]["player_2"]["normalized"] > 0.9


def test_an_agent_that_leaves_mid_episode_stops_acting_and_earning():
    venv = JointVecEnv(DyingTargetGame, 2)
    venv.reset([0, 1])
    for _ in range(2):
        step = venv.step({a: np.zeros(2, dtype=np.int64) for a in venv.agents})
    assert step.terminated["agent_1"].all() and not step.done.any()
    assert not step.acting["agent_1"].any() and step.acting["agent_0"].all()

    teachers = teachers_for(DyingTargetGame, steps=6_000)
    _, metrics = distill_and_evaluate(DyingTargetGame, teachers, epochs=20)
    episodes = QUICK_EVAL.episodes
    teacher = metrics["teacher"]["per_agent_return"]
    assert teacher["agent_0"] > 4.0 and 1.5 < teacher["agent_1"] <= 2.0  # agent_1 earns only while it is there
    for name in ("shared", "per-agent"):
        assert metrics[name]["agreement_states"] == {"agent_0": 5 * episodes, "agent_1": 2 * episodes}
        assert metrics[name]["joint_action_agreement"] >= 0.95, metrics[name]


def test_a_player_knocked_out_between_its_turns_leaves_at_once():
    from turn_worlds import EliminationGame

    from marl_distill.env.turn_based import TurnBasedParallel

    env = TurnBasedParallel(EliminationGame())
    env.reset(seed=0)
    _, rewards, terms, _, infos = env.step({"player_0": 1, "player_1": 0, "player_2": 0})
    assert terms == {"player_0": False, "player_1": False, "player_2": True} and rewards["player_2"] == -1.0
    assert env.agents == ["player_0", "player_1"] and infos["player_1"]["acting"]
    played = 1
    while env.agents:  # player_2's removal turn is skipped; the others play on to the time limit
        _, rewards, terms, truncs, infos = env.step(dict.fromkeys(env.agents, 0))
        assert "player_2" not in rewards
        played += 1
    assert played == 6 and all(truncs.values())
