"""Where the SDK keeps things on this machine is the client's to say (`model_cache_dir`, `content_key_dir`),
with documented defaults; no environment variable is read for it, at construction or later."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aichain_node import AsyncClient, Client, aclient
from aichain_node.content_keys import key_file, load_content_key, save_content_key

ARTIFACT = bytes(range(32))


def test_the_defaults_are_under_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the suite's own defaults (tests/conftest.py) are set aside: the shipped ones
    assert str(aclient.DEFAULT_MODEL_CACHE_DIR) == "~/.aichain/models"
    assert str(aclient.DEFAULT_CONTENT_KEY_DIR) == "~/.aichain/content-keys"
    client = AsyncClient("http://127.0.0.1:1")
    assert client.model_cache_dir == Path.home() / ".aichain" / "models"
    assert client.content_key_dir == Path.home() / ".aichain" / "content-keys"


def test_given_directories_are_used_and_no_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AICHAIN_MODEL_CACHE", str(tmp_path / "env-models"))
    monkeypatch.setenv("AICHAIN_CONTENT_KEYS", str(tmp_path / "env-keys"))
    dirs = {"model_cache_dir": tmp_path / "models", "content_key_dir": str(tmp_path / "keys")}
    with Client("http://127.0.0.1:1", **dirs) as node:
        assert node.aio.model_cache_dir == tmp_path / "models"
        assert node.aio.content_key_dir == tmp_path / "keys"
        assert node.aio.models.cache_path("net", 2, False) == tmp_path / "models" / "net" / "2" / "model.onnx"
        assert node.aio.models.cache_path("net", 2, True) == tmp_path / "models" / "net" / "2" / "model"
    unset = AsyncClient("http://127.0.0.1:1")
    assert unset.model_cache_dir == aclient.DEFAULT_MODEL_CACHE_DIR  # the (test suite's) default, not the variable
    assert os.environ["AICHAIN_MODEL_CACHE"] not in str(unset.models.cache_path("net", 1, False))


def test_a_content_key_is_kept_in_the_directory_named_for_its_owner_only(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    path = save_content_key(keys, ARTIFACT, b"\x07" * 32)
    assert path == key_file(keys, ARTIFACT) and path.parent == keys
    assert path.stat().st_mode & 0o777 == 0o600 and keys.stat().st_mode & 0o077 == 0
    assert load_content_key(keys, ARTIFACT) == b"\x07" * 32
    assert load_content_key(tmp_path / "elsewhere", ARTIFACT) is None
    path.write_text("not hex\n")
    assert load_content_key(keys, ARTIFACT) is None
