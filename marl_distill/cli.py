"""The ``marl-distill`` command: thin, it parses, calls the runner, prints.

Bad input of any kind (a click usage error or our ``UserError``) ends with exit code 2 and one line on stderr;
an internal failure keeps its traceback and exits 1.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import signal
import sys
import traceback
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from marl_distill import config as config_mod
from marl_distill.distillation.config import AUTO, SAMPLINGS
from marl_distill.distillation.losses import LOSSES
from marl_distill.errors import RunFailed, UserError
from marl_distill.evaluation.report import summary_lines
from marl_distill.pipeline import api
from marl_distill.students.mlp import KINDS
from marl_distill.students.recurrent import ARCHS
from marl_distill.teachers.config import ALGOS, TeacherConfig
from marl_distill.utils.disk_full import disk_full_line, is_disk_full, quiet_full_disk_threads

app = typer.Typer(
    help="Distill per-agent SB3 teachers of a PettingZoo env into compact shared or per-agent students.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: rich's boxes cut long option names at 80 columns
)


_ARGV: list[str] = []
"""The command's arguments, to repeat them in a how-to-continue line."""
_ON_INTERRUPT: list[str] = []
"""What to tell a user whose command was stopped (Ctrl-C, SIGTERM): how to go on, where the command knows."""


def _choices(name: str, values: Any) -> Any:
    """A str Enum for typer, made from the tuple the lab itself validates against (one list of choices)."""
    return Enum(name, {v: v for v in values}, type=str)


Algo = _choices("Algo", ALGOS)
StudentKind = _choices("StudentKind", KINDS)
StudentArch = _choices("StudentArch", ARCHS)
Loss = _choices("Loss", LOSSES)
Sampling = _choices("Sampling", (*SAMPLINGS, AUTO))


def _json_kwargs(text: str | None, option: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{option} is not valid JSON ({exc.msg}); write e.g. {option} '{{\"N\": 3}}'") from None
    if not isinstance(value, dict):
        raise UserError(f"{option} must be a JSON object, e.g. '{{\"N\": 3}}'")
    return value


def _workers(n: int) -> int | None:
    """--workers: None (one per usable core) for 0; the same results whatever the number (seeded per job)."""
    if n < 0:
        raise UserError(f"--workers {n} is negative; pass 1 for one process, or 0 for one per CPU core")
    return n or None


def _agent_algos(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        agent, sep, algo = item.partition("=")
        if not sep or algo not in ALGOS:
            raise UserError(f"--agent-algo {item!r} is not AGENT=ALGO with ALGO one of {list(ALGOS)}")
        out[agent] = algo
    return out


def _print_summary(metrics: dict[str, Any], run_dir: Path) -> None:
    for line in summary_lines(metrics):
        typer.echo(line)
    typer.echo(f"report: {run_dir / 'report.md'}")


@app.command()
def config(benchmark: Annotated[bool, typer.Option(help="The keys of a benchmark TOML instead.")] = False) -> None:
    """Print every experiment config key with its default and its one-line doc, as TOML to copy from."""
    if benchmark:
        from marl_distill.pipeline.config import documented_benchmark

        typer.echo(documented_benchmark(), nl=False)
        return
    typer.echo(config_mod.documented_defaults(), nl=False)


@app.command()
def envs() -> None:
    """List registered environments: id, api, source, and every agent's observation and action spaces (one line
    for all agents where they share them)."""
    from marl_distill.env.checker import describe_envs

    for line in describe_envs():
        typer.echo(line)


@app.command("check-env")
def check_env(
    env: Annotated[str, typer.Argument(help="Registered id, package.module:callable or file.py:callable.")],
    env_kwargs: Annotated[str, typer.Option(help="JSON object of env factory arguments.")] = "",
    episodes: Annotated[int, typer.Option(help="Random episodes to play.")] = 3,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Validate an env: PettingZoo's API and seed tests, then observations in their spaces, finite rewards,
    action masks and agents that leave. Exit 2 with the first violation."""
    from marl_distill.env.checker import check_env as run_check
    from marl_distill.env.joint_vec_env import call_factory
    from marl_distill.env.registry import resolve

    factory = resolve(env, _json_kwargs(env_kwargs, "--env-kwargs"))
    call_factory(factory)
    typer.echo(run_check(factory, episodes=episodes, seed=seed).summary())


@app.command("train-teachers")
def train_teachers(
    env: Annotated[str, typer.Argument(help="Registered id, package.module:callable or file.py:callable.")],
    out: Annotated[Path, typer.Option(help="Run folder to create.")],
    algo: Annotated[Algo, typer.Option(help="SB3 algorithm for every agent.")] = Algo.ppo,
    agent_algo: Annotated[list[str], typer.Option(help="Per-agent override AGENT=ppo|dqn|maskable_ppo.")] = [],  # noqa: B006
    steps: Annotated[int, typer.Option(help="Transitions each learner learns from.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Run seed: root of every seed of the run (learners, env copies).")] = 0,
    n_envs: Annotated[int, typer.Option(help="Env copies stepped together.")] = 8,
    env_kwargs: Annotated[str, typer.Option(help="JSON object of env factory arguments.")] = "",
    ppo_kwargs: Annotated[str, typer.Option(help="JSON object of PPO arguments, e.g. '{\"n_steps\": 64}'.")] = "",
    dqn_kwargs: Annotated[str, typer.Option(help="JSON object of DQN arguments.")] = "",
    view: Annotated[
        str,
        typer.Option(
            help="What teachers observe: local, global (observation + state()), history:K or module:callable."
        ),
    ] = "local",
    checkpoint_every: Annotated[
        int, typer.Option(help="Transitions per learner between checkpoints (0: a tenth of --steps; -1: none).")
    ] = 0,
    resume: Annotated[
        bool, typer.Option(help="Continue interrupted training in OUT from its last checkpoint.")
    ] = False,
) -> None:
    """Train one SB3 learner per agent, all together, into OUT/teachers/AGENT.zip."""
    teachers = dataclasses.replace(
        TeacherConfig(),
        algo=algo.value,
        agent_algo=_agent_algos(agent_algo),
        steps=steps,
        n_envs=n_envs,
        ppo=_json_kwargs(ppo_kwargs, "--ppo-kwargs"),
        dqn=_json_kwargs(dqn_kwargs, "--dqn-kwargs"),
        checkpoint_every=checkpoint_every,
        view=view,
    )
    again = [a for a in _ARGV if a != "--resume"]
    _ON_INTERRUPT.append(f"the last checkpoint is kept; continue with: {shlex.join(['marl-distill', *again])} --resume")
    # the env and every setting are checked before anything is written
    api.train_teachers(env, out=out, teachers=teachers, env_kwargs=_json_kwargs(env_kwargs, "--env-kwargs"),
                       seed=seed, resume=resume)  # fmt: skip
    typer.echo(f"teachers saved in {out / 'teachers'}")


@app.command()
def distill(
    run_dir: Annotated[Path, typer.Argument(help="Run folder holding teachers/.")],
    out: Annotated[Path, typer.Option(help="Folder for the students (may be RUN_DIR itself).")],
    student: Annotated[StudentKind, typer.Option(help="Student kind.")] = StudentKind.shared,
    name: Annotated[str | None, typer.Option(help="Folder name under OUT/students (default: the kind).")] = None,
    hidden: Annotated[str | None, typer.Option(help="Hidden sizes, e.g. 32,32.")] = None,
    student_arch: Annotated[
        StudentArch | None, typer.Option(help="mlp, or gru: a recurrent student (the last hidden size is the GRU's).")
    ] = None,
    seq_len: Annotated[int | None, typer.Option(help="gru: steps per training sequence.")] = None,
    loss: Annotated[Loss | None, typer.Option()] = None,
    temperature: Annotated[float | None, typer.Option(help="KL softening temperature.")] = None,
    alpha: Annotated[float | None, typer.Option(help="kl loss: weight of soft KL vs hard cross-entropy.")] = None,
    sampling: Annotated[
        Sampling | None, typer.Option(help="Who acts while data is collected (auto: student when the views differ).")
    ] = None,
    student_view: Annotated[
        str | None, typer.Option(help="What the student observes: local, global, history:K or module:callable.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="States collected per agent.")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Gradient-step budget in epochs of teacher-driven sampling (every scheme).")
    ] = None,
    grad_steps: Annotated[int | None, typer.Option(help="Gradient steps in all (0: --epochs decides).")] = None,
    init_from_teacher: Annotated[
        bool | None, typer.Option(help="per-agent: start from the PPO teachers' actors (--hidden = their sizes).")
    ] = None,
    extra_teachers: Annotated[
        list[Path], typer.Option(help="Another run folder whose teachers are averaged in (repeatable).")
    ] = [],  # noqa: B006
) -> None:
    """Distill the teachers of RUN_DIR into a student saved in OUT/students/NAME. Every setting not given is the
    run's own (its distill table in RUN_DIR/config.toml); one that differs is written into the student's record
    and report."""
    try:
        hidden_sizes = None if hidden is None else [int(h) for h in hidden.split(",") if h.strip()]
    except ValueError:
        raise UserError(f"--hidden {hidden!r} is not a comma-separated list of integers, e.g. 32,32") from None
    given = {
        "hidden": hidden_sizes,
        "arch": student_arch and student_arch.value,
        "seq_len": seq_len,
        "loss": loss and loss.value,
        "temperature": temperature,
        "alpha": alpha,
        "sampling": sampling and sampling.value,
        "samples": steps,
        "epochs": epochs,
        "grad_steps": grad_steps,
        "init_from_teacher": init_from_teacher,
        "student_view": student_view,
    }
    settings = {k: v for k, v in given.items() if v is not None}
    folder, changed = api.distill(
        run_dir, out=out, student=student.value, name=name, extra_teachers=extra_teachers, **settings
    )
    typer.echo(f"student saved in {folder}")
    if changed:
        typer.echo(f"settings other than the run's (recorded with the student): {'; '.join(changed)}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run folder with teachers and/or students.")],
    episodes: Annotated[
        int | None,
        typer.Option(help="Episodes per policy (default: the run's own); mixed teams play as many at most."),
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write metrics to this file.")] = None,
    workers: Annotated[int, typer.Option(help="Processes that play episodes side by side (0: one per core).")] = 0,
    set_: Annotated[
        list[str], typer.Option("--set", help="Override an evaluate.* key or env.cooperative: key=value.")
    ] = [],  # noqa: B006
) -> None:
    """Evaluate teachers, random and every student of RUN_DIR with the run's own settings (its evaluate table in
    config.toml); write metrics.json and report.md, which say so where a flag changed them."""
    if json_file is not None and (json_file.is_dir() or not json_file.parent.is_dir()):
        raise UserError(f"--json {json_file} must be a file path in an existing folder")
    metrics = api.evaluate(run_dir, episodes=episodes, overrides=set_, workers=_workers(workers))
    if json_file is not None:
        from marl_distill.utils.files import write_json

        write_json(json_file, metrics)
    _print_summary(metrics, run_dir)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment TOML, e.g. experiments/quickstart.toml.")],
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/ + the TOML's file name).")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a config key: key=value.")] = [],  # noqa: B006
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in OUT.")] = False,
    workers: Annotated[
        int, typer.Option(help="Processes that distill students and play episodes side by side (0: one per core).")
    ] = 0,
) -> None:
    """Run the whole pipeline: teachers -> students -> metrics -> report."""
    run_dir = out or Path("runs") / config.stem
    again = shlex.join(["marl-distill", "run", str(config), *(f"--set={x}" for x in set_), "--out", str(run_dir)])
    _ON_INTERRUPT.append(f"finished stages and the last teacher checkpoint are kept; continue with: {again} --resume")
    metrics = api.run(config, out=run_dir, overrides=set_, resume=resume, workers=_workers(workers))
    _print_summary(metrics, run_dir)


@app.command()
def benchmark(
    config: Annotated[Path, typer.Argument(help="Benchmark TOML, e.g. experiments/benchmark.toml.")],
    out: Annotated[Path | None, typer.Option(help="Benchmark folder (default runs/ + the TOML's file name).")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a benchmark key: key=value.")] = [],  # noqa: B006
    ray_address: Annotated[
        str | None, typer.Option(help="Run the grid on this Ray cluster ('auto', 'ray://HOST:10001').")
    ] = None,
) -> None:
    """Run a grid of tasks x student settings x seeds (finished runs are reused) into one report."""
    folder = out or Path("runs") / config.stem
    sets = [word for s in set_ for word in ("--set", s)]
    command = shlex.join(["marl-distill", "benchmark", config.as_posix(), "--out", folder.as_posix(), *sets])
    keep = "finished runs and the checkpoints of cut-off runs are kept"
    _ON_INTERRUPT.append(f"{keep}; the same command with --out {shlex.quote(str(folder))} continues")
    log = lambda line: typer.echo(line, err=True)  # noqa: E731
    summary = api.benchmark(config, out=folder, overrides=set_, ray_address=ray_address, log=log, command=command)
    from marl_distill.evaluation.summary import headline

    for line in headline(summary):
        typer.echo(line)
    typer.echo(f"report: {folder / 'report.md'}")


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="A student folder (RUN/students/NAME) or a run folder (all of it).")],
    format_: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    quantize: Annotated[str | None, typer.Option(help="Also quantize the graph: int8 (onnxruntime dynamic).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output .onnx file (student folder) or folder (run folder).")] = None,
) -> None:
    """Export students (and a run's teachers) to one ONNX graph per team: raw observations in, actions out, with
    parity against torch checked on real observations (exit 2 beyond 1e-5)."""
    if format_ != "onnx":
        raise UserError(f"--format {format_!r} is not supported; use --format onnx")
    from marl_distill.pipeline.export_run import describe

    for rec in api.export(path, quantize=quantize, out=out):
        typer.echo(describe(rec))


def _is_usage_error(exc: BaseException) -> bool:
    return getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message")


def cli(argv: list[str] | None = None) -> int:
    """Run the app on ``argv``; one line and 2 for bad input, traceback and 1 for internal failures."""
    command = typer.main.get_command(app)
    _ON_INTERRUPT.clear()
    _ARGV[:] = sys.argv[1:] if argv is None else argv
    try:
        result = command.main(args=argv, prog_name="marl-distill", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == 130:  # typer turns Ctrl-C inside a command into this exit code, silently
            typer.echo(_interrupted(), err=True)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        code = 2
    except RunFailed as exc:  # not the user's input: a worker killed, out of memory
        typer.echo(f"error: {exc}" + (f"; {_ON_INTERRUPT[-1]}" if _ON_INTERRUPT else ""), err=True)
        code = 1
    except (typer.Abort, KeyboardInterrupt):
        typer.echo(_interrupted(), err=True)
        code = 130
    except Exception as exc:  # noqa: BLE001
        if _is_usage_error(exc):  # typer's own parser errors (it vendors click): exit 2, one line
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = exc.format_message().strip()  # type: ignore[attr-defined]
            if message:  # a bare "marl-distill" has printed its help already
                typer.echo(f"error: {message}{hint}", err=True)
            code = 2
        elif type(exc).__name__ == "Abort":
            typer.echo(_interrupted(), err=True)
            code = 130
        elif is_disk_full(exc):  # a write outside a run folder's guard (e.g. --json): still one line
            name = getattr(exc, "filename", None)
            typer.echo(f"error: {disk_full_line(Path(name).parent if name else Path.cwd())}", err=True)
            code = 1
        else:  # an internal failure: keep the traceback for the bug report
            traceback.print_exc()
            code = 1
    return code


def _interrupted() -> str:
    return "interrupted" + (f"; {_ON_INTERRUPT[-1]}" if _ON_INTERRUPT else "")


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a command the way Ctrl-C does: workers stopped, one line, exit 130


def _warning_line(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> str:
    """A warning on the command line is one line that says what happened, not our source file and line."""
    return f"warning: {message}\n"


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _stop)
    warnings.formatwarning = _warning_line
    quiet_full_disk_threads()
    sys.exit(cli())


if __name__ == "__main__":
    main()
