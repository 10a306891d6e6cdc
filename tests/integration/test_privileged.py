"""Privileged teachers, decentralized students: teachers train on the global view, students distil and act on the
local one, and each party only ever reads its own view."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from marl_distill import config as config_mod
from marl_distill.cli import cli
from marl_distill.distillation import DistillConfig, distill
from marl_distill.distillation.collect import collect
from marl_distill.env.registry import resolve
from marl_distill.env.views import GLOBAL, ViewEnv, viewed
from marl_distill.pipeline import runner
from marl_distill.students import StudentTeam
from marl_distill.teachers import TeacherTeam

WORLD = {"N": 2, "max_cycles": 10, "sight": 0.3}


def tiny(**over: object) -> config_mod.ExperimentConfig:
    data = {
        "name": "privileged",
        "env": {"id": "navigation", "kwargs": WORLD},
        "teachers": {"steps": 1600, "n_envs": 4, "view": "global", "ppo": {"n_steps": 50, "batch_size": 100}},
        "distill": {"students": ["shared", "per-agent"], "samples": 800, "epochs": 4, "iterations": 2},
        "evaluate": {"episodes": 12, "mixed_episodes": 6, "latency_repeats": 10, "latency_rounds": 1},
    }
    return config_mod.build(config_mod.merge(data, over))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("privileged") / "run"
    runner.run(tiny(), folder, progress=False, workers=1)
    return folder


def test_teachers_train_on_the_global_view_and_reload_with_plain_sb3(run):
    manifest = json.loads((run / "teachers" / "teachers.json").read_text())
    assert manifest["view"] == "global"
    local = resolve("navigation", WORLD)()
    glob = ViewEnv(resolve("navigation", WORLD)(), (GLOBAL,))
    obs, _ = glob.reset(seed=5)
    for agent in local.possible_agents:
        model = PPO.load(run / "teachers" / f"{agent}.zip", device="cpu")  # plain SB3, nothing of ours
        size = local.observation_space(agent).shape[0] + local.state_space.shape[0]
        assert model.observation_space.shape == glob.observation_space(agent).shape == (size,)
        action, _ = model.predict(obs[agent], deterministic=True)
        assert local.action_space(agent).contains(int(action))


def test_students_act_on_the_local_view_and_each_party_reads_only_its_own(run):
    student = json.loads((run / "students" / "shared" / "student.json").read_text())
    record = json.loads((run / "students" / "shared" / "distill.json").read_text())
    base = resolve("navigation", WORLD)
    local = base()
    assert student["view"] == "local"
    assert student["obs_dims"] == {a: local.observation_space(a).shape[0] for a in local.possible_agents}
    assert record["sampling"] == "student"  # auto: the views differ, so the student team visits the states
    assert record["views"] == {"teachers": "global", "students": "local"}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["_meta"]["views"] == {"teachers": "global", "students": "local"}
    assert metrics["per-agent"]["agreement_states"] == {a: 12 * 10 for a in local.possible_agents}  # its own states
    assert set(metrics["per-agent"]["kl_teacher_student"]) == set(local.possible_agents)

    cfg = runner.load_run_config(run)
    views = runner.views_of(cfg, run)
    play = views.play()
    obs, _ = play.reset(seed=11)
    glob_obs, _ = viewed(base, (GLOBAL,)).reset(seed=11)
    local_obs, _ = local.reset(seed=11)
    batch = {a: o[None] for a, o in obs.items()}
    teachers = TeacherTeam.load(run, views.teacher_spec)
    students = StudentTeam.load(run / "students" / "per-agent", views.student_spec)
    as_teacher, as_student = views.teachers(teachers), views.students(students)
    for a in play.possible_agents:  # the columns each party reads are exactly its own view of the same state
        np.testing.assert_array_equal(as_teacher.own_view(batch)[a][0], glob_obs[a])
        np.testing.assert_array_equal(as_student.own_view(batch)[a][0], local_obs[a])
    want_t = teachers.logits({a: o[None] for a, o in glob_obs.items()})
    want_s = students.logits({a: o[None] for a, o in local_obs.items()})
    got_t, got_s = as_teacher.logits(batch), as_student.logits(batch)
    for a in play.possible_agents:
        torch.testing.assert_close(got_t[a], want_t[a])
        torch.testing.assert_close(got_s[a], want_s[a])
    assert not hasattr(as_student, "act_single")  # nothing runs it on the paired observation unsliced

    got = collect(views.play, as_teacher, samples=60, n_envs=3, seed=4, rng=np.random.default_rng(0),
                  student=as_student, beta=0.0)  # fmt: skip
    seen_t, seen_s = views.teacher_obs(got.data.obs), views.student_obs(got.data.obs)
    for a in play.possible_agents:  # labels came from the teachers' view, the students' rows are the local view
        torch.testing.assert_close(got.data.teacher_logits[a], teachers.logits({a: seen_t[a]})[a])
        np.testing.assert_array_equal(seen_t[a][:, : seen_s[a].shape[1]], seen_s[a])  # global = local, then state
        assert seen_s[a].shape[1] == local.observation_space(a).shape[0] < seen_t[a].shape[1]


@pytest.mark.parametrize(("loss", "sampling"), [("ce", "mixed"), ("mse", "teacher"), ("kl", "auto")])
def test_every_loss_and_sampling_scheme_distils_across_views(run, loss, sampling):
    cfg = runner.load_run_config(run)
    views = runner.views_of(cfg, run)
    teachers = runner.distill_source(cfg, run, views)
    settings = DistillConfig(students=["shared"], loss=loss, sampling=sampling, samples=300, epochs=2, iterations=2)
    settings = settings.resolved(views.same)
    (result,) = distill(views.play, teachers, settings, views=views).values()
    assert result.summary["sampling"] == ("student" if sampling == "auto" else sampling)
    assert result.student.meta.view == "local" and result.student.meta.obs_dims == {
        a: views.student_spec.obs_dim(a) for a in views.student_spec.agents
    }
    assert np.isfinite(result.history[-1]["loss"])


def test_a_view_that_does_not_fit_is_refused_in_one_line(tmp_path, capsys):
    view = tmp_path / "myview.py"
    view.write_text("import numpy as np\ndef near(env, agent, obs):\n    return np.asarray(obs)[:4]\n")
    out = tmp_path / "t"
    args = ["train-teachers", "navigation", "--env-kwargs", json.dumps(WORLD), "--steps", "200", "--n-envs", "2"]
    ppo = ["--ppo-kwargs", '{"n_steps": 50, "batch_size": 50}']
    assert cli([*args, *ppo, "--view", f"{view}:near", "--out", str(out)]) == 0
    assert PPO.load(out / "teachers" / "agent_0.zip").observation_space.shape == (4,)
    # another size of file too: an import within the same second would otherwise reuse the cached bytecode
    view.write_text("import numpy as np\ndef near(env, agent, obs):\n    return np.asarray(obs)[:10]\n")
    done = subprocess.run(  # a fresh process, as a user's next command is: it imports the edited view
        [sys.executable, "-m", "marl_distill.cli", "distill", str(out), "--out", str(tmp_path / "d"), "--steps", "100"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    err = done.stderr.strip()
    assert done.returncode == 2 and "trained on observations of size 4" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "d").exists()
    wobbly = tmp_path / "wobbly.py"
    body = "    return np.zeros(3 + env.unwrapped.world.t % 2)\n"  # one more value on odd steps
    wobbly.write_text("import numpy as np\ndef near(env, agent, obs):\n" + body)
    capsys.readouterr()
    assert cli([*args, "--view", f"{wobbly}:near", "--out", str(tmp_path / "u")]) == 2
    *progress, last = capsys.readouterr().err.strip().splitlines()  # found while training: after its start line
    assert progress == ["teachers: started"] and last.startswith("error: ") and "must have one size" in last


def test_the_privilege_table_pairs_seeds_and_keeps_the_guards():
    from marl_distill.evaluation.privilege import compare, section

    def team(returns, guarded=True):
        return {
            f"seed_{i}": {"team_return": r, **({"normalized_return": 1.0} if guarded else {})}
            for i, r in enumerate(returns)
        }

    results = {
        "nav": {
            "loc": {
                "teacher": team([-100, -110, -90]),
                "random": team([-160, -150, -170]),
                "s/shared": team([-105, -112, -95]),
            },
            "glob": {
                "teacher": {**team([-80, -115, -70]), "seed_2": {"team_return": -70.0}},  # seed 2: not above random
                "random": team([-160, -150, -170]),
                "s/shared": {k: {**v, "action_agreement": 0.8} for k, v in team([-90, -100, -80]).items()},
            },
        }
    }
    c = compare(results, "nav", "loc", "glob")
    assert c["privilege_gap"]["mean"] == pytest.approx(35 / 3) and c["privilege_gap_significant"] is False
    row = c["rows"]["s/shared from glob"]
    assert row["minus_local_teachers"]["mean"] == pytest.approx(10.0)  # paired per seed
    assert row["normalized_vs_privileged"]["runs"] == 2  # the unguarded seed is left out
    assert row["normalized_vs_privileged"]["mean"] == pytest.approx(np.mean([70 / 80, 50 / 35]))
    assert row["normalized_vs_local"]["mean"] == pytest.approx(np.mean([70 / 60, 50 / 40, 90 / 80]))
    assert row["gap_recovered"] is None  # a gap with no interval above 0 gives no fraction
    assert row["agreement_with_privileged"]["mean"] == pytest.approx(0.8)
    assert "(2 of 3 seeds)" in section([c])
    results["nav"]["glob"]["teacher"]["seed_1"]["team_return"] = -85.0
    c = compare(results, "nav", "loc", "glob")
    assert c["privilege_gap_significant"] is True
    row = c["rows"]["s/shared from glob"]
    assert row["gap_recovered"]["ratio"] == pytest.approx(30 / 65)  # the ratio of the summed (paired) differences
    assert row["gap_recovered_per_seed"] == pytest.approx([10 / 20, 10 / 25, 10 / 20])


def test_only_tasks_that_differ_in_the_teachers_view_are_paired():
    from marl_distill.evaluation.privilege import differences, pairs

    def run(task, view, sight=0.5, sampling="student", student_view="local"):
        setup = {"env_kwargs": {"sight": sight}, "teachers": {"steps": 100}}
        students = {"shared": {"kind": "shared", "sampling": sampling, "grad_steps": 10}}
        meta = {"env": "nav", "views": {"teachers": view, "students": student_view}, "students": students}
        return {"task": task, "setting": "s", "seed": 0, "setup": setup, "metrics": {"_meta": meta}}

    runs = [run("loc", "local"), run("glob", "global"), run("far", "global", sight=0.9)]
    runs += [run("glob-to-glob", "global", student_view="global"), run("loc-teacher", "local", sampling="teacher")]
    assert pairs(runs) == [  # not another sight; students of any view, labelled
        ("nav", "loc", "glob"),
        ("nav", "loc-teacher", "glob"),
        ("nav", "loc", "glob-to-glob"),
        ("nav", "loc-teacher", "glob-to-glob"),
    ]
    assert differences(runs, "nav", "loc-teacher", "glob") == [
        "s/shared: sampling teacher (local) vs student (privileged)"
    ]


def test_tasks_evaluated_on_other_episode_seeds_are_flagged_not_like_for_like():
    from marl_distill.evaluation.privilege import comparisons

    def run(task, view, seed, eval_seed):
        meta = {"env": "nav", "views": {"teachers": view}, "eval_seed": eval_seed, "students": {}}
        metrics = {"_meta": meta, "teacher": {"team_return": {"mean": -100.0, "episodes": 10}}}  # metrics.json's shape
        return {"task": task, "setting": "s", "seed": seed, "setup": {"env_kwargs": {}}, "metrics": metrics}

    def team(returns):
        return {
            f"seed_{i}": {"team_return": r, "normalized_return": 1.0, "episodes": 10} for i, r in enumerate(returns)
        }

    tables = {"teacher": team([-100, -110, -90]), "random": team([-160, -150, -170])}
    results = {"nav": {"loc": tables, "glob": tables}}
    same = [run("loc", "local", k, k) for k in range(3)] + [run("glob", "global", k, k) for k in range(3)]
    assert comparisons(results, same)[0]["student_differences"] == []
    assert comparisons(results, same[:5])[0]["student_differences"] == []  # a seed one side lacks is not compared
    moved = same[:5] + [run("glob", "global", 2, 7)]  # seed 2 of one task played other episodes
    fewer = same[:5] + [{**same[5], "metrics": {**same[5]["metrics"], "teacher": {"team_return": {"episodes": 9}}}}]
    for runs in (moved, fewer):
        assert comparisons(results, runs)[0]["student_differences"] == [
            "the two tasks did not evaluate the same episodes (episode seeds or counts differ)"
        ]


def test_run_folders_written_before_auto_sampling_still_resume():
    default, old = config_mod.build({}), config_mod.build({"distill": {"sampling": "teacher"}})
    assert default.distill.sampling == "auto"
    same = config_mod.comparable
    assert same(config_mod.to_dict(default)) == same(config_mod.to_dict(old))  # auto is teacher on one view
    privileged = config_mod.build({"teachers": {"view": "global"}})
    old_privileged = config_mod.build({"teachers": {"view": "global"}, "distill": {"sampling": "teacher"}})
    assert same(config_mod.to_dict(privileged)) != same(config_mod.to_dict(old_privileged))  # student there
