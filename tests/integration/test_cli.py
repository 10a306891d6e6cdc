"""The command line: bad input gives exit 2 and one line; a tiny whole run writes the run-folder contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import CONTRACT, TINY, Spaces, untimed
from stable_baselines3 import PPO

from marl_distill.cli import cli as main_cli

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "marl_distill.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train-teachers", "no_such_env", "--out", "{tmp}/a"], "unknown environment"),
        (["run", "{tmp}/tiny.toml", "--out", "{tmp}/a", "--set", "env.id=simple_sprad_fast"], "'simple_spread_fast'?"),
        (["train-teachers", "simple_spread", "--out", "{tmp}/a", "--steps", "many"], "--steps"),
        (["train-teachers", "simple_spread", "--out", "{tmp}/a", "--env-kwargs", "{{N: 3"], "--env-kwargs"),
        (["train-teachers", "simple_spread", "--out", "{tmp}/a", "--env-kwargs", '{{"M": 3}}'], "env-kwargs"),
        (["check-env", "simple_spread", "--env-kwargs", '{{"local_ratio": 2}}'], "AssertionError at simple_spread.py"),
        (["check-env", "simple_spread_fast", "--env-kwargs", '{{"n": 3}}'], "its arguments: N"),
        (["train-teachers", "nomodule_xyz:make", "--out", "{tmp}/a"], "cannot import"),
        (["run", "{tmp}/missing.toml"], "does not exist"),
        (["run", "{tmp}/tiny.toml", "--set", "teachers.stepz=5"], "stepz"),
        (["run", "{tmp}/tiny.toml", "--set", "teachers.steps=many"], "teachers.steps"),
        (["run", "{tmp}/tiny.toml", "--set", "distill.loss=l1"], "loss"),
        (["evaluate", "{tmp}"], "not a marl-distill run folder"),
        (["distill", "{tmp}", "--out", "{tmp}/b", "--student", "big"], "--student"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path, capsys, args, needle):
    (tmp_path / "tiny.toml").write_text(TINY)
    code = main_cli([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0]
    assert not (tmp_path / "a").exists()  # nothing half-created


def test_console_script_exit_code_for_bad_input(tmp_path):
    proc = cli("train-teachers", "no_such_env", "--out", str(tmp_path / "a"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_run_writes_the_run_folder_and_refuses_to_overwrite_it(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "run"
    int8 = ("--set", "evaluate.int8=true")
    proc = cli("run", str(config), "--out", str(out), *int8)
    assert proc.returncode == 0, proc.stderr
    for stage in ("teachers", "distill", "evaluate"):  # stderr is no terminal here: a line per stage start and end
        assert f"{stage}: started" in proc.stderr and f"{stage}: done in " in proc.stderr, proc.stderr
    for name in ("config.toml", "metrics.json", "report.md", "plots/returns.png", "teachers/agent_0.zip"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for student in ("shared", "per-agent"):
        m = metrics[student]
        assert CONTRACT <= set(m), (student, CONTRACT - set(m))
        assert set(m["mixed_team"]["by_mix"]) == {"agent_0", "agent_1"}
    for name in ("teacher", "shared", "per-agent"):  # exported and timed in onnxruntime; int8 copies evaluated
        assert metrics[name]["onnx_bytes"] > 0 and metrics[name]["latency_us_onnx"] > 0
        q = metrics[f"{name}-int8"]
        assert q["acting_runtime"] == "onnxruntime" and q["params"] == metrics[name]["params"]
        assert q["team_return"]["episodes"] == metrics[name]["team_return"]["episodes"]
        assert 0 <= q["joint_action_agreement"] <= 1 and "mixed_team" not in q
    assert metrics["teacher-int8"]["weight_bytes"] < 0.5 * metrics["teacher"]["weight_bytes"]
    assert "## Exported (ONNX)" in (out / "report.md").read_text()
    PPO.load(out / "teachers" / "agent_1.zip")
    before = (out / "metrics.json").read_bytes()
    assert main_cli(["run", str(config), "--out", str(out), *int8]) == 2 and "--resume" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == before
    resumed = main_cli(["run", str(config), "--out", str(out), "--resume", *int8])  # every stage done: re-evaluates
    assert resumed == 0, capsys.readouterr().err
    changed = ["run", str(config), "--out", str(out), "--resume", "--set", "distill.epochs=99", *int8]
    assert main_cli(changed) == 2 and "differs from this config in distill.epochs: " in capsys.readouterr().err


def test_stage_commands_chain(tmp_path, capsys):
    """train-teachers -> distill -> evaluate, in process (the console script's exit codes are tested above)."""
    t = tmp_path / "t"
    spec = ["marl_distill_envs.matrix_games:climbing_game", "--env-kwargs", '{"rounds": 4}']
    tiny = ["--steps", "800", "--n-envs", "4", "--ppo-kwargs", '{"n_steps": 50, "batch_size": 100}']
    assert main_cli(["train-teachers", *spec, "--out", str(t), *tiny]) == 0, capsys.readouterr().err
    students = ["--student", "per-agent", "--hidden", "16,16", "--steps", "500", "--epochs", "3"]
    assert main_cli(["distill", str(t), "--out", str(tmp_path / "s"), *students]) == 0, capsys.readouterr().err
    evaluate = ["evaluate", str(tmp_path / "s"), "--episodes", "10", "--json", str(tmp_path / "m.json")]
    assert main_cli(evaluate) == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["per-agent"]["params"] == 2 * (6 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3)
    # export every team of the run folder, then play it with onnxruntime alone: the same returns as evaluate's
    assert main_cli(["export", str(tmp_path / "s")]) == 0, capsys.readouterr().err
    assert (tmp_path / "s" / "students" / "per-agent" / "student.onnx").is_file()
    assert (tmp_path / "s" / "teachers.onnx").is_file()  # its teachers live in another run: nothing written there
    assert not list(t.rglob("*.onnx"))
    deploy = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "deploy_onnx.py"), str(tmp_path / "s")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert deploy.returncode == 0, deploy.stderr
    assert deploy.stdout.count(" equal") == 2 and "neither" in deploy.stdout, deploy.stdout
    user_file = tmp_path / "mine.onnx"
    user_file.write_bytes(b"my own model")
    student = str(tmp_path / "s" / "students" / "per-agent")
    assert main_cli(["export", student, "--quantize", "int8", "--out", str(user_file)]) == 2
    assert user_file.read_bytes() == b"my own model"
    assert main_cli(["export", student, "--quantize", "int8"]) == 0, capsys.readouterr().err
    # a teacher the graph builder cannot read (a GELU actor acts through torch) is skipped; students still export
    model = PPO.load(t / "teachers" / "agent_0.zip")
    gelu = PPO("MlpPolicy", Spaces(model.observation_space, model.action_space), n_steps=16, batch_size=16,
               device="cpu", policy_kwargs={"activation_fn": torch.nn.GELU})  # fmt: skip
    gelu.save(t / "teachers" / "agent_0.zip")
    (tmp_path / "s" / "teachers.onnx").unlink()
    assert main_cli(["export", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "teacher: skipped (the teacher of agent_0 cannot be exported" in out and "per-agent:" in out, out
    assert not (tmp_path / "s" / "teachers.onnx").exists()


def test_stage_commands_take_the_run_settings_and_named_students_share_one_table(tmp_path, capsys):
    """evaluate and distill on a run use its own settings unless a flag says otherwise, and then they say so;
    --name lets two students of one kind live in one run and be evaluated together."""
    (tmp_path / "tiny.toml").write_text(TINY)
    run, other = tmp_path / "run", tmp_path / "other"
    assert main_cli(["run", str(tmp_path / "tiny.toml"), "--out", str(run), "--set", "evaluate.onnx=false"]) == 0
    first = json.loads((run / "metrics.json").read_text())
    assert main_cli(["evaluate", str(run)]) == 0, capsys.readouterr().err
    assert untimed(json.loads((run / "metrics.json").read_text())) == untimed(first)  # 20 episodes, as the run
    assert main_cli(["distill", str(run), "--out", str(other)]) == 0, capsys.readouterr().err
    ours, again = (torch.load(f / "students" / "shared" / "weights.pt") for f in (run, other))
    assert ours.keys() == again.keys() and all(torch.equal(ours[k], again[k]) for k in ours)  # epochs 5, not 40
    small = ["distill", str(run), "--out", str(run), "--name", "shared-16", "--hidden", "16"]
    assert main_cli(small) == 0 and "distill.hidden: [32] -> [16]" in capsys.readouterr().out
    record = json.loads((run / "students" / "shared-16" / "distill.json").read_text())
    assert record["hidden"] == [16] and record["differs_from_run"] == ["distill.hidden: [32] -> [16]"]
    for name, why in (("teacher", "not ["), ("per-agent", "not ["), ("shared-int8", "*-int8"), ("copy", "exact copy")):
        assert main_cli(["distill", str(run), "--out", str(run), "--name", name]) == 2  # --student shared
        assert why in capsys.readouterr().err
    assert main_cli(["evaluate", str(run), "--episodes", "10"]) == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"shared", "per-agent", "shared-16"} <= set(metrics) and metrics["shared-16"]["params"] < first["shared"][
        "params"
    ]
    assert metrics["_meta"]["differs_from_run"] == ["evaluate.episodes: 20 -> 10"]
    report = (run / "report.md").read_text()
    assert "| shared-16 |" in report and "Evaluated with settings other than the run's: evaluate.episodes" in report
    assert "Distilled with settings other than the run's: distill.hidden: [32] -> [16]" in report
    assert main_cli(["evaluate", str(run), "--set", "teachers.steps=1"]) == 2  # the run's, not evaluate's
    assert main_cli(["evaluate", str(run), "--set", "env.cooperative=false"]) == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["_meta"]["differs_from_run"] == ["env.cooperative: 'auto' -> False"]
    assert metrics["shared-16"]["per_seat"]["agent_1"]["return"]["episodes"] == 20  # scored per seat on request


def test_config_prints_every_default_with_its_doc_and_h_is_help(tmp_path, capsys):
    assert main_cli(["config"]) == 0
    text = capsys.readouterr().out
    (tmp_path / "defaults.toml").write_text(text)
    from marl_distill import config as config_mod

    loaded = config_mod.to_dict(config_mod.load(tmp_path / "defaults.toml"))
    assert loaded == config_mod.to_dict(config_mod.build({}))  # every key, at its default
    assert "# Episodes per policy; every policy plays the same episode seeds." in text and "[evaluate]" in text
    assert main_cli(["run", "-h"]) == 0 and "--resume" in capsys.readouterr().out


def test_ctrl_c_mid_teacher_training_then_resume_finishes_the_same_budget(tmp_path, capsys):
    """SIGINT to the whole process group (what a terminal's Ctrl-C sends) after a checkpoint: learner and env
    worker processes stay quiet, the learners save at the next common bound (before the budget's end), the command
    exits 130 with one line saying how to continue; --resume trains only what was left, to the same transitions."""
    import os
    import signal
    import time

    long = TINY.replace("steps = 2000", "steps = 4000\ncheckpoint_every = 400\nn_envs = 4\nenv_workers = 2")
    long = long.replace("n_envs = 4\nppo", "ppo").replace("latency_repeats = 20", "latency_repeats = 5\nonnx = false")
    (tmp_path / "long.toml").write_text(long.replace("[distill]", '[distill]\nstudents = ["shared"]'))
    mark = tmp_path / "r" / "checkpoints" / "teachers" / "checkpoint.json"
    args = ["run", str(tmp_path / "long.toml"), "--out", str(tmp_path / "r")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "marl_distill.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not mark.exists() and time.monotonic() < deadline:  # learners are training and have saved once
        time.sleep(0.05)
    assert mark.exists(), "no checkpoint was written"
    periodic = json.loads(mark.read_text())["joint_steps"]
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)  # a hang guard, not a timing check: the stop is judged by what it saved
    assert proc.returncode == 130, (proc.returncode, err)
    *progress, last = err.strip().splitlines()  # no terminal: the stage's progress lines, then one line
    assert progress[0] == "teachers: started" and all(p.startswith("teachers: ") for p in progress), err
    assert "Traceback" not in err, err
    assert last.startswith("interrupted; finished stages and the last teacher checkpoint are kept"), err
    assert last.endswith("--resume")
    stopped_at = json.loads(mark.read_text())["joint_steps"]
    assert periodic < stopped_at < 1000 and not (tmp_path / "r" / "teachers").exists()  # saved on the stop

    assert main_cli([*args, "--resume"]) == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "r" / "teachers" / "teachers.json").read_text())
    assert manifest["resumed_at_joint_step"] == [stopped_at]  # continued there, not from scratch
    assert f"resumed (--resume) at joint step {stopped_at}" in (tmp_path / "r" / "report.md").read_text()
    assert manifest["transitions_per_learner"] == 1000 * 4 == manifest["joint_steps"] * 4
    assert not (tmp_path / "r" / "checkpoints").exists()  # spent once the teachers were saved
    for agent in manifest["agents"]:
        assert PPO.load(tmp_path / "r" / "teachers" / f"{agent}.zip").num_timesteps == 4000
