"""One SeedSequence tree per run: the run seed reaches every stage, and no two runs share a stream."""

from __future__ import annotations

from pathlib import Path

from marl_distill import config as config_mod
from marl_distill.pipeline.benchmark import cells
from marl_distill.pipeline.config import load_benchmark
from marl_distill.utils import seeding

GRID = """
name = "seeds"
seeds = [0, 1, 2]

[base]
teachers = { seed = 99 }

[[tasks]]
name = "penalty"
env = { id = "penalty_game" }

[[settings]]
name = "kl"
distill = { students = ["shared"] }
"""


def test_the_run_seed_reaches_every_stage_unless_a_stage_sets_its_own():
    cfg = config_mod.build({"seed": 4})
    assert (cfg.seed, cfg.teachers.seed, cfg.distill.seed, cfg.evaluate.seed) == (4, 4, 4, 4)
    cfg = config_mod.build({"seed": 4, "distill": {"seed": 9}})
    assert (cfg.teachers.seed, cfg.distill.seed, cfg.evaluate.seed) == (4, 9, 4)
    saved = config_mod.build(config_mod.to_dict(cfg))  # a saved config.toml reads back the same
    assert config_mod.to_dict(saved) == config_mod.to_dict(cfg)


def test_grid_cells_of_different_seeds_share_no_stage_seed(tmp_path: Path):
    (tmp_path / "g.toml").write_text(GRID)
    teacher_cells, student_cells = cells(load_benchmark(tmp_path / "g.toml"), tmp_path / "out")
    for cell in teacher_cells + student_cells:  # the grid's seed wins over a stage seed in [base]
        stage_seeds = {cell.config[s]["seed"] for s in config_mod.SEEDED_STAGES}
        assert stage_seeds == {cell.config["seed"]} == {cell.seed}


def test_evaluation_episodes_and_learners_differ_between_runs():
    episodes = [set(seeding.int_seeds(run, seeding.EVALUATE, seeding.EPISODES, n=400)) for run in range(5)]
    assert all(len(e) == 400 for e in episodes)
    assert all(not (episodes[i] & episodes[j]) for i in range(5) for j in range(i + 1, 5))
    learners = [
        seeding.int_seed(run, seeding.TEACHERS, seeding.LEARNER, agent) for run in range(50) for agent in range(8)
    ]
    assert len(set(learners)) == len(learners)  # run s's agent 1 is not run s+1's agent 0


DETERMINISM = """
[env]
id = "marl_distill_envs.matrix_games:climbing_game"
kwargs = { rounds = 4 }
[teachers]
steps = 400
n_envs = 4
env_workers = 2
ppo = { n_steps = 50, batch_size = 100 }
[distill]
students = ["shared", "per-agent"]
samples = 400
epochs = 2
[evaluate]
episodes = 12
mixed_episodes = 4
latency_repeats = 2
latency_rounds = 1
"""


def test_the_same_config_and_seed_twice_give_the_same_metrics(tmp_path: Path):
    """Teachers (two env worker processes), both students (side by side) and evaluation: every figure but timings."""
    import json

    from helpers import untimed

    from marl_distill.pipeline import runner

    cfg = config_mod.build(config_mod.tomllib.loads(DETERMINISM))  # tomllib, or tomli on 3.10
    first, second = (runner.run(cfg, tmp_path / name, progress=False) for name in ("a", "b"))
    assert untimed(first) == untimed(second)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["shared"]["team_return"]["episodes"] == 12
