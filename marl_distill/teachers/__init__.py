"""Per-agent SB3 teachers: trained together on one env, saved as plain SB3 zips, read as a joint policy."""

from marl_distill.teachers.policy import TeacherTeam, acting_params, teacher_logits
from marl_distill.teachers.train import TeacherConfig, TrainResult, train_teachers

__all__ = ["TeacherConfig", "TeacherTeam", "TrainResult", "acting_params", "teacher_logits", "train_teachers"]
