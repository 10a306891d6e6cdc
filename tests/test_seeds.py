"""One SeedSequence tree per run: the run seed reaches every stage, and no two runs share a stream."""

from __future__ import annotations

from pathlib import Path

from marl_distill import config as config_mod
from marl_distill import grid, seeding

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
    teacher_cells, student_cells = grid.cells(grid.load(tmp_path / "g.toml"), tmp_path / "out")
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
