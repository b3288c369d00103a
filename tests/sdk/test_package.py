"""`aichain_node` is a package of its own that stands on `core` alone: a notebook or an ML service that
imports it gets no part of the server (node/, storage/, vm/, consensus/, cli/)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import setuptools

import aichain_node

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "aichain_node"
SERVER = ("node", "storage", "vm", "consensus", "cli")
SUBMODULES = sorted(m.name for m in pkgutil.walk_packages(aichain_node.__path__, "aichain_node."))


def fresh_interpreter(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`code` in a new interpreter of this venv, run outside the repository: only what is installed imports."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_package_is_built_into_the_distribution() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "aichain_node" in setuptools.find_packages(where=str(ROOT), include=include)


def test_the_sdk_imports_without_the_server(tmp_path: Path) -> None:
    # The acceptance command of issue 19, word for word, then the import of every submodule of the package.
    done = fresh_interpreter(
        "import aichain_node, sys; assert not any(m.split('.')[0] in ('node','storage') for m in sys.modules)", tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert len(SUBMODULES) >= 13, SUBMODULES
    check = (
        "import importlib, sys\n"
        "from aichain_node import AsyncClient, Client\n"
        f"for name in {SUBMODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(importlib.import_module('aichain_node').__file__)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(SERVER)!r}))\n"
    )
    done = fresh_interpreter(check, tmp_path)
    assert done.returncode == 0, done.stderr
    where, server = done.stdout.splitlines()
    assert Path(where).parent == PACKAGE  # the package of this tree, not a copy elsewhere
    assert server == "[]", f"importing aichain_node loads server packages: {server}"


def test_no_import_in_the_package_names_the_server() -> None:
    """Also the imports inside functions, which an import at start-up does not run."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.name}:{node.lineno} {n}" for n in names if n.partition(".")[0] in SERVER]
    assert found == [], f"aichain_node depends on core only: {found}"
