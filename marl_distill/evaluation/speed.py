"""Size and speed of a policy's acting path: metrics.json's cost keys, with every policy timed through one runtime.

Teachers' actor MLPs and students run through the same numpy runtime (``marl_distill.policy.numpy_mlp``), so the
headline ``latency_us_per_joint_step`` compares networks; SB3's ``predict`` (conversion, checks and dispatch on every
call) is its own labelled key, ``latency_us_sb3_predict``, never the headline.

Threads: timings run with torch at one thread and numpy's BLAS at one thread (threadpoolctl): numpy's wheels
bundle OpenBLAS, which would thread large products such as the 1,024-row batch across the machine's cores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from marl_distill.policy.joint import RandomPolicy

BATCH = 1024
"""Joint steps acted at once for ``latency_us_batch``."""
WARMUP = 10
"""Untimed calls before timing (first calls allocate and fault in pages)."""


BLAS_ONE_THREAD = "BLAS 1 thread (threadpoolctl)"
"""How timing holds numpy's BLAS to one thread (said in every ``latency_method``)."""


@contextmanager
def one_thread() -> Iterator[str]:
    """torch and numpy's BLAS limited to one thread inside the block; yields how BLAS was limited."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield BLAS_ONE_THREAD
    finally:
        torch.set_num_threads(torch_threads)


def median_us(fn: Callable[[Any], Any], inputs: Sequence[Any], repeats: int, *, per: int = 1) -> float:
    """Median microseconds of ``fn(input)`` over ``repeats`` calls after ``WARMUP`` untimed ones, cycling through
    ``inputs``; divided by ``per`` (e.g. the joint steps in one call)."""
    for r in range(WARMUP):
        fn(inputs[r % len(inputs)])
    samples = np.empty(repeats)
    for r in range(repeats):
        x = inputs[r % len(inputs)]
        start = time.perf_counter()
        fn(x)
        samples[r] = time.perf_counter() - start
    return float(np.median(samples) * 1e6 / per)


def joint_steps(observations: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """One joint observation (one row per agent) per sampled step; agents with no sampled rows are left out."""
    present = {a: np.asarray(o) for a, o in observations.items() if len(o)}
    n = min((len(o) for o in present.values()), default=0)
    return [{a: o[i] for a, o in present.items()} for i in range(n)]


def batch_of(observations: Mapping[str, np.ndarray], size: int = BATCH) -> dict[str, np.ndarray]:
    """``size`` rows per agent, cycling through its sampled observations."""
    return {a: np.asarray(o)[np.arange(size) % len(o)] for a, o in observations.items() if len(o)}


def batch_repeats(repeats: int) -> int:
    """Calls timed at batch ``BATCH``: each is ~1,000 batch-1 calls' work, so a tenth of ``repeats`` (at least 5)."""
    return max(5, math.ceil(repeats / 10))


def cost_metrics(
    policy: object, observations: Mapping[str, np.ndarray], *, repeats: int, onnx: object | None = None
) -> dict[str, Any]:
    """metrics.json's size and speed keys for one policy, each present when the policy supports it.

    Teacher and student teams: ``params``, ``weight_bytes``, ``macs_per_joint_step``, ``acting_runtime``,
    ``latency_us_per_joint_step`` (batch 1, the shared numpy runtime), ``latency_us_batch`` (per joint step at
    batch 1,024) and ``latency_method``; teachers also ``latency_us_sb3_predict``. The random policy: zero size.
    Other policies (mixed teams, ensembles): what they provide, often nothing. ``observations``: real visited
    observations per agent (rows), cycled through. ``onnx``: the policy's exported graph in onnxruntime
    (``compress.runtime.OnnxTeam``; a policy that is one is its own), which adds ``onnx_bytes`` and
    ``latency_us_onnx``: one ``session.run`` per joint step on raw observations prepared before timing. A policy
    that reads its own view out of several (``views.Sliced``) is timed on that view alone."""
    if isinstance(policy, RandomPolicy):
        return {"params": 0, "weight_bytes": 0, "macs_per_joint_step": 0}
    own_view = getattr(policy, "own_view", None)
    if own_view is not None:  # it reads its columns of several views: timed on its own view, as it is deployed
        observations, policy = own_view(observations), policy.inner  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for key, method in (("params", "acting_params"), ("weight_bytes", "weight_bytes"), ("macs", "acting_macs")):
        fn = getattr(policy, method, None)
        if fn is not None:
            value = fn()
            out["macs_per_joint_step" if key == "macs" else key] = None if value is None else int(value)
    if hasattr(policy, "acting_runtime"):
        out["acting_runtime"] = policy.acting_runtime
    steps = joint_steps(observations)
    timed = [
        (key, getattr(policy, method), steps)
        for key, method in (("latency_us_per_joint_step", "act_single"), ("latency_us_sb3_predict", "act_single_sb3"))
        if hasattr(policy, method)
    ]
    onnx = onnx if onnx is not None else (policy if hasattr(policy, "act_single_onnx") else None)
    if onnx is not None:
        out["onnx_bytes"] = int(onnx.onnx_bytes)  # type: ignore[attr-defined]
        prepared = [onnx.prepare_single(step) for step in steps]  # type: ignore[attr-defined]
        timed.append(("latency_us_onnx", onnx.act_single_onnx, prepared))  # type: ignore[attr-defined]
    batch_fn = getattr(policy, "act_batch", None)
    if not steps or not (timed or batch_fn):
        return out
    n_batch = batch_repeats(repeats)
    with one_thread() as blas:
        for key, fn, inputs in timed:
            out[key] = median_us(fn, inputs, repeats)
        if batch_fn is not None:
            out["latency_us_batch"] = median_us(batch_fn, [batch_of(observations)], n_batch, per=BATCH)
    out["latency_method"] = (
        f"median of {repeats} batch-1 joint steps after {WARMUP} warm-up calls, over {len(steps)} visited joint "
        f"observations; batch {BATCH}: median of {n_batch} calls / {BATCH}; CPU, torch 1 thread, {blas}"
    )
    return out


LATENCY_KEYS = ("latency_us_per_joint_step", "latency_us_sb3_predict", "latency_us_batch", "latency_us_onnx")


def timed_rounds(
    policies: Mapping[str, object],
    observations: Mapping[str, np.ndarray],
    *,
    repeats: int,
    rounds: int,
    onnx: Mapping[str, object] | None = None,
) -> list[dict[str, dict[str, Any]]]:
    """``cost_metrics`` of every policy (with its exported graph from ``onnx``, if any), once per round, the order
    rotating each round: one dict per round."""
    names, onnx = list(policies), onnx or {}
    orders = [names[r % len(names) :] + names[: r % len(names)] for r in range(rounds)]
    return [
        {n: cost_metrics(policies[n], observations, repeats=repeats, onnx=onnx.get(n)) for n in order}
        for order in orders
    ]


def _median_ratio(teacher: list[dict[str, Any]], policy: list[dict[str, Any]], key: str) -> float | None:
    """Median over rounds of teacher / policy for ``key``, each ratio from one round."""
    ratios = [t[key] / p[key] for t, p in zip(teacher, policy) if t.get(key) and p.get(key)]
    return float(np.median(ratios)) if ratios else None


def team_costs(
    policies: Mapping[str, object],
    observations: Mapping[str, np.ndarray],
    *,
    repeats: int,
    rounds: int,
    onnx: Mapping[str, object] | None = None,
) -> dict[str, dict[str, Any]]:
    """``cost_metrics`` of every policy, timed in ``rounds`` interleaved rounds (the order rotates each round) so
    that a noisy moment of a shared machine hits every policy alike; each latency is the median over rounds, and
    ``speedup_vs_teacher`` of each other policy is the median over rounds of the ratio teacher / policy measured
    in the same round, where both acted through the same runtime. ``speedup_vs_teacher_onnx``: the same with
    both in onnxruntime (the teachers' fp32 graph against the policy's graph at its own precision)."""
    names = list(policies)
    timed = timed_rounds(policies, observations, repeats=repeats, rounds=rounds, onnx=onnx)
    per_round = {n: [r[n] for r in timed] for n in names}
    out = {}
    for n in names:
        merged = dict(per_round[n][0])
        for key in LATENCY_KEYS:
            values = [m[key] for m in per_round[n] if m.get(key) is not None]
            if values:
                merged[key] = float(np.median(values))
        if "latency_method" in merged:
            merged["latency_method"] += f"; median over {rounds} interleaved rounds"
        out[n] = merged
    teacher = per_round.get("teacher")
    for n in names:
        if n != "teacher" and teacher is not None:
            onnx_ratio = _median_ratio(teacher, per_round[n], "latency_us_onnx")
            if onnx_ratio is not None:
                out[n]["speedup_vs_teacher_onnx"] = onnx_ratio
        if n == "teacher" or teacher is None or out[n].get("latency_us_per_joint_step") is None:
            continue
        if out[n].get("acting_runtime") != out["teacher"].get("acting_runtime"):
            t_rt, s_rt = out["teacher"].get("acting_runtime"), out[n].get("acting_runtime")
            out[n].update(speedup_vs_teacher=None, speedup_note=f"runtimes differ (teacher {t_rt}, {n} {s_rt})")
            continue
        ratio = _median_ratio(teacher, per_round[n], "latency_us_per_joint_step")
        if ratio is not None:
            out[n]["speedup_vs_teacher"] = ratio
    return out
