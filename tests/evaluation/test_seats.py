"""Games whose agents do not share one goal: per-seat figures (each agent's return against the teachers in the
other seats, normalized per seat) are the headline, and team sums are not scored."""

from __future__ import annotations

from helpers import QUICK_EVAL, distill_and_evaluate, teachers_for
from worlds import RivalTargetGame

from marl_distill.evaluation.report import write_report


def test_a_mixed_game_is_scored_per_seat(tmp_path):
    teachers = teachers_for(RivalTargetGame, steps=6_000)
    results, metrics = distill_and_evaluate(RivalTargetGame, teachers, epochs=20)
    assert metrics["_meta"]["shared_goal"]["value"] is False and "differ" in metrics["_meta"]["shared_goal"]["why"]
    assert all(metrics[p]["normalized_return"] is None for p in ("teacher", "random", *results))
    for seat in ("agent_0", "agent_1", "agent_2"):
        teacher = metrics["teacher"]["per_seat"][seat]
        assert teacher["gap_over_random"]["significant"], (seat, teacher)  # the teachers beat random in every seat
        assert teacher["return"]["episodes"] == QUICK_EVAL.episodes and "win_draw_loss" not in teacher
        assert metrics["random"]["per_seat"][seat]["normalized"] == 0.0
        for name in results:  # the student in this seat, the teachers in the others
            student = metrics[name]["per_seat"][seat]
            assert student["normalized"] > 0.8 and student["paired_diff"]["episodes"] == QUICK_EVAL.episodes
    # agent_2 loses what agent_0 earns: with trained teachers in both seats its seat return is near 0, while a
    # random agent_2 (against teacher agent_0) pays for every target agent_0 hits
    assert metrics["random"]["per_seat"]["agent_2"]["return"]["mean"] < -2.0
    write_report(tmp_path, metrics, "rival targets")
    report = (tmp_path / "report.md").read_text()
    assert "| shared | agent_2 |" in report and "do not share one goal" in report and "## Mixed teams" not in report
    assert "Teachers − random in seat agent_0" in report and (tmp_path / "plots" / "returns.png").is_file()


def test_a_benchmark_of_a_mixed_game_reports_each_seat(tmp_path, capsys):
    from marl_distill.cli import cli

    (tmp_path / "grid.toml").write_text(
        'name = "rivals"\nseeds = [0]\n[base]\n'
        "evaluate = { episodes = 20, mixed_teams = false, latency_repeats = 2, latency_rounds = 1 }\n"
        'distill = { samples = 2000, epochs = 20 }\n[[tasks]]\nname = "rivals"\n'
        'env = { id = "worlds:RivalTargetGame" }\n'
        "teachers = { steps = 6000, n_envs = 8, ppo = { n_steps = 64, batch_size = 128, learning_rate = 0.003 } }\n"
        '[[settings]]\nname = "kl"\ndistill = { students = ["shared"] }\n'
    )
    assert cli(["benchmark", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "kl/shared · agent_2" in printed, printed
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| kl/shared | agent_2 |" in report and "do not share one goal" in report


def test_mpe2_cooperative_tasks_are_known_by_id_and_by_module_spec():
    from marl_distill.env.registry import declared_cooperative

    for spec in ("simple_spread", "mpe2.simple_spread_v3:parallel_env", "mpe2.simple_reference_v3:env"):
        assert declared_cooperative(spec, object()) is True, spec
    assert declared_cooperative("mpe2.simple_tag_v3:env", object()) is None  # predator-prey: decided from rewards
