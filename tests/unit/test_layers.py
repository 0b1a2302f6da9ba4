"""The layering of docs/architecture.md, checked on the source: an import that crosses a layer
the wrong way, or a cycle of imports, fails here with the file and line that made it.

The graph is read with `ast` (nothing is imported). Every import counts for the layer rules,
those inside functions too (a lazy import is still a dependency); the cycle check takes the
imports that run when a module is loaded (module level, not under TYPE_CHECKING), which are
the ones whose order can break.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("chalicelib", "updraft", "workers")


class Import(NamedTuple):
    source: str  # the importing module
    target: str  # the imported module (one of ours)
    line: int
    at_load: bool  # runs when `source` is imported (module level, not under TYPE_CHECKING)

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, at_load: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, at_load
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), False)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), at_load)
        else:
            yield from _walk(child, at_load)


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = alias.name
            while name and name not in MODULES:  # `import a.b.c` of a name inside a module
                name = name.rpartition(".")[0]
            if name:
                yield name
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    for alias in node.names:
        if f"{base}.{alias.name}" in MODULES:  # `from package import module`
            yield f"{base}.{alias.name}"
        elif base in MODULES:
            yield base


def _imports() -> list[Import]:
    out: list[Import] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, at_load in _walk(tree, True):
            for target in dict.fromkeys(_targets(module, path, node)):
                if target != module:
                    out.append(Import(module, target, node.lineno, at_load))
    return out


IMPORTS = _imports()


def _under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


# (what, the packages it covers, the packages they must never import, why)
RULES = [
    ("the engine, workflow model, runner and cache",
     ("chalicelib.engine", "chalicelib.workflow", "chalicelib.runner", "chalicelib.cache", "chalicelib.attempt"),
     ("chalicelib.backends", "chalicelib.service", "chalicelib.ui", "chalicelib.cli", "updraft", "workers"),
     "they sit below the adapters and entry points: an adapter implements their ports"),
    ("the runner and cache", ("chalicelib.runner", "chalicelib.cache"),
     ("chalicelib.engine.events", "chalicelib.engine.coordinator", "chalicelib.engine.transitions",
      "chalicelib.engine.states"),
     "running one task does not depend on the coordinator's vocabulary (what an attempt reports "
     "is chalicelib/attempt.py)"),
    ("the cache", ("chalicelib.cache",), ("chalicelib.runner",),
     "the runner stages through the cache; the cache knows nothing of sandboxes (a task's deps "
     "are parsed once, into workflow.model.Dep)"),
    ("the workflow model", ("chalicelib.workflow",),
     ("chalicelib.engine", "chalicelib.runner", "chalicelib.cache", "chalicelib.planner", "chalicelib.report"),
     "everything else reads workflows; the model reads nothing above it"),
    ("the AWS backend", ("chalicelib.backends.aws",), ("chalicelib.backends.local",),
     "backends are siblings: what both need lives below them"),
    ("the local backend", ("chalicelib.backends.local",), ("chalicelib.backends.aws",),
     "backends are siblings: what both need lives below them"),
    ("the SDK", ("updraft",), ("chalicelib.ui",),
     "the dashboard is built on the SDK's transports, not the other way round"),
    ("the service", ("chalicelib.service",), ("chalicelib.backends", "chalicelib.ui", "chalicelib.cli"),
     "the service talks to a backend through the Runtime shape"),
]


@pytest.mark.parametrize("rule", RULES, ids=[r[0] for r in RULES])
def test_no_layer_imports_one_above_it(rule: tuple[str, tuple[str, ...], tuple[str, ...], str]) -> None:
    what, packages, forbidden, why = rule
    wrong = [str(i) for i in IMPORTS if _under(i.source, *packages) and _under(i.target, *forbidden)]
    assert not wrong, f"{what} must not import {', '.join(forbidden)} ({why}):\n  " + "\n  ".join(wrong)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
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


def test_no_import_cycles_at_load_time() -> None:
    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        # a module imports its own package first anyway: that edge makes no order of its own
        if i.at_load and not i.source.startswith(i.target + "."):
            edges.setdefault(i.source, set()).add(i.target)
    cycles = _cycles(edges)
    detail = [
        " <-> ".join(c) + ": " + "; ".join(str(i) for i in IMPORTS
                                           if i.at_load and i.source in c and i.target in c)
        for c in cycles
    ]
    assert not cycles, "import cycles (move what both sides need below both):\n  " + "\n  ".join(detail)


def _package(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


LOWER = ("chalicelib.engine", "chalicelib.workflow", "chalicelib.runner", "chalicelib.cache", "chalicelib.attempt")


def test_no_lower_module_is_on_a_cycle_even_through_lazy_imports() -> None:
    """A lazy import breaks a cycle at load time but not the dependency: the lower layers are on
    none (the cache once reached the sandbox for parse_dep, and the workflow format reached the
    local runtime through the CWL runner). Left alone: recursion inside one package (a nested
    Makeflow workflow is read by the Makeflow reader) and cycles among entry points and
    composition roots (cli <-> ui.commands, compose <-> executor), which import lazily on purpose."""
    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        if not i.source.startswith(i.target + "."):
            edges.setdefault(i.source, set()).add(i.target)
    cycles = [c for c in _cycles(edges)
              if any(_under(m, *LOWER) for m in c) and len({_package(m) for m in c}) > 1]
    detail = [" <-> ".join(c) + ": " + "; ".join(str(i) for i in IMPORTS if i.source in c and i.target in c)
              for c in cycles]
    assert not cycles, "import cycles through the lower layers:\n  " + "\n  ".join(detail)


def test_the_checker_sees_an_upward_import_and_a_cycle() -> None:
    """The rules above are only as good as the graph: it finds relative, lazy and
    `from package import module` imports, and the cycle finder finds a cycle."""
    assert Import("chalicelib.runner.execute", "chalicelib.cache.stage", 28, True) in {
        i._replace(line=28) for i in IMPORTS if i.source == "chalicelib.runner.execute"}
    lazy = [i for i in IMPORTS if i.source == "updraft.client" and not i.at_load]
    assert any(_under(i.target, "chalicelib.backends.local") for i in lazy), lazy
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_cloud_has_one_claim_run_report_path() -> None:
    """The task function and the Fargate worker both go through backends/aws/attempts.py:
    nothing else in the cloud backend or the worker claims, runs or hands back an attempt."""
    steps = {("chalicelib.backends.aws.claims", "claim"), ("chalicelib.backends.aws.claims", "unclaim"),
             ("chalicelib.runner.execute", "run_task"), ("chalicelib.runner", "run_task")}
    users = set()
    for module, path in MODULES.items():
        if not (_under(module, "chalicelib.backends.aws", "workers")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and any((node.module, a.name) in steps for a in node.names):
                users.add(module)
    assert users == {"chalicelib.backends.aws.attempts"}
