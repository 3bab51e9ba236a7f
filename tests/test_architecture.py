"""The layering is a checked contract: the import-linter contracts in pyproject.toml hold, no module imports another
in a cycle, and a function-level import of the project's own code says why it is not at the top."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("sleuth", "agent", "tools", "transcripts", "target_models")
WHY = "imported here"


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*ROOMS, include_external_packages=False)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
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
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_no_module_imports_another_in_a_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    g = _graph()
    g.add_import(importer="transcripts.report", imported="transcripts.run")  # run -> ... -> report already
    assert any({"transcripts.report", "transcripts.run"} <= set(c) for c in _cycles(g))


def _late_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of function-level imports of the project's modules that no `imported here` comment explains
    (on the import's line, or on a line above it in the same function)."""
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    bad = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if not any(n.split(".")[0] in ROOMS for n in names):
                continue
            above = lines[fn.lineno - 1 : node.lineno]
            if not any(WHY in ln for ln in above):
                bad.append((node.lineno, names[0]))
    return bad


def test_function_level_imports_of_the_project_say_why():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {mod}" for room in ROOMS for p in sorted((ROOT / room).rglob("*.py"))
           for line, mod in _late_imports(p)]
    assert bad == [], "\n".join(bad)
