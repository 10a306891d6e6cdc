"""The benchmark command: a grid into results.json / results.csv / report.md / plots, finished runs reused,
another config refused rather than overwritten; and the deployed students' numpy path matching torch."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import CONTRACT, untimed

from marl_distill.cli import cli

ROOT = Path(__file__).resolve().parents[2]

GRID = """
name = "tiny grid"
seeds = [0, 1]
cross_seed = ["penalty"]

[base]
evaluate = { episodes = 20, mixed_episodes = 10, latency_repeats = 20 }  # all rounds: speedups are asserted
distill = { samples = 1000, epochs = 8 }

[[tasks]]
name = "penalty"
env = { id = "penalty_game", kwargs = { rounds = 5 } }
teachers = { steps = 2000, n_envs = 4, ppo = { n_steps = 50, batch_size = 100, learning_rate = 0.003 } }

[[settings]]
name = "kl-8"
distill = { students = ["shared"], hidden = [8] }

[[settings]]
name = "ce"
distill = { students = ["per-agent"], loss = "ce" }
"""


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    (root / "grid.toml").write_text(GRID)
    assert cli(["benchmark", str(root / "grid.toml"), "--out", str(root / "out")]) == 0
    return root


def test_benchmark_writes_every_run_and_the_summary(grid):
    out = grid / "out"
    results = json.loads((out / "results.json").read_text())
    runs = results["penalty_game"]["penalty"]  # env -> task -> policy -> run -> metrics
    assert set(runs) == {"teacher", "random", "kl-8/shared", "ce/per-agent"}
    assert all(set(by_run) == {"seed_0", "seed_1"} for by_run in runs.values())
    for setting, student in (("kl-8", "shared"), ("ce", "per-agent")):
        for seed in (0, 1):
            metrics = json.loads((out / "runs" / "penalty" / setting / f"seed_{seed}" / "metrics.json").read_text())
            assert CONTRACT <= set(metrics[student]), CONTRACT - set(metrics[student])
            assert set(metrics[student]["mixed_team"]["by_mix"]) == {"agent_0", "agent_1"}  # every mix for N = 2
            (other,) = metrics[student]["cross_seed"]  # paired with the other seed's student, in every mix
            assert other.endswith(f"{setting}/seed_{1 - seed}")
            assert set(metrics[student]["cross_seed"][other]["by_mix"]) == {"agent_0", "agent_1"}
            (theirs,) = metrics["teacher"]["cross_seed"]  # and this seed's teachers with the other seed's
            assert theirs == other and set(metrics["teacher"]["cross_seed"][theirs]["by_mix"]) == {"agent_0", "agent_1"}
            assert set(metrics[student]["paired_diff"]) == {"mean", "ci95", "episodes", "distinct_values"}
            assert metrics["teacher"]["gap_over_random"]["significant"]
    assert runs["kl-8/shared"]["seed_0"]["params"] < runs["ce/per-agent"]["seed_0"]["params"]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 * 2 and {r["policy"] for r in rows} == set(runs)
    summary = json.loads((out / "summary.json").read_text())["penalty_game"]["penalty"]
    for policy in ("kl-8/shared", "ce/per-agent"):
        values = [runs[policy][s]["normalized_return"] for s in ("seed_0", "seed_1")]
        assert summary[policy]["normalized_return"]["iqm"] == pytest.approx(np.mean(values))  # IQM of 2 = mean
        assert summary[policy]["speedup_vs_teacher"] > 1
        assert summary[policy]["cross_seed_min"]["runs"] == 2
        assert summary[policy]["paired_diff"]["runs"] == 2 and summary[policy]["undertrained_runs"] in (0, 1, 2)
    assert summary["teacher"]["cross_seed_min"]["runs"] == 2  # teacher x teacher cross-play beside the students'
    report = (out / "report.md").read_text()
    assert "| kl-8/shared |" in report and "IQM" in report
    assert "Student-t over runs" in report and "trimmed-mean t interval" in report  # every interval named
    assert "like for like" in report and "labelled states per agent" in report
    for name in ("returns", "agreement_vs_size", "mixed_teams", "learning_curves"):
        png = out / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_benchmark_reuses_finished_runs_and_refuses_to_overwrite_others(grid, capsys):
    out = grid / "out"
    metrics = out / "runs" / "penalty" / "kl-8" / "seed_0" / "metrics.json"
    before, stamp = (out / "results.json").read_text(), metrics.stat().st_mtime_ns
    capsys.readouterr()
    assert cli(["benchmark", str(grid / "grid.toml"), "--out", str(out)]) == 0
    assert "4 finished and reused, 0 to run" in capsys.readouterr().err
    assert metrics.stat().st_mtime_ns == stamp and (out / "results.json").read_text() == before
    # every run finished: the report is rebuilt without reaching for the (here absent) Ray cluster
    assert cli(["benchmark", str(grid / "grid.toml"), "--out", str(out), "--ray-address", "ray://nowhere:1"]) == 0
    assert metrics.stat().st_mtime_ns == stamp and (out / "results.json").read_text() == before
    capsys.readouterr()

    code = cli(["benchmark", str(grid / "grid.toml"), "--out", str(out), "--set", "base.distill.epochs=3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "another config" in err[0], err
    assert metrics.stat().st_mtime_ns == stamp


def test_a_grid_on_an_env_file_names_no_path_of_this_machine(tmp_path):
    """results.json, results.csv and report.md key a file-spec env by its path relative to the benchmark folder."""
    shutil.copy(ROOT / "envs" / "template" / "my_env.py", tmp_path / "my_env.py")
    grid = (
        GRID.split("[[tasks]]")[0]
        + f"""
[[tasks]]
name = "meet"
env = {{ id = "{(tmp_path / "my_env.py").as_posix()}:parallel_env" }}
teachers = {{ steps = 1000, n_envs = 4, ppo = {{ n_steps = 50, batch_size = 100 }} }}

[[settings]]
name = "kl"
distill = {{ students = ["shared"], samples = 500, epochs = 2 }}
"""
    )
    grid = grid.replace("seeds = [0, 1]", "seeds = [0]").replace('cross_seed = ["penalty"]\n', "")
    (tmp_path / "grid.toml").write_text(grid)
    assert cli(["benchmark", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "out")]) == 0
    report = [line for line in (tmp_path / "out" / "report.md").read_text().splitlines() if line.startswith("#")]
    for name, text in [(n, (tmp_path / "out" / n).read_text()) for n in ("results.json", "results.csv")] + [
        ("report.md headings", "\n".join(report))
    ]:
        assert str(tmp_path) not in text and "../my_env.py:parallel_env" in text, name


def test_benchmark_settings_may_not_change_the_shared_teachers(grid, capsys):
    bad = grid / "bad.toml"
    bad.write_text(GRID + '\n[[settings]]\nname = "x"\nteachers = { steps = 10 }\n')
    assert cli(["benchmark", str(bad), "--out", str(grid / "other")]) == 2
    assert "[[tasks]]" in capsys.readouterr().err
    assert not (grid / "other").exists()


def test_students_act_the_same_through_numpy_as_through_torch():
    from worlds import HeteroTargetGame

    from marl_distill.policy.spec import EnvSpec
    from marl_distill.students import StudentMeta, StudentNet, StudentTeam

    spec = EnvSpec.of(HeteroTargetGame())
    rng = np.random.default_rng(0)
    obs = {a: rng.normal(size=(200, spec.obs_dim(a))).astype(np.float32) for a in spec.agents}
    for kind in ("shared", "per-agent"):
        team = StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, kind, [16, 16])))
        for p in team.net.parameters():  # trained in place after the team exists: numpy must see it
            p.data.mul_(3.0)
        greedy = {a: lg.argmax(-1).numpy() for a, lg in team.logits(obs).items()}
        for i in range(200):
            acts = team.act_single({a: o[i] for a, o in obs.items()})
            assert all(acts[a] == greedy[a][i] for a in spec.agents), (kind, i)


SMALL_GRID = """
name = "ray check"
seeds = [0]
[base]
evaluate = { episodes = 10, mixed_episodes = 4, latency_repeats = 2, latency_rounds = 1 }
distill = { samples = 300, epochs = 2 }
[[tasks]]
name = "climb"
env = { id = "climbing_game", kwargs = { rounds = 4 } }
teachers = { steps = 400, n_envs = 4, ppo = { n_steps = 50, batch_size = 100 } }
[[settings]]
name = "kl"
distill = { students = ["shared"], hidden = [8] }
"""


def test_a_grid_on_a_local_ray_instance_gives_the_local_results(tmp_path):
    ray = pytest.importorskip("ray")  # in [dev], so CI runs it
    (tmp_path / "grid.toml").write_text(SMALL_GRID)
    assert cli(["benchmark", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "local")]) == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code = cli(["benchmark", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "ray"), "--ray-address", "auto"])
    finally:
        ray.shutdown()
    assert code == 0
    local, on_ray = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("local", "ray"))
    assert untimed(local) == untimed(on_ray) and "kl/shared" in local["climbing_game"]["climb"]


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path, capsys):
    diverges = '[[settings]]\nname = "diverges"\ndistill = { students = ["per-agent"], loss = "mse", lr = 1e25 }\n'
    broken = SMALL_GRID + "\n" + diverges
    (tmp_path / "grid.toml").write_text(broken)
    assert cli(["benchmark", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "1 of 3 runs failed" in err and "diverges" in err and "loss became" in err, err
    (failure,) = json.loads((tmp_path / "out" / "failures.json").read_text())
    assert failure["config"]["distill"]["lr"] == 1e25 and "Traceback" in failure["traceback"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results["climbing_game"]["climb"]) == {"teacher", "random", "kl/shared"}  # the finished one


def test_a_moved_benchmark_folder_is_reused_where_it_now_is(grid, tmp_path, capsys):
    import shutil

    moved = tmp_path / "elsewhere" / "out"
    shutil.copytree(grid / "out", moved)
    assert cli(["benchmark", str(grid / "grid.toml"), "--out", str(moved)]) == 0, capsys.readouterr().err
    assert "4 finished and reused, 0 to run; teacher runs to train: 0 of 2" in capsys.readouterr().err
    saved = (moved / "runs" / "penalty" / "kl-8" / "seed_0" / "config.toml").read_text()
    assert str(moved.resolve() / "teachers") in saved and str(grid / "out") not in saved  # paths follow the move


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_a_benchmark_stopped_alone_leaves_no_cell_running(tmp_path, sig):
    """A signal to the parent only reaches no worker. ``kill PID`` (SIGTERM, as a scheduler sends it): the parent
    stops the running cell itself and exits 130 with one line on the stop, instead of waiting for the cell to
    finish. ``kill -9`` or the out-of-memory killer (SIGKILL): the kernel ends the cell with its parent. Either
    way no process of the benchmark is left training."""
    import os
    import signal
    import subprocess
    import sys
    import time

    long = GRID.replace("seeds = [0, 1]", "seeds = [0]\nworkers = 2").replace("steps = 2000", "steps = 400000")
    (tmp_path / "grid.toml").write_text(long)
    args = ["benchmark", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "marl_distill.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        logs = tmp_path / "out" / "teachers" / "penalty" / "seed_0" / "tb"
        deadline = time.monotonic() + 120
        while not any(logs.glob("*")) and time.monotonic() < deadline:  # the pool's cell is training
            time.sleep(0.1)
        assert any(logs.glob("*")), "the cell did not start"
        os.kill(proc.pid, getattr(signal, sig))
        _, err = proc.communicate(timeout=60)  # before the fix it waited for 400,000 steps per learner
        if sig == "SIGTERM":
            assert proc.returncode == 130 and "Traceback" not in err, err
            assert err.strip().splitlines()[-1].startswith("interrupted; finished runs and the checkpoints"), err
        deadline = time.monotonic() + 20  # a teacher stage ends at its next common step, after a last save
        while _alive_in_group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive_in_group(proc.pid) == [], "a worker of the benchmark is still running"
    finally:  # whatever failed above, nothing of this benchmark goes on training
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _alive_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are not zombies (a dead orphan waits for init to reap it)."""
    import os

    alive = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115
        except (FileNotFoundError, NotADirectoryError, PermissionError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ... after the command name
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry))
    return alive


def _edges_blank(png) -> bool:
    """Is the image's outermost ring of pixels all background (nothing drawn was cut at the edge)?"""
    import matplotlib.image

    image = matplotlib.image.imread(png)[..., :3]
    ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return bool((ring > 0.99).all())


@pytest.mark.parametrize("tasks", [1, 2])
def test_every_benchmark_plot_keeps_its_labels_inside_the_image(grid, tmp_path, tasks):
    from marl_distill.evaluation.summary import write_summary

    out = grid / "out"
    runs = []
    for metrics in sorted((out / "runs").glob("*/*/seed_*/metrics.json")):
        task, setting, seed = metrics.relative_to(out / "runs").parts[:3]
        for k in range(tasks):  # a second task: the same runs under a longer name
            runs.append({"task": task if k == 0 else f"{task}-with-a-longer-name", "setting": setting,
                         "seed": int(seed.split("_")[1]), "folder": metrics.parent.relative_to(out).as_posix(),
                         "metrics": json.loads(metrics.read_text())})  # fmt: skip
    (tmp_path / "runs").symlink_to(out / "runs")
    write_summary(tmp_path, "plots", runs, seeds=[0, 1])
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert {p.stem for p in pngs} >= {"returns", "agreement_vs_size", "mixed_teams", "learning_curves"}
    assert [p.name for p in pngs if not _edges_blank(p)] == []
