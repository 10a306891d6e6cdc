"""The results pages' tables, rendered from the runs' own JSON: never typed by hand.

Each folder under docs/results/data/ holds what one command wrote (a benchmark's results.json, summary.json and
privilege.json, a run's metrics.json, or the JSON a script in experiments/ wrote: prune.py's prune_TASK_FROM.json as
prune.json, perf/mpe_replica_speed.py's speed.json, replica_vs_mpe2.py's replica_vs_mpe2.json) and
``source.json``: the command, the commit it ran at, the date, its wall time and the machine. A page shows a
folder's tables between two markers::

    <!-- render: benchmark -->
    ... everything here is rewritten by this script ...
    <!-- end render: benchmark -->

(``<!-- render: NAME, headings: 3 -->`` starts the block's headings at ``###``; ``<!-- render: NAME, pairs: A vs B;
C vs D -->`` renders a benchmark's paired differences between those policies instead). The text is the report the lab
writes beside its runs (``report.md``), made by the same functions from the same JSON, so a page cannot drift from
its data: tests/test_results.py renders every block again and compares.

    python docs/results/render.py                  # rewrite every page's blocks and plots from the data
    python docs/results/render.py --check          # exit 1 if a page differs from its rendering
    python docs/results/render.py collect NAME FOLDER --command "marl-distill benchmark ..." --wall "19 min"
                                                   # copy a finished benchmark or run folder's JSON into data/NAME
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from marl_distill.evaluation import benchmark_plots, report, summary
from marl_distill.utils.files import read_json, write_json, write_text
from marl_distill.utils.provenance import provenance

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
BLOCK = re.compile(r"<!-- render: (?P<spec>(?P<name>[\w-]+)(?P<options>(?:, [^>]*?)?)) -->\n(?P<body>.*?)"
                   r"<!-- end render: (?P=name) -->", re.S)  # fmt: skip
BENCHMARK_FILES = ("results.json", "summary.json", "privilege.json")
SCRIPTS = {
    "prune": ("prune.json", "experiments/prune.py:table"),
    "speed": ("speed.json", "experiments/perf/mpe_replica_speed.py:table"),
    "replica": ("replica_vs_mpe2.json", "experiments/replica_vs_mpe2.py:table"),
    "pair": ("benchmark_pair.json", "experiments/replica_vs_mpe2.py:pair_table"),
}
"""Data kinds written by a script (its JSON file, as data/NAME keeps it) and the script function that renders it."""
MACHINE = "2 CPU cores"
RERENDER = "python docs/results/render.py"


def _shift(text: str, depth: int) -> str:
    """Headings of a rendered block start at ``depth`` (the report's own start at ``##``)."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + depth - 2) + " ", text, flags=re.M)


def _provenance(name: str, source: dict[str, Any], at: str) -> str:
    main = {"benchmark": "summary.json", "run": "metrics.json", **{k: f for k, (f, _) in SCRIPTS.items()}}[
        source["kind"]
    ]
    made = source.get("provenance") or {}
    versions = ", ".join(f"{k} {v}" for k, v in made.get("versions", {}).items() if k != "marl-distill")
    where = f"{made['cpu']}, {made['cores']} cores" if made.get("cpu") else source.get("machine", MACHINE)
    return (
        f"*Made by `{source['command']}` at commit `{source['commit']}` on {source['date']}: {source['wall']} of "
        f"wall time on {where}{'; ' + source['note'] if source.get('note') else ''}."
        + (f" Python {made['python']}, {versions}." if versions else "")
        + f" Data: [`data/{name}/`]({at}/{name}/{main}); tables rendered from it by `{RERENDER}`.*\n\n"
    )


def _data_from(page: Path) -> str:
    """The data folder as a link from ``page``."""
    return os.path.relpath(DATA, page.parent).replace(os.sep, "/")


def _options(text: str) -> dict[str, str]:
    """``, headings: 3, pairs: A vs B; C vs D`` -> {"headings": "3", "pairs": "A vs B; C vs D"}."""
    return dict(part.split(": ", 1) for part in text.split(", ")[1:])


def render_pairs(name: str, pairs: str, page: Path) -> str:
    """A benchmark's paired differences between policies (``A vs B; ...``), from its results.json."""
    folder, at = DATA / name, _data_from(page)
    chosen = [tuple(pair.split(" vs ")) for pair in pairs.split("; ")]
    text = summary.paired_table(read_json(folder / "results.json"), chosen)  # type: ignore[arg-type]
    return f"*Paired differences from [`data/{name}/results.json`]({at}/{name}/results.json).*\n\n{text}"


def render(name: str, depth: int = 2, page: Path = HERE / "index.md") -> str:
    """One data folder's block for ``page``: where it came from, then its report text (plots linked from the page,
    not embedded)."""
    folder, at = DATA / name, _data_from(page)
    if not (folder / "source.json").is_file():
        raise SystemExit(
            f"docs/results/data/{name}/source.json is missing: run the command above its block, then "
            f"python docs/results/render.py collect {name} OUTPUT_FOLDER --command '...' --wall '...'"
        )
    source = read_json(folder / "source.json")
    if source["kind"] == "benchmark":
        rows = read_json(folder / "summary.json")
        comparisons = read_json(folder / "privilege.json") if (folder / "privilege.json").is_file() else []
        plots = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
        text = summary.report_text(rows, comparisons, seeds=source["seeds"], plots=plots)
        text = text.replace("](plots/", f"]({at}/{name}/plots/")
    elif source["kind"] in SCRIPTS:
        file, script = SCRIPTS[source["kind"]]
        text = _script_table(script)(read_json(folder / file))
    else:
        plot = f"{at}/{name}/plots/returns.png" if (folder / "plots" / "returns.png").is_file() else ""
        text = report.report_text(read_json(folder / "metrics.json"), plot=plot)
    return _provenance(name, source, at) + _shift(text.strip(), depth) + "\n"


def _script_table(target: str) -> Any:
    """A script's own table function, ``path.py:function`` (experiments/ scripts are not part of the package)."""
    script, _, function = target.partition(":")
    spec = importlib.util.spec_from_file_location(Path(script).stem, HERE.parent.parent / script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return getattr(module, function)


def pages() -> list[Path]:
    """Every docs page with a rendered block."""
    return sorted(p for p in HERE.parent.rglob("*.md") if BLOCK.search(p.read_text()))


def rendered(page: Path) -> str:
    """The page with every block rendered afresh from its data."""

    def block(m: re.Match[str]) -> str:
        name, options = m.group("name"), _options(m.group("options"))
        if "pairs" in options:
            body = render_pairs(name, options["pairs"], page)
        else:
            body = render(name, int(options.get("headings", 2)), page)
        return f"<!-- render: {m.group('spec')} -->\n{body}<!-- end render: {name} -->"

    return BLOCK.sub(block, page.read_text())


def plot(name: str) -> None:
    """The plots a folder's JSON can make (a benchmark's learning curves need its run folders, so not those)."""
    folder = DATA / name
    source = read_json(folder / "source.json")
    if source["kind"] == "benchmark":
        benchmark_plots.write_all(folder, read_json(folder / "summary.json"), [])
    elif source["kind"] == "run":
        report.plot_returns(read_json(folder / "metrics.json"), folder / "plots" / "returns.png")


def collect(
    name: str, folder: Path, command: str, wall: str, commit: str | None, date: str | None, note: str = ""
) -> Path:
    """Copy a finished benchmark folder's (or run folder's) JSON into data/NAME with its source.json."""
    out = DATA / name
    if (folder / "summary.json").is_file():
        kind, files = "benchmark", [f for f in BENCHMARK_FILES if (folder / f).is_file()]
        results = read_json(folder / "results.json")
        seeds = sorted({int(s[5:]) for t in results.values() for p in t.values() for r in p.values() for s in r})
    elif (folder / "metrics.json").is_file():
        kind, files, seeds = "run", ["metrics.json"], None
    elif folder.is_file() and folder.name.startswith("prune_") and folder.suffix == ".json":
        kind, files, seeds = "prune", [], read_json(folder)["seeds"]
    elif folder.is_file() and folder.name in {f for f, _ in SCRIPTS.values()}:
        kind, files, seeds = next(k for k, (f, _) in SCRIPTS.items() if f == folder.name), [], None
    else:
        raise SystemExit(f"{folder} is neither a benchmark folder, a run folder, a prune_*.json nor one of "
                         f"{sorted(f for f, _ in SCRIPTS.values())}")  # fmt: skip
    if out.exists():
        shutil.rmtree(out)  # ours: rendered data, in git
    out.mkdir(parents=True)
    for f in files:
        shutil.copyfile(folder / f, out / f)
    if kind in SCRIPTS:
        shutil.copyfile(folder, out / SCRIPTS[kind][0])
    own = read_json(folder).get("provenance") if folder.is_file() else None  # a script's JSON that recorded it
    made = (
        own or _recorded(folder if folder.is_dir() else folder.parent) or {**provenance(), "recorded": "when collected"}
    )
    source = {
        "kind": kind,
        "command": command,
        "commit": commit or made.get("commit") or "unknown",
        "date": date or datetime.date.today().isoformat(),
        "wall": wall,
        "machine": MACHINE,
        **({"note": note} if note else {}),
        "provenance": made,
        **({"seeds": seeds} if seeds is not None else {}),
    }
    write_json(out / "source.json", source)
    plot(name)
    return out


def _recorded(folder: Path) -> dict[str, Any] | None:
    """What the runs themselves recorded (metrics.json ``_meta.provenance``); the first run's, for a grid."""
    for metrics in sorted(folder.glob("**/metrics.json")):
        made = read_json(metrics).get("_meta", {}).get("provenance")
        if made:
            return made
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what")
    parser.add_argument("--check", action="store_true", help="exit 1 if a page differs from its rendering")
    c = sub.add_parser("collect", help="copy a finished folder's JSON into data/NAME")
    c.add_argument("name")
    c.add_argument("folder", type=Path)
    c.add_argument("--command", required=True, help="the command that made the folder, as a user would type it")
    c.add_argument("--wall", required=True, help="its wall time, e.g. '19 min 33 s'")
    c.add_argument("--commit", help="the commit it ran at (default: what its metrics.json recorded)")
    c.add_argument("--date", help="the day it ran, YYYY-MM-DD (default: today)")
    c.add_argument("--note", default="", help="what a reader of its timings should know, e.g. other load")
    args = parser.parse_args(argv)
    if args.what == "collect":
        print(collect(args.name, args.folder, args.command, args.wall, args.commit, args.date, args.note))
        return 0
    fresh, missing = {}, []
    for page in pages():
        try:
            fresh[page] = rendered(page)
        except SystemExit as exc:  # a block whose command has not been collected yet: the others still render
            missing.append(f"{page.relative_to(HERE.parent)}: {exc}")
    stale = [p for p, text in fresh.items() if text != p.read_text()]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(HERE.parent)} differs from its rendering: run {RERENDER}", file=sys.stderr)
    else:
        for name in sorted(d.name for d in DATA.iterdir() if (d / "source.json").is_file()):
            plot(name)
        for p in stale:
            write_text(p, fresh[p])
            print(f"rendered {p.relative_to(HERE.parent.parent)}")
    for line in missing:
        print(line, file=sys.stderr)
    return 1 if missing or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
