"""Views at the head are remembered until the head moves, never across heads, never with a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.system_addresses import INFERENCE, KEYS
from node.artifacts import head_view
from node.artifacts.head_view import MEMO_ENTRIES, HeadView
from node.chain import Chain
from storage.kv import KeyValueStore
from tests.node.test_chain import GENESIS, VALIDATOR, commit_of


def test_a_view_is_run_once_per_head_and_again_when_the_head_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[tuple[Any, ...]] = []
    real = head_view.run_call

    def counting(*args: Any) -> Any:
        runs.append(args[4:6])
        return real(*args)

    monkeypatch.setattr(head_view, "run_call", counting)
    kv = KeyValueStore(tmp_path / "db")
    try:
        chain = Chain(kv, GENESIS)
        view = HeadView(chain, chain.chain_id)
        first = view(KEYS, "releaser_of", "some-model")
        assert [view(KEYS, "releaser_of", "some-model") for _ in range(50)] == [first] * 50
        assert len(runs) == 1
        view(KEYS, "releaser_of", "another-model")
        assert len(runs) == 2  # another call is another answer
        view(KEYS, "releaser_of", "some-model", time_ms=chain.head.timestamp_ms + 1)
        assert len(runs) == 3  # asked at a time of its own: never remembered
        pending = chain.build([], VALIDATOR.address, chain.head.timestamp_ms + 1000)
        chain.commit(pending, commit_of(pending.block.header))
        assert view(KEYS, "releaser_of", "some-model") == first
        assert len(runs) == 4  # the head moved: asked again
    finally:
        kv.close()


def test_a_remembered_list_comes_back_as_a_copy_and_the_memo_is_bounded(tmp_path: Path) -> None:
    kv = KeyValueStore(tmp_path / "db")
    try:
        chain = Chain(kv, GENESIS)
        view = HeadView(chain, chain.chain_id)
        answer = view(INFERENCE, "receipts_of", "some-model", 1, 1, 10)
        assert answer == []
        answer.append("changed by the caller")
        assert view(INFERENCE, "receipts_of", "some-model", 1, 1, 10) == []
        for i in range(MEMO_ENTRIES + 10):
            view(KEYS, "releaser_of", f"m{i}")
        assert len(view._memo) <= MEMO_ENTRIES
    finally:
        kv.close()
