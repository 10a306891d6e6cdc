"""The package's shape: data flows one way (pipeline -> stages -> env -> policy -> utils), no module imports itself
in a circle (imports inside functions and under TYPE_CHECKING count too), and the torch-free part stays torch-free.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "marl_distill"

LAYERS = [
    {"errors"},
    {"utils"},
    {"policy"},
    {"env"},
    {"students", "teachers"},
    {"distillation", "compress"},
    {"evaluation"},
    {"config"},
    {"pipeline"},
    {"cli", "__init__"},
]
"""Each top-level part of marl_distill imports only parts of lower layers: never one of its own layer (students
never import teachers; distillation and compression stay apart) and never one above."""


def _modules() -> dict[str, Path]:
    out = {}
    for file in PACKAGE.rglob("*.py"):
        parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every marl_distill module each module imports, wherever the import statement sits."""
    edges = {}
    for name, file in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("marl_distill"):
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    deps.add(submodule if submodule in modules else node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("marl_distill"))
        edges[name] = {d for d in deps if d in modules and d != name}
    return edges


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_has_a_layer():
    parts = {_part(m) for m in _modules()}
    assert parts == set().union(*LAYERS), "give each new top-level module or package a layer in LAYERS"


def test_imports_point_down_only():
    rank = {part: i for i, layer in enumerate(LAYERS) for part in layer}
    wrong = sorted(
        f"{module} imports {dep}"
        for module, deps in _imports(_modules()).items()
        for dep in deps
        if _part(dep) != _part(module) and rank[_part(dep)] >= rank[_part(module)]
    )
    assert not wrong, wrong


def test_no_import_circles():
    edges = _imports(_modules())
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(edges[module]):
            if state.get(dep) == "open":
                circles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


def test_env_adapters_and_seed_tree_import_without_torch():
    """Deployment with onnxruntime alone (experiments/deploy_onnx.py) reads the registry, views and seed tree;
    ``import marl_distill`` lists the API without importing it."""
    code = (
        "import sys; sys.modules['torch'] = sys.modules['stable_baselines3'] = None\n"
        "import marl_distill, marl_distill.env, marl_distill.policy\n"
        "assert {'run', 'distill', 'evaluate', 'load_student'} <= set(dir(marl_distill))\n"
        "from marl_distill.env import LOCAL, ViewEnv, TurnBasedParallel, resolve\n"
        "from marl_distill.utils import seeding\n"
        "from marl_distill.policy import encoder, has_mask\n"
        "resolve('navigation')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
