#!/usr/bin/env python3
"""The import rules of this repository, checked on the source (with `ast`; nothing is imported).

1. Floors: a package imports only the packages below it, core < storage < vm < consensus < node
   < cli; the SDK (aichain_node) imports core alone.
2. No circle: no module imports, directly or through others, a module that imports it. Every
   import counts, inside functions and under `if TYPE_CHECKING:` too: a circle dodged that way
   is still a knot (one part reaching back into another). `KNOWN_TYPE_EDGES` lists the few
   annotation-only imports that close a circle today, each with its reason, for their floors'
   owners to remove; any other circle fails.
3. Only the composition root's callers import it: `node.node` is imported by the CLI, by the
   benchmarks that run a node in-process, and by tests; every other part takes what it needs in
   its constructor.

Usage: python tools/check_imports.py [ROOT]. Exit 1, with one line per breach, if a rule is broken.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

FLOORS = ["core", "storage", "vm", "consensus", "node", "cli"]  # lowest first
ONLY_CORE = {"aichain_node"}  # the SDK stands on core alone
SCANNED = [*FLOORS, *ONLY_CORE, "tests", "tools"]
ROOT_MODULE = "node.node"
# Imports under `if TYPE_CHECKING:` that close a circle, tolerated for now, and why they are there.
KNOWN_TYPE_EDGES = {
    ("vm.builtins", "vm.interpreter"): "a builtin is handed the interpreter that runs it",
    ("vm.operations", "vm.interpreter"): "an operation is handed the interpreter that runs it",
}
MAY_IMPORT_ROOT = ("cli", "node.bench", "tests")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_imports(tree: ast.AST) -> set[ast.AST]:
    """The import statements under `if TYPE_CHECKING:` (annotations only)."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
        if name == "TYPE_CHECKING":
            for stmt in node.body:
                found.update(n for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom))
    return found


def imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str, tuple[str, ...], bool]]:
    """(line, imported module, names taken from it, annotations only?) for every import in `tree`."""
    type_only = _type_checking_imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, (), node in type_only
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            yield node.lineno, base, tuple(alias.name for alias in node.names), node in type_only


def resolve(target: str, names: tuple[str, ...], known: set[str]) -> set[str]:
    """The project modules an import brings in: `from pkg import mod` names the module pkg.mod."""
    found = {f"{target}.{name}" for name in names if f"{target}.{name}" in known}
    if len(found) < len(names) or not names:
        parts = target.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        if parts:
            found.add(".".join(parts))
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
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
                    if len(component) > 1 or node in graph[node]:
                        found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def path_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One circle through the component's first module, to show in the report."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return component


def check(root: Path) -> list[str]:
    paths = [p for top in SCANNED if (root / top).is_dir() for p in sorted((root / top).rglob("*.py"))]
    files = {module_name(root, p): p for p in paths}
    known = set(files)
    graph: dict[str, set[str]] = {m: set() for m in files}
    breaches: list[str] = []
    for module, path in files.items():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError) as exc:
            breaches.append(f"{path.relative_to(root)}: cannot parse ({type(exc).__name__})")
            continue
        top = module.split(".")[0]
        for line, target, names, type_only in imports(tree, module, path.name == "__init__.py"):
            where = f"{path.relative_to(root)}:{line}"
            floor = target.split(".")[0]
            if top in FLOORS and floor in FLOORS and FLOORS.index(floor) > FLOORS.index(top):
                breaches.append(f"{where}: {top}/ imports {floor}/, a higher floor")
            if top in ONLY_CORE and floor in (*FLOORS, *ONLY_CORE) and floor not in ("core", top):
                breaches.append(f"{where}: {top}/ imports {floor}/; it may import core/ alone")
            for imported in resolve(target, names, known):
                if imported != module and not (type_only and (module, imported) in KNOWN_TYPE_EDGES):
                    graph[module].add(imported)
                if imported == ROOT_MODULE and module != ROOT_MODULE and not module.startswith(MAY_IMPORT_ROOT):
                    breaches.append(f"{where}: {module} imports {ROOT_MODULE}; take what it needs in the constructor")
    for component in circles(graph):
        breaches.append(f"import circle: {' -> '.join(path_within(graph, component))}")
    return breaches


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    breaches = check(root)
    for line in breaches:
        print(line)
    if breaches:
        print(f"{len(breaches)} import rule(s) broken (see tools/check_imports.py)")
        return 1
    print("imports: down the floors, no circle, node.node only from the CLI, benchmarks and tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
