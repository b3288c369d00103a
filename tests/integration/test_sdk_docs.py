"""Every Python example in docs/sdk.md runs, as written, against a real dev node."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import NodeProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_example_runs(shared_node: NodeProcess, index: int) -> None:
    code = EXAMPLES[index].replace('"http://127.0.0.1:8545"', repr(shared_node.url))
    assert repr(shared_node.url) in code, "the example should talk to URL = 'http://127.0.0.1:8545'"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"example {index + 1} of docs/sdk.md failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), "every example prints what it did"
