"""A second memory task, not built for the GRU: navigation whose landmarks are in view for the first two steps
only. A fixed privileged teacher (it reads the landmarks from the state) is distilled into local GRU and MLP
students at the same budget; the GRU student, which can remember where its landmark was, follows it better."""

from __future__ import annotations

import numpy as np
import torch

from marl_distill.distillation import DistillConfig, distill
from marl_distill.env.registry import resolve
from marl_distill.env.views import Views
from marl_distill.evaluation.rollout import run_episodes

WORLD = {"N": 2, "max_cycles": 14, "glimpse": 2}
HOME = resolve("navigation", WORLD)


class Homing:
    """Agent i steers for landmark i, read from the env's state (positions, velocities, landmarks) beside its own
    observation: a teacher that never needs memory because it is shown what the students saw only at first."""

    deterministic = True

    def __init__(self, spec, local_dim: int, n: int) -> None:
        self.spec, self.local, self.n = spec, local_dim, n

    def logits(self, obs):
        out = {}
        for i, (agent, o) in enumerate(obs.items()):
            state = np.asarray(o)[:, self.local :]
            pos, vel = state[:, 2 * i : 2 * i + 2], state[:, 2 * self.n + 2 * i : 2 * self.n + 2 * i + 2]
            goal = state[:, 4 * self.n + 2 * i : 4 * self.n + 2 * i + 2]
            d = goal - pos - 0.4 * vel  # brake ahead of the goal
            axis = np.abs(d).argmax(axis=1)
            action = 1 + 2 * axis + (d[np.arange(len(d)), axis] > 0)  # left/right (axis 0), down/up (axis 1)
            action[np.abs(d).max(axis=1) < 0.05] = 0
            out[agent] = torch.nn.functional.one_hot(torch.as_tensor(action), 5).float() * 8.0
        return out


def test_gru_students_follow_a_privileged_teacher_where_memory_matters():
    views = Views(HOME, "global", "local")
    local_dim = views.student_spec.obs_dim("agent_0")
    teacher = views.teachers(Homing(views.teacher_spec, local_dim, WORLD["N"]))
    scores = {}
    for arch in ("mlp", "gru"):
        cfg = DistillConfig(students=["shared"], hidden=[32], arch=arch, samples=3000, grad_steps=600, seed=1)
        student = distill(views.play, teacher, cfg, views=views, progress=False)["shared"].student
        played = run_episodes(views.play, views.students(student), episodes=24, n_envs=8, seed=100,
                              rng=np.random.default_rng(0), reference=teacher)  # fmt: skip
        agreement = sum(played.agree.values()) / sum(played.acted.values())
        scores[arch] = (agreement, played.team.mean())
    assert scores["gru"][0] > scores["mlp"][0] + 0.1, scores  # it keeps doing what the teacher does after the glimpse
    assert scores["gru"][1] > scores["mlp"][1] + 5, scores  # and ends the episodes nearer its landmarks
