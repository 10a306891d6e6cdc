"""Hostile input: every case exits 2 with one line on stderr naming the problem, no traceback, and leaves the file
system exactly as it found it (the tree under the test folder is hashed before and after)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from marl_distill.cli import cli as main_cli

SPEC = "marl_distill_envs.matrix_games:climbing_game"
TURNS = str(Path(__file__).resolve().parents[1] / "turn_worlds.py") + ":EliminationGame"
TINY_TEACHERS = ["--steps", "400", "--n-envs", "4", "--ppo-kwargs", '{"n_steps": 50, "batch_size": 100}']
GOOD_TOML = f"""
name = "good"
[env]
id = "{SPEC}"
kwargs = {{ rounds = 4 }}
[teachers]
steps = 400
n_envs = 4
ppo = {{ n_steps = 50, batch_size = 100 }}
[distill]
samples = 500
epochs = 2
[evaluate]
episodes = 10
mixed_episodes = 4
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A teachers run (t) and a student run distilled from it (s), made once and copied into each case."""
    root = tmp_path_factory.mktemp("made")
    assert (
        main_cli(["train-teachers", SPEC, "--env-kwargs", '{"rounds": 4}', "--out", str(root / "t"), *TINY_TEACHERS])
        == 0
    )
    student = ["--student", "shared", "--hidden", "8", "--steps", "300", "--epochs", "2"]
    assert main_cli(["distill", str(root / "t"), "--out", str(root / "s"), *student]) == 0
    return root


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def user_folder(tmp: Path) -> None:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "report.md").write_text("my notes")
    (tmp / "mine" / "metrics.json").write_text('{"mine": 1}')


def corrupt_zip(tmp: Path) -> None:
    (tmp / "t" / "teachers" / "agent_0.zip").write_bytes(b"PK\x03\x04 not really a zip")


def foreign_student(tmp: Path) -> None:
    meta = tmp / "s" / "students" / "shared" / "student.json"
    data = json.loads(meta.read_text())
    data["agents"] = ["somebody", "else"]
    meta.write_text(json.dumps(data))


def other_view_student(tmp: Path) -> None:
    meta = tmp / "s" / "students" / "shared" / "student.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "view": "global"}))


def damaged_manifest(tmp: Path) -> None:
    (tmp / "t" / "teachers" / "teachers.json").write_text('{"agents": ')


def grid_file(tmp: Path) -> None:
    user_folder(tmp)
    (tmp / "grid.toml").write_text(
        'seeds = [0]\n[[tasks]]\nname = "c"\nenv = { id = "climbing_game" }\n'
        '[[settings]]\nname = "s"\ndistill = { students = ["shared"] }\n'
    )


def empty_folder(tmp: Path) -> None:
    (tmp / "empty").mkdir()


CASES: list[tuple[str, list[str], str, Callable[[Path], None] | None]] = [
    ("malformed TOML", ["run", "{tmp}/bad.toml", "--out", "{tmp}/o"], "bad.toml", None),
    (
        "unknown config key",
        ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", "distill.sampels=5"],
        "sampels",
        None,
    ),
    (
        "unknown env id",
        ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", "env.id=signal_gam"],
        "signal_gam",
        None,
    ),
    (
        "unimportable spec",
        ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", "env.id=nosuch_mod_q:env"],
        "cannot import",
        None,
    ),
    (
        "env rejects kwargs",
        ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", 'env.kwargs={{"bogus": 1}}'],
        "env",
        None,
    ),
    (
        "env rejects a kwarg's value",
        ["check-env", "navigation", "--env-kwargs", '{{"grid": 9}}'],
        "set sight too",
        None,
    ),
    (
        "bad JSON kwargs",
        ["train-teachers", SPEC, "--out", "{tmp}/o", "--env-kwargs", "{{rounds: 4"],
        "--env-kwargs",
        None,
    ),
    ("unknown algo", ["train-teachers", SPEC, "--out", "{tmp}/o", "--algo", "sac"], "--algo", None),
    (
        "bad checkpoint interval",
        ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", "teachers.checkpoint_every=-5"],
        "checkpoint_every",
        None,
    ),
    (
        "unknown agent in agent-algo",
        ["train-teachers", SPEC, "--out", "{tmp}/o", "--agent-algo", "leadr=dqn"],
        "leadr",
        None,
    ),
    (
        "DQN on continuous actions",
        ["train-teachers", "worlds:ContinuousTarget", "--out", "{tmp}/o", "--algo", "dqn"],
        "Box actions",
        None,
    ),
    ("zero budget", ["train-teachers", SPEC, "--out", "{tmp}/o", "--steps", "0"], "steps", None),
    ("negative budget", ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", "distill.samples=-5"], "samples", None),
    (
        "unknown student kind",
        ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", 'distill.students=["big"]'],
        "big",
        None,
    ),
    ("missing run folder", ["distill", "{tmp}/nowhere", "--out", "{tmp}/o"], "nowhere", None),
    ("empty run folder", ["evaluate", "{tmp}/empty"], "not a marl-distill run folder", empty_folder),
    ("corrupted teacher zip", ["distill", "{tmp}/t", "--out", "{tmp}/o"], "agent_0.zip", corrupt_zip),
    ("student built for other agents", ["evaluate", "{tmp}/s"], "agents", foreign_student),
    ("--out on a user's folder", ["run", "{tmp}/good.toml", "--out", "{tmp}/mine"], "mine", user_folder),
    ("--resume on a user's folder", ["run", "{tmp}/good.toml", "--out", "{tmp}/mine", "--resume"], "mine", user_folder),
    ("--resume with another config", ["run", "{tmp}/good.toml", "--out", "{tmp}/s", "--resume"], "differs", None),
    ("export of a non-run folder", ["export", "{tmp}/empty"], "neither", empty_folder),
    ("unknown export format", ["export", "{tmp}/s", "--format", "tflite"], "tflite", None),
    ("too few episodes", ["evaluate", "{tmp}/s", "--episodes", "1"], "episodes", None),
    ("benchmark without tasks", ["benchmark", "{tmp}/good.toml", "--out", "{tmp}/o"], "tasks", None),
    (
        "teacher kwargs SB3 does not take",
        ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", "teachers.ppo={{bogus = 1}}"],
        "bogus",
        None,
    ),
    ("damaged teachers.json", ["distill", "{tmp}/t", "--out", "{tmp}/o"], "teachers.json", damaged_manifest),
    (
        "damaged extra teachers",
        ["distill", "{tmp}/s", "--out", "{tmp}/o", "--extra-teachers", "{tmp}/t"],
        "agent_0.zip",
        corrupt_zip,
    ),
    ("--json into a folder", ["evaluate", "{tmp}/s", "--json", "{tmp}/t"], "--json", None),
    ("benchmark --out on a user's folder", ["benchmark", "{tmp}/grid.toml", "--out", "{tmp}/mine"], "mine", grid_file),
    ("negative workers", ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--workers", "-1"], "--workers", None),
    ("unknown view", ["train-teachers", SPEC, "--out", "{tmp}/o", "--view", "sideways"], "is not a view", None),
    ("empty history view", ["train-teachers", SPEC, "--out", "{tmp}/o", "--view", "history:0"], "history:K", None),
    (
        "global view of an env with no state",
        ["train-teachers", SPEC, "--out", "{tmp}/o", "--view", "global"],
        "no global view",
        None,
    ),  # fmt: skip
    (
        "student view with no state",
        ["distill", "{tmp}/t", "--out", "{tmp}/o", "--student-view", "global"],
        "no global view",
        None,
    ),  # fmt: skip
    (
        "unknown student view in a config",
        ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", "distill.student_view=glob"],
        "student_view",
        None,
    ),  # fmt: skip
    ("student distilled for another view", ["evaluate", "{tmp}/s"], "view", other_view_student),
    (
        "sequence length 0",
        ["distill", "{tmp}/s", "--out", "{tmp}/o", "--student-arch", "gru", "--seq-len", "0"],
        "distill.seq_len",
        None,
    ),  # fmt: skip
    (
        "gru student from a copied MLP teacher",
        [
            "run",
            "{tmp}/good.toml",
            "--out",
            "{tmp}/o",
            "--set",
            "distill.arch=gru",
            "--set",
            'distill.students=["per-agent"]',
            "--set",
            "distill.init_from_teacher=true",
        ],
        "init_from_teacher",
        None,
    ),  # fmt: skip
    (
        "recurrent teachers with DQN options",
        [
            "run",
            "{tmp}/good.toml",
            "--out",
            "{tmp}/o",
            "--set",
            "teachers.algo=recurrent_ppo",
            "--set",
            "teachers.dqn={{buffer_size = 1000}}",
        ],
        "teachers.dqn",
        None,
    ),  # fmt: skip
    (
        "recurrent teachers in a turn-based env",
        ["train-teachers", TURNS, "--algo", "recurrent_ppo", "--steps", "500", "--out", "{tmp}/o"],
        "turn-based",
        None,
    ),
    (
        "unknown student arch",
        ["run", "{tmp}/good.toml", "--out", "{tmp}/o", "--set", "distill.arch=lstm"],
        "lstm",
        None,
    ),  # fmt: skip
]


@pytest.mark.parametrize(("name", "args", "needle", "setup"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input_exits_2_with_one_line_and_touches_nothing(made, tmp_path, capsys, name, args, needle, setup):
    shutil.copytree(made / "t", tmp_path / "t")
    shutil.copytree(made / "s", tmp_path / "s")
    (tmp_path / "good.toml").write_text(GOOD_TOML)
    (tmp_path / "bad.toml").write_text("[env\nid = 3")
    if setup is not None:
        setup(tmp_path)
    before = tree(tmp_path)
    capsys.readouterr()
    code = main_cli([a.format(tmp=tmp_path) for a in args])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (name, code, captured.err[-2000:])
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert needle in lines[0], lines[0]
    assert "--resume" not in lines[0] or args[0] == "run", lines[0]  # only run has --resume
    assert tree(tmp_path) == before, name


def test_the_table_is_at_least_twenty_cases():
    assert len(CASES) >= 20
