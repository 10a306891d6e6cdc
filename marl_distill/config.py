"""Experiment config: TOML -> typed dataclasses, with errors that name the key and the fix.

Each stage owns its dataclass (``TeacherConfig``, ``DistillConfig``, ``EvalConfig``); this module only composes
them, loads TOML, applies ``--set key=value`` overrides and writes the resolved config back out.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from marl_distill.distillation import DistillConfig
from marl_distill.env.registry import anchored, stored
from marl_distill.env.views import check_view
from marl_distill.errors import UserError
from marl_distill.evaluation import EvalConfig
from marl_distill.teachers import TeacherConfig
from marl_distill.utils.files import write_text


@dataclass
class EnvConfig:
    """Which environment, and its arguments."""

    id: str = "simple_spread"
    """A registered id (marl-distill envs), a 'package.module:callable' spec or a 'path/to/file.py:callable' one."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the env factory (override the registered defaults). ``--set env.kwargs.N=4`` sets one;
    ``--set 'env.kwargs={max_cycles=25}'`` replaces the whole table (e.g. with env.id, for another env)."""
    cooperative: bool | str = "auto"
    """Do the agents share one goal? true: the team return is the headline; false: per-seat figures (zero-sum or
    mixed games); auto: as the env declares (metadata["cooperative"]), else true only if every agent's return is
    identical."""


@dataclass
class ExperimentConfig:
    """One whole run: env -> teachers -> students -> metrics -> report."""

    name: str = "experiment"
    """Shown in the report's title."""
    seed: int = 0
    """Run seed: the root of the run's one SeedSequence tree (stage, agent, copy); it is every stage's seed unless
    that stage's own ``seed`` is set (e.g. to distill again from the same teachers with another seed). In Python, an
    ExperimentConfig's stage seed left at 0 follows it when the config is run."""
    torch_threads: int = 1
    """CPU threads torch uses for distillation and evaluation (teachers.torch_threads: per learner process)."""
    teachers_from: str = ""
    """Run folder whose teachers/ this run distills (empty: train this run's own teachers)."""
    extra_teachers: list[str] = field(default_factory=list)
    """More run folders (e.g. other seeds) whose teachers are averaged with these when distilling; every student
    is then also scored against each of them (metrics: by_teacher)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    teachers: TeacherConfig = field(default_factory=TeacherConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Coerce what means the same: ints where floats are expected, integral floats (``5e4``) where ints are, and
    one item where a list is expected (``hidden = 16`` is ``[16]``); refuse anything else that does not fit."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(hint):
            try:
                return _check_type(value, option, where)
            except UserError:
                continue
        raise UserError(f"{where} = {value!r} has the wrong type; expected {hint}")
    base = origin or hint
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if base is list and not isinstance(value, (list, dict)):
        (item,) = typing.get_args(hint) or (Any,)
        return [_check_type(value, item, f"{where}[0]")]
    if base is Any or (
        isinstance(base, type) and isinstance(value, base) and not (base is int and isinstance(value, bool))
    ):
        if base is list:
            (item,) = typing.get_args(hint) or (Any,)
            return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return value
    if value is None and hint is type(None):
        return None
    name = getattr(base, "__name__", str(base))
    raise UserError(f"{where} = {value!r} has the wrong type; expected {name}")


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a dict, refusing unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise UserError(f"[{where or 'root'}] must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f"did you mean {prefix}{close[0]}?" if close else f"known keys here: {sorted(names)}"
        raise UserError(f"unknown config key {prefix}{unknown[0]}; {hint}")
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, path)
        else:
            kwargs[key] = _check_type(value, hint, path)
    return cls(**kwargs)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value); the value is read as TOML, else taken as a string."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {item!r} is not key=value; write e.g. --set teachers.steps=20000")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def read_toml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass the path of a TOML file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML ({exc})") from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base`` table by table (nested tables merge; any other value replaces)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load(path: Path | None, overrides: list[str] | None = None, *, run_folder: bool = False) -> ExperimentConfig:
    """Read a TOML file (or start from defaults), apply overrides, validate. A relative env file path is read
    against the working folder, then the TOML's folder; a run folder's config.toml (``run_folder``) keeps it
    relative to the run folder, so that folder comes first."""
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    base = Path(path).parent if path is not None else None
    return build(apply_overrides(data, overrides or []), base=base, run_folder=run_folder)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Each ``--set a.b=value`` written into ``data`` (in place; also returned)."""
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r}: {k} is not a table")
        node[keys[-1]] = value
    return data


SEEDED_STAGES = ("teachers", "distill", "evaluate")
"""Config tables whose ``seed`` defaults to the run seed."""


def from_python(cfg: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """An ExperimentConfig built in Python, as run: its stage seeds left at 0 follow its run seed (as stage seeds a
    TOML leaves out do), so ``ExperimentConfig(seed=3)`` and ``dataclasses.replace(cfg, seed=s)`` seed every stage;
    ``overrides`` (``key=value``) come after, so ``teachers.seed=0`` there pins a stage to 0."""
    data = to_dict(cfg)
    for stage in SEEDED_STAGES:
        if data.get(stage, {}).get("seed") == 0:
            del data[stage]["seed"]
    return build(apply_overrides(data, overrides))


def build(data: dict[str, Any], base: Path | None = None, *, run_folder: bool = False) -> ExperimentConfig:
    """A validated ExperimentConfig from a (possibly partial) dict; stage seeds not given take the run seed, and an
    env given by file path gets an absolute one (found against ``base``, else the working folder)."""
    data = dict(data)
    env = data.get("env")
    if isinstance(env, dict) and isinstance(env.get("id"), str):
        data["env"] = {**env, "id": anchored(env["id"], base, run_folder=run_folder)}
    run_seed = data.get("seed", 0)
    for stage in SEEDED_STAGES:
        table = data.get(stage, {})
        if isinstance(table, dict) and "seed" not in table:
            data[stage] = {**table, "seed": run_seed}
    cfg = from_dict(ExperimentConfig, data)
    validate(cfg)
    return cfg


def validate(cfg: ExperimentConfig) -> None:
    for where, seed in [("seed", cfg.seed), *((f"{s}.seed", getattr(cfg, s).seed) for s in SEEDED_STAGES)]:
        if seed < 0:
            raise UserError(f"{where} must be a non-negative integer, got {seed}")
    if isinstance(cfg.env.cooperative, str) and cfg.env.cooperative != "auto":
        raise UserError(f'env.cooperative = {cfg.env.cooperative!r}; use true, false or "auto"')
    if cfg.torch_threads < 1:
        raise UserError(f"torch_threads must be >= 1, got {cfg.torch_threads}")
    check_view(cfg.teachers.view, "teachers.view")
    check_view(cfg.distill.student_view, "distill.student_view")
    cfg.distill.validate()
    cfg.evaluate.validate()


def differences(a: dict[str, Any], b: dict[str, Any], where: str = "") -> list[str]:
    """The dotted keys whose values differ between two config dicts, each as ``key: A -> B``."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        path = f"{where}.{key}" if where else str(key)
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out.extend(differences(x, y, path))
        elif x != y:
            out.append(f"{path}: {x!r} -> {y!r}")
    return out


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def comparable(data: dict[str, Any], teacher_view: str | None = None) -> dict[str, Any]:
    """A resolved config dict with ``distill.sampling = "auto"`` decided as the stage decides it for the views
    (``teacher_view``: that of borrowed teachers, else the config's), so a run folder written before ``auto``
    existed (with ``sampling = "teacher"``) still resumes under a config that leaves sampling at its default."""
    distill = data.get("distill", {})
    if distill.get("sampling") != "auto":
        return data
    teachers = teacher_view or data.get("teachers", {}).get("view", "local")
    same = teachers == distill.get("student_view", "local")
    return {**data, "distill": {**distill, "sampling": "teacher" if same else "student"}}


def save(cfg: ExperimentConfig, path: Path) -> None:
    """The resolved config with every default written out; an env file path relative to the file's folder."""
    data = to_dict(cfg)
    data["env"]["id"] = stored(data["env"]["id"], Path(path).parent)
    write_text(path, tomli_w.dumps(data))


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal right under it in the class body), read from the source."""
    import ast
    import inspect
    import textwrap

    try:
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body  # type: ignore[attr-defined]
    except (OSError, TypeError, IndexError):  # no source (e.g. a frozen install): no comments
        return {}
    docs = {}
    for node, after in zip(body, body[1:]):
        literal = after.value if isinstance(after, ast.Expr) else None
        is_doc = isinstance(literal, ast.Constant) and isinstance(literal.value, str)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
            docs[node.target.id] = " ".join(after.value.value.split())  # type: ignore[attr-defined]
    return docs


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        bare = lambda k: k.isascii() and k.replace("_", "").replace("-", "").isalnum()  # noqa: E731
        items = [f"{k if bare(k) else json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"no TOML form for {value!r}")


def documented_table(cls: type, obj: Any, path: str, lines: list[str], tables: tuple[str, ...] = ()) -> None:
    """Append ``obj``'s keys to ``lines`` as TOML under ``[path]``, each under its one-line doc as a comment;
    nested dataclasses follow as their own tables. ``tables``: fields written as a commented table header
    (``[name]`` or ``[[name]]`` for a list), their doc saying what goes in them."""
    import textwrap

    docs = field_docs(cls)
    nested = []
    if path:
        lines.extend(["", f"[{path}]"])
        lines.extend(f"# {chunk}" for chunk in textwrap.wrap(" ".join((cls.__doc__ or "").split()), 110))
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            nested.append((f.name, value))
            continue
        if f.name in tables:
            header = f"[[{f.name}]]" if isinstance(value, list) else f"[{f.name}]"
            lines.append("")
            if not docs.get(f.name, "").startswith(header):
                lines.append(f"# {header}")
            lines.extend(f"# {chunk}" for chunk in textwrap.wrap(docs.get(f.name, ""), 110))
            continue
        lines.extend(f"# {chunk}" for chunk in textwrap.wrap(docs.get(f.name, ""), 110))
        if path in SEEDED_STAGES and f.name == "seed":  # unset, a stage follows the run seed: keep it so
            lines.append(f"# seed = {_toml_value(value)}  (unset: the run seed above)")
            continue
        lines.append(f"{f.name} = {_toml_value(value)}")
    for name, value in nested:
        documented_table(type(value), value, f"{path}.{name}" if path else name, lines)


def documented_defaults() -> str:
    """The full default config as TOML, each key under its one-line doc as a comment (``marl-distill config``)."""
    lines = [
        "# marl-distill: every experiment key with its default. Copy what you change into your TOML",
        "# (a file holding only those keys is enough) and run: marl-distill run FILE",
    ]
    documented_table(ExperimentConfig, build({}), "", lines)
    return "\n".join(lines) + "\n"
