"""tools/check_imports.py, the import rules `make lint` keeps: the repository passes, and each rule
fails on a small tree that breaks it (a circle dodged inside a function or under TYPE_CHECKING
included)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "check_imports.py"


def run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), str(root)], capture_output=True, text=True, timeout=60)


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for parent in path.relative_to(root).parents:
            if parent != Path(".") and not (root / parent / "__init__.py").exists():
                (root / parent / "__init__.py").write_text("")
    return root


def test_the_repository_keeps_its_import_rules() -> None:
    result = run(ROOT)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"node/a.py": "import node.b\n", "node/b.py": "from node import a\n"},
            "import circle: node.a -> node.b -> node.a",
        ),
        (
            {"node/a.py": "def f():\n    from node.b import g\n", "node/b.py": "from node.a import f\n"},
            "import circle: node.a -> node.b -> node.a",
        ),  # dodged inside a function
        (
            {
                "node/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from node.b import B\n",
                "node/b.py": "from node.a import A\n",
            },
            "import circle: node.a -> node.b -> node.a",
        ),  # dodged under TYPE_CHECKING
        (
            {
                "node/node.py": "class Node: ...\n",
                "node/part.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from node.node import Node\n",
            },
            "node/part.py:3: node.part imports node.node",
        ),
        (
            {"storage/kv.py": "from node import config\n", "node/config.py": ""},
            "storage/ imports node/, a higher floor",
        ),
        ({"aichain_node/client.py": "from node.rpc import x\n", "node/rpc/x.py": ""}, "it may import core/ alone"),
    ],
)
def test_each_rule_fails_on_a_tree_that_breaks_it(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    result = run(tree(tmp_path, files))
    assert result.returncode == 1 and expected in result.stdout, result.stdout


def test_the_cli_benchmarks_and_tests_may_import_the_composition_root(tmp_path: Path) -> None:
    files = {
        "node/node.py": "class Node: ...\n",
        "cli/start.py": "from node.node import Node\n",
        "node/bench/tps.py": "from node.node import Node\n",
        "tests/test_x.py": "from node.node import Node\n",
    }
    result = run(tree(tmp_path, files))
    assert result.returncode == 0, result.stdout
