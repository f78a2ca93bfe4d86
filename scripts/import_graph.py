"""Print the harness package's internal import graph: which module imports which (module level and lazy).

Usage: python scripts/import_graph.py [--packages]   (--packages folds modules into their subpackage)

Reads the source with `ast`, so nothing is imported and it runs without torch. Ends with the
cycles found (strongly connected groups of more than one module), if any.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "harness"


def module_name(path: Path) -> str:
    parts = ["harness", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def edges(fold: bool) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def group(name: str) -> str:
        return ".".join(name.split(".")[:2]) if fold else name

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("harness"):
                    hit = resolve(target)
                    if hit and group(hit) != group(name):
                        found.add(group(hit))
                        break
        graph.setdefault(group(name), set()).update(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", action="store_true", help="fold modules into their subpackage")
    args = parser.parse_args()
    graph = edges(args.packages)
    for name in sorted(graph):
        print(f"{name} -> {', '.join(sorted(graph[name])) or '(nothing in harness)'}")
    found = cycles(graph)
    print(f"\n{len(graph)} modules, {sum(map(len, graph.values()))} edges, {len(found)} cycle(s)")
    for c in found:
        print("  cycle: " + " <-> ".join(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
