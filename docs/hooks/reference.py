"""MkDocs hook: the command-line and config references are generated at build time from the typer app and the
config dataclasses (the same source as ``marl-distill --help`` and ``marl-distill config``), so they cannot drift.

A page holds ``{{ cli_reference }}`` or ``{{ config_reference }}``; this hook replaces it.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _cli() -> str:
    import click
    import typer

    from marl_distill.cli import app

    root = typer.main.get_command(app)
    parent = click.Context(root, info_name="marl-distill")
    parts = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        text = command.get_help(click.Context(command, info_name=name, parent=parent))
        parts.append(f"## `marl-distill {name}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


def _rows(cls: type, obj: Any, path: str) -> list[str]:
    from marl_distill.config import _toml_value, field_docs

    docs = field_docs(cls)
    rows, nested = [], []
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            nested.append((f.name, value))
            continue
        key = f"{path}.{f.name}" if path else f.name
        try:
            default = _toml_value(value)
        except TypeError:  # [[tasks]] tables and the like: described, not defaulted
            default = "(tables)"
        if f.name == "seed" and path in ("teachers", "distill", "evaluate"):
            default = "(the run's seed)"
        doc = docs.get(f.name, "").replace("|", "\\|")
        shown = default if default.startswith("(") else f"`{default}`"
        rows.append(f"| `{key}` | {shown} | {doc} |")
    for name, value in nested:
        rows += _rows(type(value), value, f"{path}.{name}" if path else name)
    return rows


def _config() -> str:
    from marl_distill.config import ExperimentConfig, build
    from marl_distill.pipeline.config import BenchmarkConfig

    head = ["| key | default | what it does |", "|---|---|---|"]
    experiment = "\n".join(head + _rows(ExperimentConfig, build({}), ""))
    grid = "\n".join(head + _rows(BenchmarkConfig, BenchmarkConfig(), ""))
    return (
        "## Experiment (`marl-distill run FILE`)\n\nA stage's `seed` left unset follows the run's `seed`.\n\n"
        f"{experiment}\n\n## Benchmark grid (`marl-distill benchmark FILE`)\n\nEach `[[tasks]]` and "
        f"`[[settings]]` table holds a `name` and experiment keys.\n\n{grid}\n"
    )


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if "{{ cli_reference }}" in markdown:
        markdown = markdown.replace("{{ cli_reference }}", _cli())
    if "{{ config_reference }}" in markdown:
        markdown = markdown.replace("{{ config_reference }}", _config())
    return markdown
