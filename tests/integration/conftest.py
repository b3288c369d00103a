from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import NodeProcess


@pytest.fixture(scope="module")
def shared_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One dev node (block time 200 ms) for all tests of a module that only read or add to its chain.

    Tests using it must not depend on the chain being fresh: each funds its own accounts and
    reads nonces from the node. It is stopped (SIGTERM, then SIGKILL) after the module, even on failure.
    """
    node = NodeProcess(tmp_path_factory.mktemp("node"), block_time_ms=200)
    with node:
        yield node


@pytest.fixture
def cli(shared_node: NodeProcess, tmp_path: Path) -> NodeProcess:
    """The shared node, with the CLI's model cache in this test's directory (`cli.cli(...)` runs a command)."""
    shared_node.env["AICHAIN_MODEL_CACHE"] = str(tmp_path / "cache")
    return shared_node
