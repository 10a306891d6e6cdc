"""ONNX export: one graph per team, from raw env observations to env-ready actions, equal to the lab's own acting.

Parity is checked against torch on real observations (random play), for shared and per-agent students with
heterogeneous, masked, Gaussian and image / float64 / discrete observations, and for SB3 PPO, MaskablePPO and DQN
teachers' actors. Untrained networks with scaled-up weights, so argmaxes vary and Box means hit their bounds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import models_for
from turn_worlds import EliminationGame
from worlds import (
    ContinuousTarget,
    HeteroTargetGame,
    MaskedTargetGame,
    MixedObsTargetGame,
    ShiftedTargetGame,
)

from marl_distill.cli import cli as main_cli
from marl_distill.compress.export import PARITY_TOL, exported, sample_observations
from marl_distill.compress.graph import read_meta
from marl_distill.compress.paths import raw_obs_spaces
from marl_distill.compress.runtime import OnnxTeam, weight_bytes_of
from marl_distill.env.joint_vec_env import make_parallel
from marl_distill.evaluation.rollout import run_episodes
from marl_distill.policy.observations import decode_batch, encoder
from marl_distill.policy.spec import EnvSpec
from marl_distill.students import StudentMeta, StudentNet, StudentTeam
from marl_distill.teachers import TeacherTeam


def student(world, kind: str, hidden=(16, 16), scale: float = 3.0) -> StudentTeam:
    spec = EnvSpec.of(make_parallel(world))
    torch.manual_seed(0)
    net = StudentNet(StudentMeta.for_spec(spec, kind, list(hidden)))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return StudentTeam(spec, net)


@pytest.mark.parametrize(
    "world",
    [HeteroTargetGame, MaskedTargetGame, ContinuousTarget, MixedObsTargetGame, ShiftedTargetGame, EliminationGame],
)
@pytest.mark.parametrize("kind", ["shared", "per-agent"])
def test_student_graphs_match_torch_and_act_as_the_lab(world, kind):
    model, report = exported(student(world, kind), world)
    check = report["parity_fp32"]
    assert check["max_abs_diff"] <= PARITY_TOL and check["rows"] >= 100, check
    assert all(v == 1.0 for v in check["action_match"].values()), check
    meta = read_meta(model)
    assert meta["agents"] == list(EnvSpec.of(make_parallel(world)).agents)
    masked = [a for a, m in meta["per_agent"].items() if m["mask_input"]]
    assert (world in (MaskedTargetGame, EliminationGame)) == bool(masked)  # turn-based: whose turn is a mask
    if world is ShiftedTargetGame:
        assert all(m["action_start"] == 1 for m in meta["per_agent"].values())
    if kind == "shared":
        assert all("agent_id_index" in m["shared_input"] for m in meta["per_agent"].values())
        n_matmuls = sum(node.op_type == "MatMul" for node in model.graph.node)
        assert n_matmuls == 3  # one trunk for every agent's rows


@pytest.mark.parametrize("world, algo", [(MaskedTargetGame, "ppo"), (MaskedTargetGame, "maskable"),
                                         (HeteroTargetGame, "dqn"), (ContinuousTarget, "ppo")])  # fmt: skip
def test_teacher_actor_graphs_match_sb3(world, algo):
    spec = EnvSpec.of(make_parallel(world))
    team = TeacherTeam(spec, models_for(spec, algo))
    model, report = exported(team, world)
    assert report["parity_fp32"]["max_abs_diff"] <= PARITY_TOL, report
    assert weight_bytes_of(model) == team.weight_bytes()  # the graph's weights are the actors' (Gaussian log_std too)
    assert all(v == 1.0 for v in report["parity_fp32"]["action_match"].values()), report


def test_an_exported_team_plays_in_the_lab_like_the_student_it_came_from():
    team = student(MixedObsTargetGame, "shared")  # image, float64 and Discrete observations: decoding is exact
    model, _ = exported(team, MixedObsTargetGame)
    onnx_team = OnnxTeam(team.spec, model, raw_obs_spaces(MixedObsTargetGame))
    rng = np.random.default_rng(0)
    ours = run_episodes(MixedObsTargetGame, team, episodes=20, n_envs=4, rng=rng, reference=team)
    theirs = run_episodes(MixedObsTargetGame, onnx_team, episodes=20, n_envs=4, rng=rng, reference=team)
    np.testing.assert_array_equal(ours.team, theirs.team)
    assert all(theirs.agree[a] == theirs.acted[a] for a in team.spec.agents)


@pytest.mark.parametrize("world", [MaskedTargetGame, EliminationGame])  # masks; turns and departures
@pytest.mark.parametrize("kind", ["shared", "per-agent"])
def test_gru_student_graphs_thread_their_state_over_whole_episodes(world, kind):
    spec = EnvSpec.of(make_parallel(world))
    torch.manual_seed(0)
    team = StudentTeam(spec, StudentNet(StudentMeta.for_spec(spec, kind, [12, 8], arch="gru")))
    model, report = exported(team, world, quantize="int8")
    check = report["parity_fp32"]  # checked step by step over the sampled episodes, states fed back
    assert check["max_abs_diff"] <= PARITY_TOL and check["rows"] >= 100, check
    meta = read_meta(model)
    assert "state_out" in meta["state"]
    for agent, m in meta["per_agent"].items():
        assert (m["state_input"], m["state_output"], m["state_size"]) == (f"state_in_{agent}", f"state_out_{agent}", 8)
    fp32 = exported(team, world)[0]
    ours = run_episodes(world, team, episodes=12, n_envs=3, rng=np.random.default_rng(0), reference=team)
    graph = OnnxTeam(spec, fp32, raw_obs_spaces(world))
    theirs = run_episodes(world, graph, episodes=12, n_envs=3, rng=np.random.default_rng(0), reference=team)
    np.testing.assert_array_equal(ours.team, theirs.team)
    assert all(theirs.agree[a] == theirs.acted[a] for a in spec.agents)  # the same actions at every step


def test_decoding_inverts_the_encoder_for_every_observation_space():
    samples = sample_observations(MixedObsTargetGame, rows=50)
    for a, space in raw_obs_spaces(MixedObsTargetGame).items():
        encoded = np.stack([encoder(space)(x) for x in samples.raw[a]])
        decoded = decode_batch(space, encoded)
        np.testing.assert_array_equal(decoded, samples.raw[a].astype(decoded.dtype))
        assert len(np.unique(samples.raw[a], axis=0)) > 1


def test_int8_shrinks_wide_weights_and_mostly_keeps_the_actions():
    team = student(HeteroTargetGame, "per-agent", hidden=(64, 64), scale=1.0)
    fp32, _ = exported(team, HeteroTargetGame)
    int8, report = exported(team, HeteroTargetGame, quantize="int8")
    assert weight_bytes_of(int8) < 0.4 * weight_bytes_of(fp32)
    assert any(n.op_type in ("DynamicQuantizeMatMul", "MatMulInteger") for n in int8.graph.node)
    assert all(v["action_match"] >= 0.8 for v in report["int8_vs_fp32"].values()), report


def test_int8_graph_computes_the_same_on_onnxruntime_as_exact_integer_arithmetic():
    """The int8 graph of a wide teacher-like net with large weights, through onnxruntime, equals onnx's reference
    evaluator (exact integer sums) on real observations: no CPU-dependent saturation (signed weights against
    unsigned activations saturate on x86 CPUs without VNNI, and this check then fails there)."""
    from onnx.reference import ReferenceEvaluator

    from marl_distill.compress.runtime import session

    team = student(HeteroTargetGame, "per-agent", hidden=(64, 64), scale=3.0)
    int8, _ = exported(team, HeteroTargetGame, quantize="int8")
    samples = sample_observations(HeteroTargetGame, rows=256)
    feeds = {i.name: samples.raw[i.name.removeprefix("obs_")].astype(np.float32) for i in int8.graph.input}
    names = [o.name for o in int8.graph.output]
    fast, exact = session(int8).run(names, feeds), ReferenceEvaluator(int8).run(names, feeds)
    for name, x, y in zip(names, fast, exact):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=name)


def test_export_without_the_extra_names_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main_cli(["export", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "[export]" in err and "onnxruntime" in err and len(err.strip().splitlines()) == 1


def test_evaluation_without_the_extra_says_why_nothing_was_exported(monkeypatch):
    """evaluate.onnx is on by default: with onnxruntime missing, evaluation still runs, and the report says where
    its ONNX table would be that nothing was exported, and how to install it. (Untrained teachers also make
    normalized returns null, whose warning must name this file's line.)"""
    from dataclasses import replace

    from helpers import QUICK_EVAL

    from marl_distill.evaluation.metrics import evaluate_all
    from marl_distill.evaluation.report import report_text

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    spec = EnvSpec.of(make_parallel(HeteroTargetGame))
    teachers = TeacherTeam(spec, models_for(spec, "ppo"))
    cfg = replace(QUICK_EVAL, episodes=8, onnx=True)
    with pytest.warns(UserWarning, match="normalized return is null") as warned:  # untrained teachers
        metrics = evaluate_all(HeteroTargetGame, teachers, {"per-agent": student(HeteroTargetGame, "per-agent")}, cfg)
    # a warning names the caller's line (here, this file), not a line of the package it came through
    null = [w for w in warned if "normalized return is null" in str(w.message)]
    assert {Path(w.filename).resolve() for w in null} == {Path(__file__).resolve()}
    assert "latency_us_onnx" not in metrics["teacher"]
    assert "[export]" in metrics["_meta"]["onnx_not_exported"] and "onnx_skipped" not in metrics["_meta"]
    report = report_text(metrics)
    assert "## Exported (ONNX)\n\nNot exported: onnxruntime not installed: pip install" in report
