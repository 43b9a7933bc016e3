"""The package's import graph: no circle anywhere (imports inside functions count too), and a
core that imports no web framework and none of the server package.

Read from the sources with ``ast``, so a circle held apart by an import inside a function (the
kind that breaks when someone moves the import to the top) is found as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jupyter_guard

ROOT = Path(jupyter_guard.__file__).parent
PACKAGE = "jupyter_guard"
WEB = ("tornado", "jupyter_server")
#: modules outside jupyter_guard.server that may reach it: the extension point and the demo launcher
MAY_START_THE_SERVER = {"jupyter_guard", "jupyter_guard.demo"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every jupyter_guard module (and every top-level third-party package) ``name`` imports."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # `from . import x` / `from .pkg import sub`: the submodule
                sub = f"{module}.{alias.name}"
                out.add(sub if sub in known else module)
    return {m for m in out if m}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        graph[name] = _imports(name, path, known)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_reader_sees_imports_inside_functions():
    graph = _graph()
    assert "jupyter_guard.server.app" in graph["jupyter_guard"]  # imported inside a function
    assert "jupyter_guard.kernel.engines" in graph["jupyter_guard.kernel.sql"]


def test_a_circle_would_be_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]


def test_no_import_circle_anywhere():
    assert _cycles(_graph()) == []


def test_the_core_imports_no_web_framework_and_not_the_server():
    graph = _graph()
    for name, imports in sorted(graph.items()):
        if name.startswith(f"{PACKAGE}.server"):
            continue
        if name.startswith(f"{PACKAGE}.service") and name != f"{PACKAGE}.service.protocol":
            continue  # the guard service is a tornado app of its own (see the test below)
        web = sorted(m for m in imports if m.split(".")[0] in WEB)
        if name in MAY_START_THE_SERVER:
            continue
        assert not web, f"{name} imports {web}: the core imports no web framework"
        server = sorted(m for m in imports if m.startswith(f"{PACKAGE}.server"))
        assert not server, f"{name} imports {server}: only the server package may"


def test_the_kernel_side_never_imports_the_server():
    graph = _graph()
    reach, todo = set(), [m for m in graph if m.startswith(f"{PACKAGE}.kernel")]
    while todo:
        m = todo.pop()
        if m in reach:
            continue
        reach.add(m)
        todo.extend(x for x in graph.get(m, ()) if x in graph)
    assert not {m for m in reach if m.startswith(f"{PACKAGE}.server")}


def test_the_guard_service_is_tornado_without_jupyter_server():
    """The service runs where no single-user server does: tornado, never jupyter_server or the server package."""
    graph = _graph()
    service = {n: i for n, i in graph.items() if n.startswith(f"{PACKAGE}.service")}
    assert f"{PACKAGE}.service.app" in service
    for name, imports in service.items():
        if name == f"{PACKAGE}.service.client":
            continue  # the single-user server's side: imported by the server package
        bad = sorted(m for m in imports if m.split(".")[0] == "jupyter_server" or m.startswith(f"{PACKAGE}.server"))
        assert not bad, f"{name} imports {bad}"
