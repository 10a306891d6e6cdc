"""The vector world in docs/guides/your-env.md, run as written: it passes check-env, and the lab steps its copies in
one call each joint step with the same JointSteps as its one-copy face stepped copy by copy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from marl_distill.cli import cli

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "your-env.md"


def test_the_guides_vector_world_runs_as_written(tmp_path, capsys):
    from marl_distill.env.joint_vec_env import JointVecEnv
    from marl_distill.env.registry import resolve
    from marl_distill.env.vector_world import VectorJointVecEnv, open_joint_vec_env

    code = re.search(r"Save it as `beacon.py`:\n\n```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert code is not None, "the guide's beacon.py block moved"
    path = tmp_path / "beacon.py"
    path.write_text(code.group(1))
    assert cli(["check-env", f"{path}:Beacon"]) == 0, capsys.readouterr().err
    factory = resolve(f"{path}:Beacon", {"N": 3, "max_cycles": 5})
    fast, slow = open_joint_vec_env(factory, 6), JointVecEnv(factory, 6)
    assert isinstance(fast, VectorJointVecEnv)
    seeds = list(range(6))
    first = fast.reset(seeds), slow.reset(seeds)
    for a in fast.agents:
        np.testing.assert_array_equal(first[0][a], first[1][a])
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(12):  # past two episode ends: auto-resets continue each copy's own stream
        actions = {a: rng.integers(4, size=6) for a in fast.agents}
        one, other = fast.step(actions), slow.step(actions)
        ended += int(one.done.sum())
        np.testing.assert_array_equal(one.done, other.done)
        for a in fast.agents:
            np.testing.assert_array_equal(one.obs[a], other.obs[a])
            np.testing.assert_array_equal(one.rewards[a], other.rewards[a])
    assert ended == 12  # every copy ended twice
