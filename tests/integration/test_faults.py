"""Faults a run survives: two commands on one run folder, a full disk, and a kill -9 in the middle of a write.

The kills and the injected full disk use ``MARL_DISTILL_FAULT`` (``marl_distill/utils/faults.py``) to stop a real
command at a named moment of a write; the real full disk is a 400 KB tmpfs mounted in a user namespace where the
platform allows one.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TINY
from stable_baselines3 import DQN, PPO

from marl_distill.cli import cli as main_cli
from marl_distill.errors import UserError
from marl_distill.teachers.checkpoint import MARK
from marl_distill.teachers.train import CHECKPOINTS
from marl_distill.utils import faults
from marl_distill.utils.faults import VARIABLE
from marl_distill.utils.folder_lock import LOCK, check_free, locked

GAME = ["marl_distill_envs.matrix_games:penalty_game", "--env-kwargs", '{"k": 25.0, "rounds": 5}']
STEPS = 1200
"""Transitions per learner: 300 joint steps of 4 copies, a checkpoint every 100 (the lcm of PPO's 50 and DQN's 4)."""
PPO_ONLY = [
    "train-teachers", *GAME, "--steps", str(STEPS), "--n-envs", "4", "--checkpoint-every", "400",
    "--ppo-kwargs", '{"n_steps": 50, "batch_size": 100}',
]  # fmt: skip
TEACHERS = [
    *PPO_ONLY, "--agent-algo", "agent_1=dqn",
    "--dqn-kwargs", '{"learning_starts": 100, "train_freq": 4, "buffer_size": 10000}',
]  # fmt: skip


def command(*args: str, fault: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The console script in its own session (its learners die with it), optionally stopped at a fault point."""
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if fault:
        env[VARIABLE] = fault
    return subprocess.run(
        [sys.executable, "-m", "marl_distill.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        start_new_session=True,
    )


def in_process(
    args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, fault: str = ""
) -> tuple[int, str]:
    """The command in this process (a fault met in a learner, a forked process, leaves this one running)."""
    faults.reset()
    if fault:
        monkeypatch.setenv(VARIABLE, fault)
    else:
        monkeypatch.delenv(VARIABLE, raising=False)
    code = main_cli(args)
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    """The one error line of ``err``; besides it only the stages' progress lines (``teachers: started``)."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    progress = [line for line in lines if line.startswith(("teachers: ", "distill: ", "evaluate: "))]
    assert len(errors) == 1 and len(errors) + len(progress) == len(lines) and "Traceback" not in err, err
    return errors[0]


def checkpoint_files(out: Path) -> set[str]:
    return {p.name for p in (out / CHECKPOINTS).iterdir()}


def whole(step: int) -> set[str]:
    """The files of TEACHERS' checkpoint at ``step`` (PPO's agent_0, DQN's agent_1 with its replay buffer)."""
    learners = {f"agent_{i}-{step}.{end}" for i in (0, 1) for end in ("zip", "state.pkl")}
    return {MARK, f"agent_1-{step}.replay.pkl", *learners}


def assert_whole_teachers(folder: Path, resumed_at: list[int]) -> None:
    """Every learner reached the full budget, continuing from the checkpoint it had."""
    manifest = json.loads((folder / "teachers" / "teachers.json").read_text())
    assert manifest["transitions_per_learner"] == STEPS and manifest["resumed_at_joint_step"] == resumed_at
    assert PPO.load(folder / "teachers" / "agent_0.zip").num_timesteps == STEPS
    dqn = DQN.load(folder / "teachers" / "agent_1.zip")
    assert dqn.num_timesteps == STEPS
    assert not (folder / CHECKPOINTS).exists()


def test_a_second_command_on_a_busy_run_folder_is_refused_and_a_dead_holder_never_blocks(tmp_path, capsys):
    (tmp_path / "tiny.toml").write_text(TINY.replace("steps = 2000", "steps = 400000"))
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "marl_distill.cli", "run", str(tmp_path / "tiny.toml"), "--out", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ((run / LOCK).is_file() and (run / LOCK).read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"pid {first.pid}" in (run / LOCK).read_text()
        for args in (
            ["run", str(tmp_path / "tiny.toml"), "--out", str(run), "--resume"],
            ["run", str(tmp_path / "tiny.toml"), "--out", str(run)],
            ["distill", str(run), "--out", str(run), "--name", "small", "--hidden", "4"],
            ["evaluate", str(run)],
            ["export", str(run)],
        ):
            assert main_cli(args) == 2, args
            line = one_line(capsys.readouterr().err)
            assert f"is in use by another marl-distill command (pid {first.pid}: " in line, line
            assert "delete" not in line
        assert first.poll() is None  # the refusals above met a live holder
        assert not (run / "students").exists() and not (run / "metrics.json").exists()  # the first is training
    finally:
        os.kill(first.pid, signal.SIGKILL)  # the holder alone dies without a word (kill -9): its lock file stays
        first.wait()
    try:
        assert (run / LOCK).is_file()
        deadline = time.monotonic() + 30  # its learners, which share the lock, are killed with it a moment later
        while time.monotonic() < deadline:
            try:
                check_free(run)  # the kernel dropped the dead holder's lock: nothing blocks the next command
                break
            except UserError:
                time.sleep(0.1)
        check_free(run)
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)  # whatever of it is left, should the check above have failed
        except ProcessLookupError:
            pass
    with locked(run):
        pass


def test_a_full_disk_is_one_line_and_resume_goes_on_once_space_returns(tmp_path, capsys, monkeypatch):
    """Injected ENOSPC where a learner saves its second checkpoint's model, then where the last stage writes
    metrics.json: exit 1, one line naming the folder; nothing half-written; the same command with --resume
    finishes from the last whole checkpoint."""
    out = tmp_path / "t"
    code, err = in_process([*TEACHERS, "--out", str(out)], capsys, monkeypatch, "enospc:checkpoint-model@2")
    line = one_line(err)
    assert code == 1 and f"no space left on the disk of {out} (" in line and "--resume" in line, line
    assert json.loads((out / CHECKPOINTS / MARK).read_text())["joint_steps"] == 100
    assert not (out / "teachers").exists() and checkpoint_files(out) == whole(100)  # nothing of the cut-off save
    assert in_process([*TEACHERS, "--out", str(out), "--resume"], capsys, monkeypatch)[0] == 0
    assert_whole_teachers(out, [100])

    (tmp_path / "tiny.toml").write_text(TINY)
    run = ["run", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "run")]
    code, err = in_process(run, capsys, monkeypatch, "enospc:write:metrics.json")
    assert code == 1 and "no space left on the disk of" in one_line(err)
    assert not list((tmp_path / "run").glob("*metrics.json*")) and (tmp_path / "run" / "students" / "shared").is_dir()
    assert in_process([*run, "--resume"], capsys, monkeypatch)[0] == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["teacher"]["team_return"]["episodes"] == 20


def _unshare() -> list[str] | None:
    tool = shutil.which("unshare")
    if tool is None or not sys.platform.startswith("linux"):
        return None
    probe = subprocess.run([tool, "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return [tool, "--user", "--map-root-user", "--mount"] if probe.returncode == 0 else None


STUDENT_ON_A_FULL_DISK = """
import sys
from pathlib import Path
from marl_distill.env.registry import resolve
from marl_distill.env.joint_vec_env import make_parallel
from marl_distill.policy.spec import EnvSpec
from marl_distill.students.mlp import StudentMeta, StudentNet, StudentTeam
from marl_distill.utils.disk_full import is_disk_full
spec = EnvSpec.of(make_parallel(resolve("simple_spread", {})))
team = StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, "shared", [64, 64])))
try:
    team.save(Path(sys.argv[1]) / "student")
except Exception as exc:
    print("disk full" if is_disk_full(exc) else f"not recognised: {exc!r}")
"""


@pytest.mark.skipif(_unshare() is None, reason="no user namespaces here: the injected full disk above stands in")
def test_a_student_saved_on_a_real_full_disk_is_recognised_as_one(tmp_path):
    """torch's own zip writer reports a full disk as "unexpected pos"; saved through a Python file it is ENOSPC."""
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "save.py").write_text(STUDENT_ON_A_FULL_DISK)
    script = f"mount -t tmpfs -o size=12k none {disk} && {shlex.quote(sys.executable)} {tmp_path}/save.py {disk}"
    proc = subprocess.run([*_unshare(), "sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip() == "disk full", proc.stdout + proc.stderr


@pytest.mark.skipif(_unshare() is None, reason="no user namespaces here: the injected full disk above stands in")
def test_a_real_400_kb_file_system_fills_at_the_second_checkpoint_and_resume_continues(tmp_path):
    """Two PPO learners' checkpoint takes about 310 KB: the first fits in 400 KB, the second does not."""
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "t"
    cli = shlex.join([sys.executable, "-m", "marl_distill.cli", *PPO_ONLY, "--out", str(out)])
    script = (
        f"mount -t tmpfs -o size=400k none {disk} && {{ {cli} 2>{tmp_path}/err1; echo $? > {tmp_path}/rc1; "
        f"cp -r {out} {tmp_path}/full; mount -o remount,size=64m {disk}; "
        f"{cli} --resume 2>{tmp_path}/err2; echo $? > {tmp_path}/rc2; cp -r {out} {tmp_path}/kept; }}"
    )
    subprocess.run([*_unshare(), "sh", "-c", script], timeout=600, check=True)
    err = (tmp_path / "err1").read_text()
    assert (tmp_path / "rc1").read_text().strip() == "1", err
    line = one_line(err)
    assert f"no space left on the disk of {out} (" in line and "KB free)" in line, line
    full = tmp_path / "full" / CHECKPOINTS
    assert sorted(p.name for p in full.iterdir()) == sorted(
        [MARK, "agent_0-100.zip", "agent_0-100.state.pkl", "agent_1-100.zip", "agent_1-100.state.pkl"]
    )  # the whole first checkpoint, and nothing of the second
    assert (tmp_path / "rc2").read_text().strip() == "0", (tmp_path / "err2").read_text()
    manifest = json.loads((tmp_path / "kept" / "teachers" / "teachers.json").read_text())
    assert manifest["resumed_at_joint_step"] == [100] and manifest["transitions_per_learner"] == STEPS


@pytest.mark.parametrize(
    "fault, mark",
    [
        ("kill:checkpoint-model@2", 100),  # a learner, after its model zip, before its state file
        ("kill:checkpoint-replay@2", 100),  # the DQN learner, its replay buffer half written
        ("kill:checkpoint-mark@2", 100),  # the coordinator: every learner saved, the mark not yet written
        ("kill:teacher-saved", 200),  # the coordinator: the first final teacher saved, teachers.json not
    ],
)
def test_a_kill_at_each_write_point_resumes_to_the_same_transitions(tmp_path, capsys, monkeypatch, fault, mark):
    out = tmp_path / "t"
    if fault.startswith("kill:checkpoint-model") or fault.startswith("kill:checkpoint-replay"):
        code, err = in_process([*TEACHERS, "--out", str(out)], capsys, monkeypatch, fault)
        assert code == 1 and "died" in one_line(err), err  # the learner's death, in one line
        assert checkpoint_files(out) == whole(mark)  # the coordinator lived on and removed the cut-off save
    else:
        proc = command(*TEACHERS, "--out", str(out), fault=fault)  # this process itself dies
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (out / "teachers" / "teachers.json").exists()
    assert json.loads((out / CHECKPOINTS / MARK).read_text())["joint_steps"] == mark
    code, err = in_process([*TEACHERS, "--out", str(out), "--resume"], capsys, monkeypatch)
    assert code == 0, err
    assert_whole_teachers(out, [mark])


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="workers fork on Linux only; elsewhere the kill would stop the test process itself",
)
def test_a_worker_killed_while_saving_a_student_is_one_line_and_resume_keeps_the_finished_ones(
    tmp_path, capsys, monkeypatch
):
    """Students are distilled side by side in forked workers; one dies between its weights and its student.json."""
    (tmp_path / "tiny.toml").write_text(TINY)
    run = ["run", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "run"), "--workers", "2"]
    code, err = in_process(run, capsys, monkeypatch, "kill:student-weights")
    assert code == 1 and "a worker process died" in one_line(err) and "--resume" in err, err
    students = tmp_path / "run" / "students"
    assert not all((students / kind / "student.json").exists() for kind in ("shared", "per-agent"))
    assert in_process([*run, "--resume"], capsys, monkeypatch)[0] == 0
    assert all((students / kind / "student.json").exists() for kind in ("shared", "per-agent"))
