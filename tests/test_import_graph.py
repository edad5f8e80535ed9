"""No import cycles between our modules, counting the imports hidden inside functions.

An import inside a function is how a cycle is usually papered over: the program starts, but the
two modules still need each other, so neither can be understood, tested or moved alone. This
test reads every module's imports with ``ast`` (top level, functions, ``TYPE_CHECKING`` blocks
alike), builds the module graph and fails on any cycle, printing it as ``a -> b -> a``.

Module names are the installed ones: the repository folders ``components/`` and ``pipelines/``
are ``xdetox.components`` and ``xdetox.pipelines`` (setup.py maps them). Importing a submodule
runs its package's ``__init__`` first, but that implicit step is not an edge here: only what a
file names counts, so ``from xdetox.config import X`` is an edge to ``xdetox.config`` and
``from xdetox.config import loader`` (a submodule) an edge to ``xdetox.config.loader``.
"""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# repository folder -> the package name it installs as (as in setup.py)
ROOTS = {"components": "xdetox.components", "pipelines": "xdetox.pipelines", "xdetox": "xdetox"}


def module_files() -> dict[str, Path]:
    """``{module name: file}`` for every module of the installed package."""
    modules: dict[str, Path] = {}
    for folder, package in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from … import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(module: str, path: Path, known: set[str]) -> dict[str, int]:
    """``{our module that ``module`` imports anywhere in its file: line of the first import}``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    targets: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, is_package)
            # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module.
            names = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            # ``import a.b.c`` of a module we do not have (a typo, a name) counts as its
            # nearest known ancestor; outside packages drop out here.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets[name] = min(targets.get(name, node.lineno), node.lineno)
    return targets


Graph = dict[str, dict[str, int]]  # module -> {imported module: line of the import}


def import_graph() -> Graph:
    files = module_files()
    known = set(files)
    return {module: imported_modules(module, path, known) for module, path in files.items()}


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle per group of modules that reach each other (see :func:`tangles`)."""
    return [_one_cycle(graph, members) for members in tangles(graph)]


def tangles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module, sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        # Iterative depth-first search: a recursive one could hit the recursion limit.
        work = [(node, iter(sorted(graph.get(node, ()))))]
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[current] = min(low[current], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[current])
            if low[current] == index[current]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == current:
                        break
                if len(members) > 1:
                    components.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _one_cycle(graph: Graph, members: list[str]) -> list[str]:
    """A shortest cycle through the first member, inside its component (breadth first)."""
    inside = set(members)
    start = members[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(set(graph[node]) & inside):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {members}")  # pragma: no cover


def test_cycle_finder_reports_the_cycle_and_nothing_else():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}, "e": {"d": 1}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []


def test_imports_inside_functions_and_relative_imports_are_edges(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text(
        "from . import sibling\n"
        "def f():\n"
        "    from xdetox.other import thing\n"
        "    import xdetox.pkg.sub.missing\n"
    )
    known = {"xdetox.pkg.mod", "xdetox.pkg.sibling", "xdetox.other", "xdetox.pkg.sub"}
    assert imported_modules("xdetox.pkg.mod", path, known) == {
        "xdetox.pkg.sibling": 1,
        "xdetox.other": 3,
        "xdetox.pkg.sub": 4,
    }


def test_no_import_cycles_between_modules():
    graph = import_graph()
    assert "xdetox.components.score.scorers" in graph  # the folders were found
    files = module_files()
    groups = tangles(graph)
    cycles = [_one_cycle(graph, members) for members in groups]
    lines = []
    for members, cycle in zip(groups, cycles, strict=True):
        lines.append("  " + " -> ".join(cycle))
        others = sorted(set(members) - set(cycle))
        if others:  # more cycles run through these: they show once this one is broken
            lines.append(f"      (tangled with it: {', '.join(others)})")
        for source, target in pairwise(cycle):
            where = f"{files[source].relative_to(REPO)}:{graph[source][target]}"
            lines.append(f"      {where}: {source} imports {target}")
    report = "\n".join(lines)
    assert not cycles, f"{len(cycles)} import cycle(s) between modules:\n{report}"
