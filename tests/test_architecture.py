"""The package's shape (DESIGN.md): imports point down the layers, and no module imports
itself back through another, not even from inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import learnlab

ROOT = Path(learnlab.__file__).parent
# each imports only those before it
LAYERS = ["tasks", "models", "train", "lr", "theory", "experiments", "analysis", "cli"]


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports() -> dict[str, set[str]]:
    """module -> the learnlab modules it imports anywhere (top level or inside functions)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1


def test_the_import_graph_has_no_cycles():
    graph = _imports()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_layers_import_downward_only():
    upward = [
        f"{m} -> {t}"
        for m, targets in _imports().items()
        for t in targets
        if _layer(t) > _layer(m) and m != "learnlab.__main__"
    ]
    assert not upward, upward


def test_the_checks_see_function_level_imports():
    """The walk reads imports inside functions (where optional and heavy imports live)."""
    assert "learnlab.experiments._ray" in _imports()["learnlab.experiments._plan"]
