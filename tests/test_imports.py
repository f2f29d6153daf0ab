"""The import graph of `probes`: no cycles, and no private name imported from another module.

Every `probes.*` import counts as an edge, at module level or inside a function: a function-level
import is how a cycle hides (it works until the day someone moves it to the top). Imports under
`if TYPE_CHECKING:` are not edges: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "probes"

# Known findings in modules another change is rewriting. Each entry is a cycle (as a frozenset of its
# modules) or an (importer, "module._name") pair; an entry that no longer occurs fails the test.
ALLOWED_CYCLES: set[frozenset[str]] = set()
ALLOWED_PRIVATE: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every import node in `tree`, at any depth, except those under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The probes module that `name` (a module, or a module's attribute) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _scan() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """(module -> probes modules it imports, [(importer, 'module._name', line)] for private names)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private: list[tuple[str, str, int]] = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        bound: dict[str, str] = {}  # local name -> the probes module it is bound to
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
                bound.update({a.asname: a.name for a in node.names if a.asname and a.name in modules})
            else:
                source = _absolute(node, module, is_package)
                if source == "__future__":
                    continue
                targets = []
                for alias in node.names:
                    # `from probes.studies import shards` imports a module; `from x import name` a name.
                    if f"{source}.{alias.name}" in modules:
                        targets.append(f"{source}.{alias.name}")
                        bound[alias.asname or alias.name] = f"{source}.{alias.name}"
                    else:
                        targets.append(source)
                        if alias.name.startswith("_") and source.startswith("probes") and source != module:
                            private.append((module, f"{source}.{alias.name}", node.lineno))
            for target in targets:
                if not target.startswith("probes"):
                    continue
                found = _resolve(target, modules)
                if found and found != module and not module.startswith(found + "."):
                    # A submodule importing its own package's __init__ is Python's import order, not a cycle
                    # of ours; nothing here does it except through probes/__init__'s lazy table.
                    graph[module].add(found)
        # `from probes.studies import activations` then `activations._write(...)`: the same private
        # name, reached through the module.
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                private.append((module, f"{bound[node.value.id]}.{node.attr}", node.lineno))
    return graph, private


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected component with more than one module (Tarjan), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def _path_through(graph: dict[str, set[str]], component: list[str]) -> str:
    """One cycle inside a strongly connected component, for the message: a -> b -> a."""
    members, start = set(component), component[0]
    seen, path = {start: None}, [start]
    frontier = [start]
    while frontier:
        v = frontier.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                path = []
                while v is not None:
                    path.append(v)
                    v = seen[v]
                return " -> ".join([*reversed(path), start])
            if w not in seen:
                seen[w] = v
                frontier.append(w)
    return " <-> ".join(component)


def test_the_scan_sees_function_level_imports():
    graph, _ = _scan()
    assert len(graph) > 40 and "probes.core.load" in graph  # the walk found the package
    # `load` imports the hooks only inside a function (torch stays out of `probes --help`).
    assert "probes.core.hooks" in graph["probes.core.load"]


def test_no_import_cycles():
    graph, _ = _scan()
    found = _cycles(graph)
    unexpected = [c for c in found if frozenset(c) not in ALLOWED_CYCLES]
    assert not unexpected, "import cycles:\n" + "\n".join(_path_through(graph, c) for c in unexpected)
    stale = ALLOWED_CYCLES - {frozenset(c) for c in found}
    assert not stale, f"allowed cycles that no longer exist (remove them from ALLOWED_CYCLES): {stale}"


def test_no_private_names_across_modules():
    _, private = _scan()
    unexpected = [(m, name, line) for m, name, line in private if (m, name) not in ALLOWED_PRIVATE]
    assert not unexpected, "private names imported from another module:\n" + "\n".join(
        f"{m} (line {line}) imports {name}" for m, name, line in unexpected
    )
    stale = ALLOWED_PRIVATE - {(m, name) for m, name, _ in private}
    assert not stale, f"allowed private imports that no longer exist (remove them): {stale}"
