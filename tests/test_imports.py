"""spkid's modules import each other without a cycle, function-level (lazy) imports included."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "spkid"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imported_modules(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The spkid modules a module imports anywhere in its body (relative imports resolved; for
    `from package import name`, the submodule when `name` is one, else the package)."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    this = module_name(path, root)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != this}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as the chain of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_reports_the_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_graph_sees_lazy_relative_and_from_imports(tmp_path):
    pkg = tmp_path / "spkid" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "spkid" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    from ..top import x\n")
    (pkg / "b.py").write_text("from spkid.sub import a\n")
    (tmp_path / "spkid" / "top.py").write_text("import spkid.sub.b\n")
    (tmp_path / "spkid" / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                 "    from spkid import top\n")
    modules = {"spkid", "spkid.sub", "spkid.sub.a", "spkid.sub.b", "spkid.top", "spkid.typed"}
    assert imported_modules(pkg / "a.py", modules, tmp_path) == {"spkid.sub.b", "spkid.top"}
    assert imported_modules(pkg / "b.py", modules, tmp_path) == {"spkid.sub.a"}
    assert imported_modules(tmp_path / "spkid" / "top.py", modules, tmp_path) == {"spkid.sub.b"}
    assert imported_modules(tmp_path / "spkid" / "typed.py", modules, tmp_path) == set()  # not at run time


def test_spkid_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 100 and "spkid.kaldi.audio" in graph["spkid.kaldi.datadir"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
