"""The house stays easy to see: no import cycles between posterml modules (imports inside
functions and under TYPE_CHECKING count too: they are cycles a reader has to untangle), no
module grown past what one concern needs, the served model apart from the shell commands,
and no plumbing a library already does."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "posterml"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """posterml modules ``path`` imports anywhere in its body, resolved to module names.

    ``from posterml.x import y`` counts as importing ``posterml.x.y`` when that is a module,
    else ``posterml.x``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("posterml"):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {name: _imports(path, modules) - {name} for name, path in paths.items()}
    # Importing posterml.a.b runs posterml/a/__init__.py first.
    for name in modules:
        parent = name.rpartition(".")[0]
        if parent in modules and parent != "posterml":
            graph[name].add(parent)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_posterml_modules():
    assert cycles(import_graph()) == []


def test_no_module_is_over_its_size():
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_the_served_model_parses_no_command_line():
    """``posterml/serving/`` is what a logged model runs; flags belong to ``commands/``."""
    parsers = set()
    for path in (PACKAGE / "serving").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] in ("argparse", "click", "typer") for n in names):
                parsers.add(path.name)
    assert parsers == set()


def test_no_hand_written_logistic_function():
    """``scipy.special.expit``/``logit`` do it, stably."""
    found = [
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if "/ (1 + np.exp(" in p.read_text() or "/ (1.0 + np.exp(" in p.read_text()
    ]
    assert found == []
