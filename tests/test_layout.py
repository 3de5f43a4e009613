"""The package's shape, read from its sources (nothing imported): no import cycle, and printing only
where the user is talked to. Length is left to review: hard line caps led to code squeezed to fit.

The modules are every ``*.py`` of ``hecktor_nnunet/`` and of the three folders installed inside it
(``dataset_conversion/``, ``prognosis/``, ``trainers/``). An import counts wherever it is written,
function-level (lazy) imports included; imports under ``if TYPE_CHECKING:`` do not run and do not
count. Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``; those implicit edges are left out,
so a package's ``__init__`` re-exporting its modules is not a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "hecktor_nnunet"
#: folder -> the dotted name it is installed as (pyproject's package-dir)
FOLDERS = {ROOT / PACKAGE: PACKAGE, ROOT / "dataset_conversion": f"{PACKAGE}.dataset_conversion",
           ROOT / "prognosis": f"{PACKAGE}.prognosis", ROOT / "trainers": f"{PACKAGE}.trainers"}
#: Where ``print`` is allowed: the command-line modules, the demo's step runner, and the
#: ``main()`` of the nnU-Net-style conversion script.
MAY_PRINT = (f"{PACKAGE}.cli.", f"{PACKAGE}.demo.runner", f"{PACKAGE}.dataset_conversion.Dataset500_HECKTOR2025")


def _modules() -> dict[str, Path]:
    out = {}
    for folder, dotted in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((dotted, *parts))] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(module: str, path: Path) -> set[str]:
    """The package's modules that ``module`` imports."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            # `import a.b.c` binds a module that may be a package or a module: take the longest known name
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _cycle() -> list[str] | None:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(GRAPH[m])
    return seen


def test_the_graph_sees_the_package():
    assert len(MODULES) > 60
    assert f"{PACKAGE}.reporting.render" in GRAPH[f"{PACKAGE}.cli.report"] or \
        f"{PACKAGE}.reporting" in GRAPH[f"{PACKAGE}.cli.report"]
    # lazy (function-level) imports count: cli.report imports the report only inside main()
    assert f"{PACKAGE}.reporting.demo_folder" in GRAPH[f"{PACKAGE}.cli.report"]


def test_no_import_cycle():
    assert _cycle() is None, " -> ".join(_cycle())


def test_the_cycle_finder_finds_one():
    GRAPH["_a"], GRAPH["_b"] = {"_b"}, {"_a"}
    try:
        assert _cycle() in (["_a", "_b", "_a"], ["_b", "_a", "_b"])
    finally:
        del GRAPH["_a"], GRAPH["_b"]


def test_the_report_command_does_not_load_the_demo_runner():
    reached = _closure(f"{PACKAGE}.cli.report")
    assert f"{PACKAGE}.demo.runner" not in reached
    assert f"{PACKAGE}.demo.steps" in reached  # the step order of a demo folder, nothing that runs


def test_only_the_command_line_and_the_demo_runner_print():
    printing = []
    for module, path in sorted(MODULES.items()):
        if module.startswith(MAY_PRINT):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not printing, printing
