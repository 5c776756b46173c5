"""The package layers import only downward, and no modules import each other in a circle.

relay/ is split into layers, top to bottom (docs/architecture.md):
faces → usecases → agents → store → host → domain → util. A module may import its own layer and
the layers below it, never one above; `relay/__init__.py` and `relay/__main__.py` stand outside.
Every import counts, including the ones inside functions that keep start-up cheap, because a lazy
upward import is still a dependency that runs the wrong way.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("faces", "usecases", "agents", "store", "host", "domain", "util")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((REPO / "relay").rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The relay modules one file imports, resolved to module names (a `from pkg import mod` names mod)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("relay"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("relay"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return {name for name in found if name in modules}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def _graph() -> dict[str, set[str]]:
    modules = _sources()
    return {name: _imports(path, modules) for name, path in modules.items()}


def test_every_module_lives_in_a_layer():
    outside = [m for m in _sources() if _layer(m) is None and m not in ("relay", "relay.__main__")]
    assert outside == [], f"modules outside the layers {LAYERS}: {outside}"


def test_imports_run_only_downward():
    upward = []
    for module, imported in _graph().items():
        mine = _layer(module)
        if mine is None:
            continue
        for target in sorted(imported):
            theirs = _layer(target)
            if theirs is not None and theirs < mine:
                upward.append(f"{module} ({LAYERS[mine]}) imports {target} ({LAYERS[theirs]})")
    assert upward == [], "imports that run upward:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_no_modules_import_each_other_in_a_circle():
    graph = {module: imported - {module} for module, imported in _graph().items()}
    # a package's __init__ is imported by each of its modules' imports: leave those edges out
    graph = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}
    assert _cycles(graph) == []


def test_the_checks_see_an_upward_import_and_a_circle():
    """The two checks above are not vacuous: they find what they look for in a made-up graph."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("relay.store.files") is not None
    assert _layer("relay.store.files") > _layer("relay.faces.hook")  # type: ignore[operator]
