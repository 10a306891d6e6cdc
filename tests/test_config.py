"""Config refusals that help: the closest key for a misspelt one, and values that mean the same accepted."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from marl_distill import config as config_mod
from marl_distill.config import ExperimentConfig
from marl_distill.distillation.config import DistillConfig
from marl_distill.errors import UserError
from marl_distill.pipeline.config import BenchmarkConfig, documented_benchmark

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_one_item_for_a_list_and_integral_floats_for_integers_are_read_as_meant():
    cfg = config_mod.load(None, ["distill.hidden=16", "teachers.steps=5e4", 'distill.students="shared"'])
    assert cfg.distill.hidden == [16] and cfg.teachers.steps == 50_000 and cfg.distill.students == ["shared"]
    assert isinstance(cfg.teachers.steps, int)
    with pytest.raises(UserError, match=r"teachers.steps = 5.5 has the wrong type; expected int"):
        config_mod.load(None, ["teachers.steps=5.5"])
    with pytest.raises(UserError, match="wrong type"):
        config_mod.load(None, ["distill.hidden=true"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("distill.hiden=16", "unknown config key distill.hiden; did you mean distill.hidden?"),
        ("teacher.steps=5", "unknown config key teacher; did you mean teachers?"),
        ("evaluate.episode=5", "unknown config key evaluate.episode; did you mean evaluate.episodes?"),
    ],
)
def test_a_misspelt_key_gets_the_closest_one(override, message):
    with pytest.raises(UserError) as err:
        config_mod.load(None, [override])
    assert str(err.value) == message


def test_differences_name_every_changed_key():
    a = config_mod.to_dict(config_mod.load(None, []))
    b = config_mod.to_dict(config_mod.load(None, ["distill.epochs=7", "env.kwargs.N=4"]))
    assert config_mod.differences(a, b) == ["distill.epochs: 40 -> 7", "env.kwargs.N: None -> 4"]


def test_config_benchmark_lists_every_benchmark_key_and_its_defaults_load():
    text = documented_benchmark()
    for field in dataclasses.fields(BenchmarkConfig):
        assert field.name in text, field.name
    uncommented = tomllib.loads(text)  # the tables are commented out; the rest is the defaults
    assert uncommented == {
        k: v for k, v in dataclasses.asdict(BenchmarkConfig()).items() if k not in ("base", "tasks", "settings")
    }


def test_the_run_seed_reaches_every_stage_from_python_as_from_a_toml():
    """ExperimentConfig(seed=3), run from Python, seeds teachers, distillation and evaluation with 3, as `seed = 3`
    in a TOML does, also after dataclasses.replace; a stage seed set otherwise still overrides it, and a TOML's
    explicit stage seed 0 is kept."""
    from_python, build = config_mod.from_python, config_mod.build
    swept = dataclasses.replace(ExperimentConfig(seed=1), seed=3)
    for cfg in (from_python(ExperimentConfig(seed=3), []), build({"seed": 3}), from_python(swept, [])):
        assert (cfg.teachers.seed, cfg.distill.seed, cfg.evaluate.seed) == (3, 3, 3)
    cfg = from_python(ExperimentConfig(seed=3, distill=DistillConfig(seed=7)), ["teachers.seed=0"])
    assert (cfg.teachers.seed, cfg.distill.seed, cfg.evaluate.seed) == (0, 7, 3)
    assert build({"seed": 3, "distill": {"seed": 0}}).distill.seed == 0
