"""The distillation settings (``[distill]`` in a config): students, loss, sampling scheme and the budget every
scheme shares, with the arithmetic that splits that budget over a scheme's rounds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from marl_distill.distillation.losses import LOSSES
from marl_distill.distillation.schedule import SCHEDULES, BetaSchedule, betas
from marl_distill.errors import UserError
from marl_distill.students import KINDS
from marl_distill.students.recurrent import ARCHS

SAMPLINGS = ("teacher", "student", "mixed")
AUTO = "auto"
"""Sampling chosen by the views: teacher-driven when teachers and students see the same, student-driven if not."""


@dataclass
class DistillConfig:
    """How students are distilled from the teachers."""

    students: list[str] = field(default_factory=lambda: ["shared", "per-agent"])
    """Which students to build: shared (one net, agent id input) and/or per-agent."""
    hidden: list[int] = field(default_factory=lambda: [32])
    """Hidden layer widths of the students (with arch gru, the last width is the GRU cell's size)."""
    arch: str = "mlp"
    """mlp (memoryless) or gru (a recurrent student: tanh layers for all widths of hidden but the last, then a GRU
    cell of the last width, then the head; its state starts at zero each episode, one per agent)."""
    seq_len: int = 16
    """arch gru: steps of one episode per training sequence (truncated back-propagation through time)."""
    burn_in: int = 8
    """arch gru: steps before each sequence replayed without gradients from the state stored when they were
    collected, so a sequence starts from the current weights' own state (0: start from the stored state)."""
    loss: str = "kl"
    """kl (soft targets with temperature), ce (teacher argmax) or mse (logits; DQN teachers: raw Q-values)."""
    temperature: float = 1.0
    """kl loss: teacher and student logits are both divided by T before the softmax (T > 1 flattens both, so the
    student also learns the teacher's preferences among its non-best actions; 1 leaves them as they are), and the
    loss is multiplied by T^2 so its gradients keep their scale (Hinton et al. 2015); 1 to 4 are usual."""
    alpha: float = 1.0
    """With loss kl: weight of the soft KL term; 1 - alpha goes to cross-entropy on the teacher's argmax."""
    sampling: str = AUTO
    """Who acts while data is collected: teacher, student (multi-agent DAgger), mixed (beta schedule) or auto
    (teacher when students see what teachers see; student when views differ, so students are fitted on the states
    their own partial view leads them to, where teacher-visited states would be out of their distribution)."""
    student_view: str = "local"
    """What students observe and act on: local, global, history:K or 'package.module:callable' (see
    teachers.view)."""
    iterations: int = 4
    """Collect-then-fit rounds for student and mixed sampling (teacher sampling collects once); the labelled
    states and gradient steps are split evenly over them, so the budget does not grow with the rounds."""
    beta_schedule: str = "exponential"
    """Mixed sampling: exponential (beta0 * decay^k), linear (to 0) or constant."""
    beta0: float = 1.0
    """Mixed sampling: probability that the teachers take a joint step in the first iteration."""
    beta_decay: float = 0.5
    """Mixed sampling, exponential schedule: ratio between successive betas."""
    buffer_size: int = 100_000
    """Most states per agent kept across iterations (a uniform reservoir sample of everything collected)."""
    patience: int = 0
    """Stop a round after this many epoch-sized chunks without a lower held-out loss (0: never, spend the whole
    budget, which keeps budgets equal; the best chunk's weights are kept either way). Loss, not agreement: it is
    smooth and sees the whole distribution, while agreement saturates early. Off when holdout is 0."""
    sample_actions: bool = True
    """The acting team samples from its distribution while collecting (wider coverage) rather than argmax."""
    samples: int = 20_000
    """Teacher-labelled states per agent in all, the same for every sampling scheme (split evenly over the rounds)."""
    n_envs: int = 8
    """Env copies stepped together while collecting."""
    epochs: int = 40
    """The gradient-step budget in epochs of the teacher-driven scheme when grad_steps is 0 (see epoch_steps)."""
    grad_steps: int = 0
    """Gradient steps in all, the same for every sampling scheme, split evenly over the rounds (0: epochs x
    epoch_steps(), so the budget does not depend on the scheme)."""
    batch_size: int = 256
    """Minibatch size per agent."""
    lr: float = 3e-3
    """Adam learning rate."""
    holdout: float = 0.1
    """Fraction of each round's states held out, as whole episodes, to score the student and pick its best chunk
    (0: no held-out set, no early stopping; the final weights are the last ones)."""
    dqn_temperature: float = 0.01
    """DQN teachers' distribution is softmax(Q / dqn_temperature)."""
    init_from_teacher: bool = False
    """Per-agent students start as copies of their PPO teachers' actors (needs hidden = the teachers' net_arch)."""
    seed: int = 0
    """The seed of the students' initialisation and minibatch order (distill branch) and of the states they learn
    from: the teacher-driven states the run's students share (labels branch) or a student's own collection and
    held-out split; unset in a config (in Python: left at 0), it is the run's seed."""

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise UserError(f"unknown distill.arch {self.arch!r}; use one of {list(ARCHS)}")
        if isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int) or self.seq_len < 1:
            raise UserError(f"distill.seq_len must be an integer >= 1 (steps per sequence), got {self.seq_len}")
        if isinstance(self.burn_in, bool) or not isinstance(self.burn_in, int) or self.burn_in < 0:
            raise UserError(f"distill.burn_in must be an integer >= 0, got {self.burn_in}")
        if self.init_from_teacher and self.arch != "mlp":
            raise UserError(
                f"distill.init_from_teacher copies MLP teacher actors into MLP students; a {self.arch} student starts "
                "fresh: set init_from_teacher = false, or arch = 'mlp'"
            )
        if self.init_from_teacher and "shared" in self.students:
            raise UserError('distill.init_from_teacher applies to per-agent students; set students = ["per-agent"]')
        for kind in self.students:
            if kind not in KINDS:
                raise UserError(f"unknown student {kind!r}; use one of {list(KINDS)}")
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}; use one of {list(LOSSES)}")
        if self.sampling not in (*SAMPLINGS, AUTO):
            raise UserError(f"sampling {self.sampling!r} is not available yet; use one of {[*SAMPLINGS, AUTO]}")
        if self.temperature <= 0 or self.lr <= 0 or self.samples < 1 or self.epochs < 1 or self.batch_size < 1:
            raise UserError("distill temperature, lr, samples, epochs and batch_size must be positive")
        if self.grad_steps < 0:
            raise UserError(f"distill.grad_steps must be >= 0 (0: epochs x epoch_steps), got {self.grad_steps}")
        if not 0 <= self.holdout < 1:
            raise UserError(f"distill.holdout must lie in [0, 1), got {self.holdout}")
        if not 0 <= self.alpha <= 1:
            raise UserError(f"distill.alpha must lie in [0, 1], got {self.alpha}")
        if self.iterations < 1 or self.buffer_size < 1 or self.patience < 0:
            raise UserError("distill.iterations and buffer_size must be >= 1, patience >= 0")
        if self.beta_schedule not in SCHEDULES or not (0 <= self.beta0 <= 1 and 0 <= self.beta_decay <= 1):
            raise UserError(f"beta_schedule must be one of {list(SCHEDULES)}, with beta0 and beta_decay in [0, 1]")
        rounds = len(self.schedule())
        if self.samples < rounds or self.total_grad_steps() < rounds:
            raise UserError(
                f"{self.sampling} sampling runs {rounds} rounds: distill.samples ({self.samples}) and the gradient "
                f"steps ({self.total_grad_steps()}) must give each round at least one"
            )

    def resolved(self, same_view: bool) -> DistillConfig:
        """This config with ``auto`` sampling decided: teacher when teachers and students share a view, else
        student."""
        if self.sampling != AUTO:
            return self
        return replace(self, sampling="teacher" if same_view else "student")

    def schedule(self) -> list[float]:
        """Beta of each round (1 = teachers act): one round for teacher sampling (and auto, whose budget checks
        assume it), ``iterations`` otherwise."""
        sampling = "teacher" if self.sampling == AUTO else self.sampling
        n = 1 if sampling == "teacher" else self.iterations
        return betas(sampling, BetaSchedule(self.beta_schedule, self.beta0, self.beta_decay), n)

    def epoch_steps(self) -> int:
        """Gradient steps of one epoch of the teacher-driven scheme: its training rows (``samples`` less the
        held-out share, at most ``buffer_size``) over ``batch_size``. The unit of the budget and of history rows,
        the same for every scheme."""
        rows = min(self.buffer_size, max(1, math.ceil(self.samples * (1 - self.holdout))))
        return math.ceil(rows / self.batch_size)

    def total_grad_steps(self) -> int:
        """Gradient steps in all, for every sampling scheme: ``grad_steps``, or ``epochs`` x ``epoch_steps``."""
        return self.grad_steps or self.epochs * self.epoch_steps()

    def round_grad_steps(self) -> list[int]:
        """Each round's share of ``total_grad_steps`` (even, the remainder to the first rounds)."""
        return even_split(self.total_grad_steps(), len(self.schedule()))

    def round_samples(self) -> list[int]:
        """Each round's share of ``samples`` (even, the remainder to the first rounds)."""
        return even_split(self.samples, len(self.schedule()))


def even_split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` integers that differ by at most one and sum to ``total``."""
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]
