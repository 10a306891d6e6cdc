"""Distillation: losses against hand-computed values; a fixed teacher distilled to near-perfect agreement."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from helpers import QUICK_EVAL, distill_and_evaluate, teachers_for, three_targets

from marl_distill.compress.prune import structured
from marl_distill.distillation import DistillConfig, ce_loss, distill, kl_loss, mse_loss
from marl_distill.distillation.trainer import distill_one, student_seeds
from marl_distill.evaluation import EvalConfig, evaluate_all
from marl_distill.policy.spec import EnvSpec
from marl_distill.students import StudentMeta, StudentTeam
from marl_distill.teachers import TeacherConfig, TeacherTeam, train_teachers
from marl_distill.utils.workers import can_fork, run_jobs


def test_kl_loss_matches_hand_computation_with_temperature_on_both_sides():
    teacher = torch.tensor([[2.0, 0.0]])
    student = torch.tensor([[0.0, 0.0]])
    t = 2.0
    p = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]  # softmax([2, 0] / 2)
    expected = t * t * sum(pi * math.log(pi / 0.5) for pi in p)
    assert float(kl_loss(student, teacher, t)) == pytest.approx(expected, rel=1e-5)
    # the teacher is the target: KL(teacher || student) differs from the reverse direction
    assert float(kl_loss(teacher, torch.tensor([[4.0, 0.0]]), 1.0)) != pytest.approx(
        float(kl_loss(torch.tensor([[4.0, 0.0]]), teacher, 1.0))
    )


def test_ce_and_mse_losses_match_hand_computation():
    student = torch.tensor([[1.0, 0.0, 0.0]])
    teacher = torch.tensor([[0.0, 3.0, 0.0]])
    expected_ce = -math.log(1 / (math.e + 2))  # student's log-probability of the teacher's argmax (action 1)
    assert float(ce_loss(student, teacher)) == pytest.approx(expected_ce, rel=1e-5)
    assert float(mse_loss(student, teacher)) == pytest.approx((1 + 9) / 3)


@pytest.fixture(scope="module")
def fixed_teachers():
    return teachers_for(three_targets, seed=2)


def test_students_distilled_from_fixed_teachers_agree_with_them(fixed_teachers, tmp_path):
    cfg = DistillConfig(students=["shared", "per-agent"], hidden=[32], samples=4_000, epochs=20, seed=0)
    results = distill(three_targets, fixed_teachers, cfg, out_dir=tmp_path, progress=False)
    students = {k: StudentTeam.load(tmp_path / "students" / k, fixed_teachers.spec) for k in results}
    metrics = evaluate_all(
        three_targets,
        fixed_teachers,
        students,
        EvalConfig(episodes=40, mixed_episodes=10, latency_repeats=20, latency_rounds=1),
        progress=False,
    )
    for name in ("shared", "per-agent"):
        m = metrics[name]
        assert m["joint_action_agreement"] >= 0.99, (name, m["joint_action_agreement"])
        assert min(m["action_agreement"].values()) >= 0.99
        assert m["normalized_return"] >= 0.95
    shared, per_agent = metrics["shared"]["params"], metrics["per-agent"]["params"]
    assert shared < per_agent < metrics["teacher"]["params"]


def test_shared_student_serves_each_agent_by_its_id(fixed_teachers):
    # The agents' observations differ only in the id slot after padding; a shared student that ignored the id
    # could not match three teachers. Agreement per agent is asserted above; here the id input must matter.
    from marl_distill.students import StudentMeta, StudentNet

    net = StudentNet(StudentMeta.for_spec(fixed_teachers.spec, "shared", [8]))
    x0 = net.encode("agent_0", np.zeros((1, 6), np.float32))
    x2 = net.encode("agent_2", np.zeros((1, 6), np.float32))
    assert x0.shape == (1, 6 + 3) and not torch.equal(x0, x2)


def test_beta_schedules():
    from marl_distill.distillation.schedule import BetaSchedule, betas

    assert betas("teacher", BetaSchedule(), 3) == [1.0, 1.0, 1.0]
    assert betas("student", BetaSchedule(), 4) == [1.0, 0.0, 0.0, 0.0]
    assert betas("mixed", BetaSchedule("exponential", 1.0, 0.5), 4) == [1.0, 0.5, 0.25, 0.125]
    assert betas("mixed", BetaSchedule("linear", 0.8), 3) == pytest.approx([0.8, 0.4, 0.0])


def test_student_driven_states_are_labelled_by_the_teachers_and_beta_decides_who_acts(fixed_teachers):
    from marl_distill.distillation.collect import collect
    from marl_distill.students import StudentMeta, StudentNet

    spec = fixed_teachers.spec
    untrained = StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, "shared", [8])))
    rng = np.random.default_rng(0)
    for beta in (0.0, 0.3, 1.0):
        got = collect(
            three_targets,
            fixed_teachers,
            samples=2_000,
            n_envs=8,
            seed=1,
            rng=rng,
            student=untrained,
            beta=beta,
        )
        assert got.teacher_fraction == pytest.approx(beta, abs=0.05)
        relabel = fixed_teachers.logits(got.data.obs)
        for agent, logits in got.data.teacher_logits.items():
            torch.testing.assert_close(logits, relabel[agent])  # labels are the teachers' view of each state
    student_view = untrained.logits(got.data.obs)
    assert not all(torch.allclose(student_view[a], got.data.teacher_logits[a]) for a in student_view)


def test_buffer_keeps_a_bounded_uniform_sample():
    from marl_distill.distillation.collect import Buffer, Dataset

    buf = Buffer(1_000, np.random.default_rng(0))
    for chunk in range(10):
        ids = np.arange(chunk * 1_000, (chunk + 1) * 1_000, dtype=np.float32)[:, None]
        buf.add(Dataset({"a": ids.copy()}, {"a": torch.as_tensor(ids)}))
    kept = buf.data.obs["a"][:, 0]
    assert len(kept) == 1_000 and buf.seen == 10_000
    assert 0.3 < (kept >= 5_000).mean() < 0.7  # later chunks do not simply push out earlier ones
    np.testing.assert_array_equal(kept, buf.data.teacher_logits["a"][:, 0].numpy())


@pytest.mark.parametrize("sampling", ["student", "mixed"])
def test_dagger_sampling_distils_a_fixed_teacher(fixed_teachers, sampling):
    cfg = DistillConfig(
        students=["shared"], hidden=[32], samples=4_000, epochs=15, iterations=3, sampling=sampling, seed=0
    )
    result = distill(three_targets, fixed_teachers, cfg, progress=False)["shared"]
    assert [h["iteration"] for h in result.history][-1] == 3
    metrics = evaluate_all(
        three_targets,
        fixed_teachers,
        {"shared": result.student},
        QUICK_EVAL,
        progress=False,
    )
    assert metrics["shared"]["joint_action_agreement"] >= 0.99


def test_one_shared_student_serves_agents_with_different_spaces():
    from worlds import HeteroTargetGame

    env = HeteroTargetGame()
    spec = EnvSpec.of(env)
    assert spec.obs_dim("agent_0") != spec.obs_dim("agent_1") and spec.n_actions("agent_0") != spec.n_actions("agent_1")
    teachers = teachers_for(HeteroTargetGame, seed=3)
    results, metrics = distill_and_evaluate(HeteroTargetGame, teachers, epochs=20)
    assert metrics["teacher"]["normalized_return"] == 1.0
    teacher_return = metrics["teacher"]["team_return"]["mean"]
    assert teacher_return >= 0.9 * 10, teacher_return  # both agents hit their targets: the teachers learned
    for name in ("shared", "per-agent"):
        assert metrics[name]["joint_action_agreement"] >= 0.99, (name, metrics[name]["joint_action_agreement"])
    # the shared head never offers agent_0 an action beyond its own 2
    logits = results["shared"].student.logits({"agent_0": np.zeros((4, 3), np.float32)})
    assert logits["agent_0"].shape == (4, 2)


def test_gaussian_kl_matches_hand_computation():
    from gymnasium import spaces

    from marl_distill.policy.distributions import DiagGaussian

    head = DiagGaussian(spaces.Box(-1.0, 1.0, (1,), np.float32))
    teacher = torch.tensor([[0.5, math.log(0.5)]])  # N(0.5, 0.5^2)
    student = torch.tensor([[0.0, 0.0]])  # N(0, 1)
    expected = math.log(1 / 0.5) + (0.25 + 0.25) / 2 - 0.5
    assert float(head.kl(teacher, student)) == pytest.approx(expected, rel=1e-5)


def test_continuous_actions_end_to_end_gaussian_teachers_to_gaussian_students():
    from worlds import ContinuousTarget

    teachers = teachers_for(ContinuousTarget, steps=8_000)
    _, metrics = distill_and_evaluate(ContinuousTarget, teachers, epochs=30)
    assert metrics["teacher"]["team_return"]["ci95"][0] > metrics["random"]["team_return"]["ci95"][1]
    for name in ("shared", "per-agent"):
        m = metrics[name]
        assert "action_agreement" not in m and set(m["action_mse"]) == {"agent_0", "agent_1"}
        assert max(m["action_mse"].values()) < 0.01, m["action_mse"]  # students act like their teachers
        assert max(m["kl_teacher_student"].values()) < 0.1, m["kl_teacher_student"]
        assert m["normalized_return"] > 0.9


def test_average_of_teacher_distributions():
    from gymnasium import spaces

    from marl_distill.policy.distributions import Categorical, DiagGaussian

    a, b = torch.tensor([[math.log(0.8), math.log(0.2)]]), torch.tensor([[math.log(0.2), math.log(0.8)]])
    torch.testing.assert_close(Categorical(2).average([a, b]).exp(), torch.tensor([[0.5, 0.5]]))
    g = DiagGaussian(spaces.Box(-1.0, 1.0, (1,), np.float32))
    mixed = g.average([torch.tensor([[-0.5, math.log(0.1)]]), torch.tensor([[0.5, math.log(0.1)]])])
    mean, log_std = g.split(mixed)
    assert float(mean) == pytest.approx(0.0) and float(log_std.exp() ** 2) == pytest.approx(0.01 + 0.25)


def test_one_student_from_several_teacher_runs_is_scored_against_each(fixed_teachers):
    from marl_distill.evaluation.metrics import score_against
    from marl_distill.policy.joint import TeacherEnsemble

    other = teachers_for(three_targets, seed=9)
    ensemble = TeacherEnsemble([fixed_teachers, other])
    student = distill(
        three_targets,
        ensemble,
        DistillConfig(students=["shared"], samples=4_000, epochs=20),
        progress=False,
    )["shared"].student
    for teacher in (fixed_teachers, other):
        score = score_against(three_targets, teacher, {"shared": student}, QUICK_EVAL)
        assert score["shared"]["joint_action_agreement"] >= 0.99  # both runs solved the game the same way
        assert score["shared"]["normalized_return"] > 0.95


def test_mse_on_dqn_teachers_compares_raw_q_values_not_q_over_tau():
    from marl_distill.distillation.losses import make_loss

    student, teacher = torch.tensor([[100.0, 0.0]]), torch.tensor([[0.0, 0.0]])  # logits in Q/tau units
    assert float(make_loss("mse", scale=0.01)(student, teacher)) == pytest.approx((1.0**2) / 2)
    cfg = TeacherConfig(algo="dqn", steps=256, n_envs=4, seed=0, dqn={"learning_starts": 64})
    factory = three_targets
    teachers = TeacherTeam(EnvSpec.of(factory()), train_teachers(factory, cfg, progress=False).models)
    assert teachers.logit_scale("agent_0") == teachers.dqn_temperature == 0.01
    history = distill(
        factory, teachers, DistillConfig(students=["per-agent"], loss="mse", samples=500, epochs=2), progress=False
    )["per-agent"].history
    assert history[0]["loss"] < 1.0, history[0]  # raw Q of a barely trained net is small; Q/0.01 is 10^4x larger


def test_per_agent_students_can_start_as_copies_of_their_ppo_teachers(fixed_teachers):
    from worlds import ContinuousTarget

    from marl_distill.distillation.warm_start import warm_start
    from marl_distill.errors import UserError
    from marl_distill.students import StudentMeta, StudentNet

    obs = {a: np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32) for a in fixed_teachers.spec.agents}
    for teachers, factory in ((fixed_teachers, three_targets), (None, ContinuousTarget)):
        if teachers is None:  # a Gaussian actor: [mean, log_std] copied too
            teachers = teachers_for(factory, steps=128)
            spec = teachers.spec
            obs = {a: np.random.default_rng(1).normal(size=(64, spec.obs_dim(a))) for a in spec.agents}
        net = StudentNet(StudentMeta.for_spec(teachers.spec, "per-agent", [64, 64]))
        warm_start(net, teachers.models)
        student = StudentTeam(teachers.spec, net).logits(obs)
        for a, t in teachers.logits(obs).items():
            s = student[a]
            if factory is three_targets:  # SB3's Categorical hands back normalized logits
                s, t = torch.log_softmax(s, -1), torch.log_softmax(t, -1)
            torch.testing.assert_close(s, t, atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError, match="hidden"):
        warm_start(StudentNet(StudentMeta.for_spec(fixed_teachers.spec, "per-agent", [32])), fixed_teachers.models)
    with pytest.raises(UserError, match="per-agent"):
        DistillConfig(students=["shared"], init_from_teacher=True).validate()


def test_masked_actions_are_never_chosen_by_teachers_random_or_students():
    from worlds import MaskedTargetGame

    from marl_distill.env.joint_vec_env import JointVecEnv
    from marl_distill.evaluation.rollout import run_episodes
    from marl_distill.policy.joint import RandomPolicy, select_actions

    with pytest.warns(UserWarning, match="maskable_ppo"):  # plain PPO learns legality from the penalty only
        teachers = teachers_for(MaskedTargetGame, steps=4_000)
    assert teachers.spec.masked == {"agent_0", "agent_1"} and teachers.spec.obs_dim("agent_0") == 6
    results, metrics = distill_and_evaluate(MaskedTargetGame, teachers, epochs=20)
    MaskedTargetGame.illegal = 0
    students = [r.student for r in results.values()]
    for policy in (teachers, RandomPolicy(teachers.spec), *students):
        run_episodes(MaskedTargetGame, policy, episodes=100, seed=0, n_envs=8, rng=np.random.default_rng(0))
    assert MaskedTargetGame.illegal == 0  # 4 policies x 100 episodes x 5 rounds x 2 agents
    for name in results:  # the legal action the teacher prefers is the one the student takes
        assert metrics[name]["joint_action_agreement"] >= 0.95, metrics[name]
    # without its masks the same student would step on illegal actions: the masks are what prevents it
    venv = JointVecEnv(MaskedTargetGame, 64)
    obs, masks = venv.reset(list(range(64))), venv.masks
    acts, _ = select_actions(students[0], obs, np.random.default_rng(0))
    assert sum(int((~masks[a][np.arange(64), acts[a]]).sum()) for a in acts) > 10


def test_side_by_side_processes_give_the_same_students_and_metrics(fixed_teachers):
    """Distillation and evaluation on forked workers: each job draws only from its own seeds, so two workers give
    exactly what one process gives (timings aside)."""
    cfg = DistillConfig(students=["shared", "per-agent"], hidden=[8], samples=1_000, epochs=2, seed=3)
    one, two = (distill(three_targets, fixed_teachers, cfg, progress=False, workers=w) for w in (1, 2))
    for kind in cfg.students:
        for p, q in zip(one[kind].student.net.parameters(), two[kind].student.net.parameters(), strict=True):
            assert torch.equal(p, q)
        assert one[kind].history == two[kind].history
    eval_cfg = EvalConfig(episodes=20, mixed_episodes=5, latency_repeats=2, latency_rounds=1, onnx=False)
    students = {k: r.student for k, r in one.items()}
    a, b = (evaluate_all(three_targets, fixed_teachers, students, eval_cfg, progress=False, workers=w) for w in (1, 2))
    for name in ("teacher", "random", "shared", "per-agent"):
        timing = {k for k in a[name] if k.startswith(("latency", "speedup"))}
        assert {k: v for k, v in a[name].items() if k not in timing} == {
            k: v for k, v in b[name].items() if k not in timing
        }
    assert a["shared"]["mixed_team"]["by_mix"] and a["shared"]["mixed_team"] == b["shared"]["mixed_team"]


def test_a_pruned_student_fine_tunes_from_its_kept_weights(fixed_teachers):
    """Structured pruning then a short distillation fine-tune: the fine-tune starts from the pruned weights (its
    first epoch is already better than a fresh student's of the same width) and ends agreeing with the teachers."""
    cfg = DistillConfig(students=["shared"], hidden=[32], samples=2_000, epochs=8, seed=0)
    big = distill(three_targets, fixed_teachers, cfg, progress=False)["shared"].student.net
    small_cfg = DistillConfig(students=["shared"], hidden=[6], samples=2_000, epochs=2, seed=0)
    meta = StudentMeta.for_spec(fixed_teachers.spec, "shared", [6])
    seeds = student_seeds(small_cfg, "shared")
    tuned = distill_one(three_targets, fixed_teachers, meta, small_cfg, init=structured(big, [6]), **seeds)
    fresh = distill_one(three_targets, fixed_teachers, meta, small_cfg, **student_seeds(small_cfg, "shared"))
    assert tuned.history[0]["held_loss"] < fresh.history[0]["held_loss"]
    assert tuned.history[-1]["agreement"] >= 0.99


def test_jobs_run_one_after_another_when_torch_runs_several_threads():
    """torch's thread pool does not survive a fork (the children hang): with more than one thread, no fork."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        torch.nn.Linear(64, 64)(torch.ones(256, 64))  # starts torch's pool in this process
        assert not can_fork()
        assert run_jobs([lambda i=i: os.getpid() + 0 * i for i in range(3)], workers=2) == [os.getpid()] * 3
    finally:
        torch.set_num_threads(before)
    if can_fork():  # one thread again: the jobs run in forked workers
        assert os.getpid() not in run_jobs([os.getpid, os.getpid], workers=2)


def test_ctrl_c_stops_side_by_side_jobs_at_once(tmp_path):
    """Workers ignore SIGINT; the parent stops them itself instead of waiting for the queued jobs: the two jobs
    running are killed mid-sleep, the two queued never start, and no worker outlives the call."""
    import multiprocessing
    import signal
    import threading
    import time

    if not can_fork():
        pytest.skip("jobs run in this process where fork is unavailable")

    def job(i: int) -> None:
        (tmp_path / f"started{i}").touch()
        time.sleep(30)
        (tmp_path / f"finished{i}").touch()

    before = set(multiprocessing.active_children())  # another test's processes may still be winding down

    def ctrl_c_once_two_started() -> None:  # not after a fixed delay: a loaded machine may start workers late
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"started{i}").exists() for i in (0, 1)) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c_once_two_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_jobs([lambda i=i: job(i) for i in range(4)], workers=2)
    assert not set(multiprocessing.active_children()) - before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["started0", "started1"]


def test_a_diverging_distillation_stops_naming_the_step(fixed_teachers, tmp_path):
    from marl_distill.errors import UserError

    cfg = DistillConfig(students=["per-agent"], hidden=[8], samples=500, epochs=3, loss="mse", lr=1e25, seed=0)
    with pytest.raises(UserError, match=r"loss became (nan|inf) at gradient step \d+"):
        distill(three_targets, fixed_teachers, cfg, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "students").exists()  # nothing saved for it
