"""The package's import structure: no import cycles, a public-only perturbed.py.

Imports are read from the source (``ast``), including those inside
functions: a cycle hidden behind a function-level import is still a cycle
(the two modules cannot be understood or tested one without the other).
"""

import ast
from pathlib import Path

import sk_perturbed

PACKAGE = Path(sk_perturbed.__file__).parent


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name, path, modules):
    """The package modules that module ``name`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from .pkg import mod` imports mod too; `from . import x` only x
            # (its package is the one being imported already).
            targets = [f"{source}.{alias.name}" for alias in node.names]
            if node.module:
                targets.append(source)
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _find_cycle(graph):
    """One import cycle as a list of modules, or None (depth-first search)."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state:
                cycle = visit(child)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_is_read():
    graph = _graph()
    assert "sk_perturbed._engine" in graph["sk_perturbed.perturbed"]
    # Function-level imports count.
    assert "sk_perturbed._kernels" in graph["sk_perturbed._numba_backend"]
    assert "sk_perturbed._cupy_backend" in graph["sk_perturbed._engine"]
    assert "sk_perturbed.solvers._registry" in graph["sk_perturbed.solvers"]


def test_no_import_cycles():
    # The package's own __init__ files import their submodules; a module
    # importing a sibling does not import the package __init__ in this graph.
    graph = _graph()
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_perturbed_defines_only_public_names():
    tree = ast.parse((PACKAGE / "perturbed.py").read_text(encoding="utf-8"))
    defined = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.append(node.name)
        elif isinstance(node, ast.Assign):
            defined += [t.id for t in node.targets if isinstance(t, ast.Name)]
    private = [name for name in defined if name.startswith("_") and name != "__all__"]
    assert not private, f"perturbed.py defines private names {private}: move them to _engine.py"
    assert {"PerturbedOptimizer", "fenchel_young_loss", "jacobian"} <= set(defined)
