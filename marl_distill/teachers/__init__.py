"""Per-agent SB3 teachers: trained together on one env, saved as plain SB3 zips, read as a joint policy."""

from marl_distill.teachers.config import TeacherConfig
from marl_distill.teachers.team import TeacherTeam, acting_params, teacher_logits
from marl_distill.teachers.train import TrainResult, train_teachers

__all__ = ["TeacherConfig", "TeacherTeam", "TrainResult", "acting_params", "teacher_logits", "train_teachers"]
