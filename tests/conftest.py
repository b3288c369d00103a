from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import NodeProcess


@pytest.fixture
def dev_node(tmp_path: Path) -> Iterator[NodeProcess]:
    """A running single-validator dev node (block time 200 ms), stopped after the test."""
    node = NodeProcess(tmp_path, block_time_ms=200)
    with node:
        yield node
