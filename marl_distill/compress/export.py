"""Export a team to ONNX with its parity checked, and quantize it to int8.

Parity is measured on real observations (random play of the env from the given seed, raw as the env hands them
out): the graph in onnxruntime against the team's own torch forward on the lab's encoding of the same
observations. fp32 must agree within ``PARITY_TOL`` on every legal output, or the export is refused; a recurrent
student is checked over whole episodes, its state threaded through both step by step. int8 is
onnxruntime's dynamic quantization (``quantize_dynamic``: int8 weights, activations quantized per call), the
path onnxruntime maintains; torch's eager quantizer is being deprecated.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from marl_distill.compress import require_export
from marl_distill.compress.graph import build_model
from marl_distill.compress.paths import Team, raw_obs_spaces, reference_params, team_paths
from marl_distill.compress.runtime import OnnxTeam
from marl_distill.env.checker import random_action
from marl_distill.env.joint_vec_env import make_parallel
from marl_distill.errors import UserError
from marl_distill.policy.distributions import MASKED_LOGIT
from marl_distill.policy.observations import encoder, has_mask
from marl_distill.students import StudentTeam
from marl_distill.teachers import TeacherTeam

PARITY_TOL = 1e-5
"""Largest |torch - onnxruntime| allowed on any legal logit, Q-value, mean or log_std (fp32), plus
``PARITY_REL`` times the row's largest magnitude: float32 rounding grows with the outputs' size."""
PARITY_REL = 1e-6
QUANTIZATIONS = ("int8",)


@dataclass
class Samples:
    """Real observations per agent: raw (what the graph takes), encoded (what the lab's policies take), masks."""

    raw: dict[str, np.ndarray]
    encoded: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    starts: dict[str, np.ndarray]
    """Per agent and row: is it the agent's first observation of an episode (rows of an episode are in order)."""


def sample_observations(factory: Callable[[], Any], *, rows: int = 256, seed: int = 0) -> Samples:
    """Up to ``rows`` observations per agent from random legal play (episodes reset from ``seed``, ``seed + 1``...)."""
    env = make_parallel(factory)
    rng = np.random.default_rng(seed)
    raw: dict[str, list[Any]] = {a: [] for a in env.possible_agents}
    masks: dict[str, list[np.ndarray]] = {a: [] for a in env.possible_agents}
    starts: dict[str, list[bool]] = {a: [] for a in env.possible_agents}
    encode = {}
    for i, a in enumerate(env.possible_agents):
        env.action_space(a).seed(seed + i)  # Box actions: space.sample(), reproducible
        space = env.observation_space(a)
        encode[a] = encoder(space["observation"] if has_mask(space) else space)
    episode = 0
    while min(len(v) for v in raw.values()) < rows and episode < 10 * rows:
        obs, _ = env.reset(seed=seed + episode)
        episode += 1
        fresh = set(env.possible_agents)
        while env.agents:
            actions = {}
            for a in env.agents:
                starts[a].append(a in fresh)
                fresh.discard(a)
                o = obs[a]
                mask = None
                if isinstance(o, dict) and "action_mask" in o:
                    mask = np.asarray(o["action_mask"]).astype(bool)
                    masks[a].append(mask)
                    o = o["observation"]
                raw[a].append(np.asarray(o))
                actions[a] = random_action(env.action_space(a), mask, rng)
            obs, *_ = env.step(actions)
    env.close()
    unseen = [a for a, v in raw.items() if not v]
    if unseen:
        raise UserError(f"agents {unseen} never got an observation in {episode} random episodes, so parity cannot "
                        "be checked on them; export a team whose agents all play")  # fmt: skip
    raw_arr = {a: np.stack(v[:rows]) for a, v in raw.items()}
    return Samples(
        raw_arr,
        {a: np.stack([encode[a](x) for x in v]) for a, v in raw_arr.items()},
        {a: np.stack(v[:rows]) for a, v in masks.items() if v},
        {a: np.array(v[:rows], dtype=bool) for a, v in starts.items()},
    )


def graph_feeds(model: Any, samples: Samples, *, rows: slice | None = None) -> dict[str, np.ndarray]:
    """The graph's inputs for the sampled rows (every agent gets the same number of rows)."""
    from marl_distill.compress.graph import read_meta

    meta = read_meta(model)["per_agent"]
    n = min(len(v) for v in samples.raw.values())
    sel = rows or slice(0, n)
    feeds = {}
    for a, m in meta.items():
        feeds[m["obs_input"]] = np.ascontiguousarray(samples.raw[a][sel], dtype=m["obs_dtype"])
        if m["mask_input"]:
            feeds[m["mask_input"]] = samples.masks[a][sel]
    return feeds


def parity(
    team: Team, model: Any, samples: Samples, raw: Mapping[str, gym.Space]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Max |torch - onnxruntime| over legal outputs per agent, and the share of rows where the graph's action is
    the lab's (the argmax of the team's own masked logits plus the space's start, or the clipped mean); and the
    graph's outputs on the samples."""
    ort_team = OnnxTeam(team.spec, model, raw)
    n = min(len(v) for v in samples.raw.values())
    outputs = graph_outputs(ort_team, model, samples)
    if isinstance(team, StudentTeam) and team.recurrent:
        ref = _torch_sequences(team, samples)
    else:
        ref = reference_params(team, {a: e[:n] for a, e in samples.encoded.items()})
    worst, excess, same = {}, {}, {}
    for a, m in ort_team.meta["per_agent"].items():
        got, want = outputs[m["params_output"]], ref[a]
        legal = np.ones_like(want, dtype=bool)
        if m["mask_input"]:
            legal = samples.masks[a][:n]
            want = np.where(legal, want, MASKED_LOGIT)
        if m["params_kind"] == "logits":  # a distribution's logits are defined up to a constant per row (torch's
            got, want = _normalized(got, legal), _normalized(want, legal)  # Categorical keeps them normalized)
        diff = np.abs(np.where(legal, got, 0.0) - np.where(legal, want, 0.0))
        scale = np.max(np.abs(np.where(legal, want, 0.0)), axis=1, keepdims=True)
        worst[a] = float(np.max(diff)) if legal.any() else 0.0
        excess[a] = float(np.max(diff - PARITY_TOL - PARITY_REL * scale)) if legal.any() else -PARITY_TOL
        head = team.spec.head(a)
        lab_action = head.act(want, True, np.random.default_rng(0))
        if m["params_kind"] == "gaussian":
            same[a] = float(np.mean(np.all(np.isclose(outputs[m["action_output"]], lab_action, atol=PARITY_TOL), 1)))
        else:
            same[a] = float(np.mean(outputs[m["action_output"]] == lab_action + m.get("action_start", 0)))
    # excess: how far the worst difference goes beyond PARITY_TOL + PARITY_REL x its row's largest |output| (<= 0 holds)
    check = {"max_abs_diff": max(worst.values()), "excess": max(excess.values()), "by_agent": worst}
    return {**check, "action_match": same, "rows": n}, outputs


def _over_episodes(
    step: Callable[[slice, dict[str, np.ndarray]], tuple[Mapping[str, Any], dict[str, np.ndarray]]],
    state: dict[str, np.ndarray],
    samples: Samples,
) -> dict[str, np.ndarray]:
    """``step(rows, state) -> (outputs, next state)`` one sampled row at a time, each agent's state zeroed at its
    episodes' first rows and fed back; every output's rows joined (torch tensors as arrays)."""
    got: dict[str, list[np.ndarray]] = {}
    for t in range(min(len(v) for v in samples.raw.values())):
        for a, first in samples.starts.items():
            if first[t] and a in state:
                state[a][:] = 0
        out, state = step(slice(t, t + 1), state)
        for name, value in out.items():
            got.setdefault(name, []).append(np.asarray(value))
    return {k: np.concatenate(v) for k, v in got.items()}


def graph_outputs(ort_team: OnnxTeam, model: Any, samples: Samples) -> dict[str, np.ndarray]:
    """The graph's outputs on the sampled rows: one run for a memoryless graph; for a recurrent one, one step
    at a time over the sampled episodes (``_over_episodes``)."""
    if not ort_team.recurrent:
        return ort_team.run(graph_feeds(model, samples))
    return _over_episodes(
        lambda rows, state: ort_team.run_step(graph_feeds(model, samples, rows=rows), state),
        ort_team.initial_state(1),
        samples,
    )


def _torch_sequences(team: StudentTeam, samples: Samples) -> dict[str, np.ndarray]:
    """A recurrent student's torch outputs over the same episodes, its state threaded as ``graph_outputs`` does."""
    return _over_episodes(
        lambda rows, state: team.step({a: e[rows] for a, e in samples.encoded.items()}, state),
        team.initial_state(1),
        samples,
    )


def _normalized(logits: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """Log-probabilities over the legal actions (float64)."""
    x = np.where(legal, logits.astype(np.float64), -np.inf)
    top = x.max(axis=1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def action_match(a_out: Mapping[str, np.ndarray], b_out: Mapping[str, np.ndarray], agents: Any) -> dict[str, Any]:
    """Per agent, two graphs' actions on the same rows: the share that coincide (Discrete), or the mean absolute
    difference of the actions (Box)."""
    out: dict[str, Any] = {}
    for agent in agents:
        x, y = a_out[f"action_{agent}"], b_out[f"action_{agent}"]
        if x.dtype.kind == "f":
            out[agent] = {"mean_abs_action_diff": float(np.mean(np.abs(x - y)))}
        else:
            out[agent] = {"action_match": float(np.mean(x == y))}
    return out


def team_model(team: Team, raw: Mapping[str, gym.Space], *, dqn_temperature: float = 0.01) -> Any:
    """The team's fp32 graph."""
    require_export()
    nets, paths, source = team_paths(team, raw)
    extra = {} if isinstance(team, StudentTeam) else {"dqn_temperature_in_lab": dqn_temperature}
    return build_model(nets, paths, source=source, extra=extra)


def quantize_int8(model: Any) -> Any:
    """onnxruntime's dynamic 8-bit quantization of every MatMul weight (per output channel), as a ModelProto.

    Weights are unsigned (``QUInt8``), like the activations: with signed weights onnxruntime's u8s8 kernel on x86
    CPUs without VNNI adds products in pairs into 16 bits, which saturate, so the same graph acted differently
    (and lost return) on such CPUs; u8u8 products are summed exactly on every CPU."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        logging.disable(logging.WARNING)  # its advice to pre-process (shape inference) is for large vision graphs
        try:
            quantize_dynamic(src, dst, weight_type=QuantType.QUInt8, per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
        return onnx.load(dst)


def exported(
    team: Team,
    factory: Callable[[], Any],
    *,
    quantize: str | None = None,
    seed: int = 0,
    rows: int = 256,
    samples: Samples | None = None,
) -> tuple[Any, dict[str, Any]]:
    """(model, report): the team's graph, its fp32 parity checked (refused beyond ``PARITY_TOL``) and, with
    ``quantize``, the quantized graph and its agreement with the fp32 one on the same observations."""
    require_export()
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise UserError(f"--quantize {quantize!r} is not supported; use one of {list(QUANTIZATIONS)}")
    raw = raw_obs_spaces(factory)
    model = team_model(team, raw, dqn_temperature=getattr(team, "dqn_temperature", 0.01))
    samples = samples or sample_observations(factory, rows=rows, seed=seed)  # one sample may serve many teams
    check, fp32_out = parity(team, model, samples, raw)
    if check["excess"] > 0 or min(check["action_match"].values()) < 0.99:
        raise UserError(
            f"ONNX parity failed: |torch - onnxruntime| reached {check['max_abs_diff']:.3g}, beyond {PARITY_TOL:g} + "
            f"{PARITY_REL:g} x |output| by {max(check['excess'], 0.0):.3g}, actions equal {check['action_match']}; "
            "please report this with the run"
        )
    report: dict[str, Any] = {"parity_fp32": check, "precision": "fp32"}
    if quantize == "int8":
        q = quantize_int8(model)
        int8_out = graph_outputs(OnnxTeam(team.spec, q, raw), q, samples)
        report.update(precision="int8", int8_vs_fp32=action_match(int8_out, fp32_out, team.spec.agents))
        model = q
    return model, report


def write_model(model: Any, file: Path, *, check_only: bool = False) -> None:
    """Write ``model`` to ``file`` atomically; a file already there is replaced only if this project exported it
    (a user's own file is never overwritten)."""
    import onnx

    from marl_distill.compress.graph import read_meta
    from marl_distill.utils.files import atomic_write

    file = Path(file)
    if file.exists():
        try:
            ours = file.is_file() and bool(read_meta(onnx.load(file, load_external_data=False)))
        except Exception:  # noqa: BLE001 - any file onnx cannot read is not one of ours
            ours = False
        if not ours:
            raise UserError(f"{file} exists and was not written by marl-distill export; pass another --out")
    if file.suffix != ".onnx":
        raise UserError(f"--out {file} must end in .onnx")
    if not check_only:
        atomic_write(file, lambda tmp: onnx.save(model, tmp), suffix=".onnx")


def onnx_teams(
    factory: Callable[[], Any], teams: Mapping[str, Any], *, int8: bool = False, seed: int = 0
) -> tuple[dict[str, OnnxTeam], dict[str, OnnxTeam], dict[str, str]]:
    """Each exportable team's fp32 graph and (with ``int8``) its int8 graph, both in onnxruntime, by name; and why
    the others were left out (ensembles, teachers the reader cannot read, a failed parity check)."""
    require_export()
    fp32, q8, skipped = {}, {}, {}
    try:
        raw, samples = raw_obs_spaces(factory), sample_observations(factory, seed=seed)
    except UserError as err:  # no observations to check parity on: no team is exported, evaluation goes on
        return fp32, q8, dict.fromkeys(teams, str(err))
    for name, team in teams.items():
        if not isinstance(team, (StudentTeam, TeacherTeam)):
            skipped[name] = f"{type(team).__name__} is not exported"
            continue
        try:
            model, _ = exported(team, factory, seed=seed, samples=samples)
        except UserError as err:
            skipped[name] = str(err)
            continue
        kwargs = {"params": team.acting_params(), "macs": team.acting_macs()}
        tau = getattr(team, "dqn_temperature", 0.01)
        fp32[name] = OnnxTeam(team.spec, model, raw, dqn_temperature=tau, **kwargs)
        if int8:
            q8[name] = OnnxTeam(team.spec, quantize_int8(model), raw, dqn_temperature=tau, **kwargs)
    return fp32, q8, skipped
