"""The package's import graph: imports run only down the flow, and no module imports itself back.

The flow (docs/INTERFACES.md, "Architecture"), lowest first:

    base (config, paths, console, files) -> data -> simulate -> models -> train -> stats
      -> track -> plotting -> methods -> cli

A module may import modules of its own layer or of any lower one. Every import that runs
counts, including imports inside functions: a late import that hides a cycle is still a cycle.
Imports under `if TYPE_CHECKING:` never run and only name types for annotations; they are
left out.

Run as a script (`python tests/test_import_graph.py`) to print the package-level graph.
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "jaxws"

LAYERS = (
    ("jaxws", "jaxws.config", "jaxws.paths", "jaxws.console", "jaxws.files"),
    ("jaxws.data",),
    ("jaxws.simulate",),
    ("jaxws.models",),
    ("jaxws.train",),
    ("jaxws.stats",),
    ("jaxws.track",),
    ("jaxws.plotting",),
    ("jaxws.methods",),
    ("jaxws.cli", "jaxws.__main__"),
)


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` except those under an `if TYPE_CHECKING:` block."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = getattr(child, "test", None)
            if isinstance(child, ast.If) and (
                (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
                or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
            ):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body."""
    mods = modules()
    graph = collections.defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [
                    f"{module}.{alias.name}" if f"{module}.{alias.name}" in mods else module
                    for alias in node.names
                ]
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def layer_of(module: str) -> int:
    """Index of the layer a module belongs to (its longest matching prefix)."""
    best, rank = -1, None
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank is not None, f"{module} is in no layer; add it to LAYERS"
    return rank


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(graph) | set(modules())):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_no_import_runs_up_the_flow():
    upward = [
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, targets in sorted(import_graph().items())
        for b in sorted(targets)
        if layer_of(b) > layer_of(a)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    assert not cycles(import_graph())


def test_the_checks_can_fail():
    """The cycle finder and the layer order see a planted cycle and an upward edge."""
    planted = {"jaxws.data.a": {"jaxws.data.b"}, "jaxws.data.b": {"jaxws.data.a"}}
    assert ["jaxws.data.a", "jaxws.data.b"] in cycles({**import_graph(), **planted})
    assert layer_of("jaxws.methods.cwola") > layer_of("jaxws.train.trainer")
    assert layer_of("jaxws.data.members") < layer_of("jaxws.simulate.jets")


if __name__ == "__main__":
    edges = collections.Counter(
        (".".join(a.split(".")[:2]), ".".join(b.split(".")[:2]))
        for a, targets in import_graph().items()
        for b in targets
    )
    for (a, b), count in sorted(edges.items()):
        if a != b:
            print(f"{a:16s} -> {b:16s} {count:3d}")
