from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aichain_node import aclient
from tests.harness import NodeProcess


@pytest.fixture(autouse=True)
def model_files_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the SDK keeps on the user's machine (pulled models, publishers' content keys) stays in the test's tmp:
    the defaults of the clients a test makes, and the environment of the CLI commands it runs."""
    monkeypatch.setattr(aclient, "DEFAULT_MODEL_CACHE_DIR", tmp_path / "model-cache")
    monkeypatch.setattr(aclient, "DEFAULT_CONTENT_KEY_DIR", tmp_path / "content-keys")
    monkeypatch.setenv("AICHAIN_MODEL_CACHE", str(tmp_path / "model-cache"))
    monkeypatch.setenv("AICHAIN_CONTENT_KEYS", str(tmp_path / "content-keys"))


@pytest.fixture
def dev_node(tmp_path: Path) -> Iterator[NodeProcess]:
    """A running single-validator dev node (block time 200 ms), stopped after the test."""
    node = NodeProcess(tmp_path, block_time_ms=200)
    with node:
        yield node
