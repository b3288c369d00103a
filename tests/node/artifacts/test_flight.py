"""A fetch in flight hands the chunks that just arrived to whoever follows it, within a memory cap."""

from __future__ import annotations

import hashlib

from core.artifact import KIND_FILE, Manifest
from node.artifacts.flight import HANDOFF_BYTES, FetchInFlight

CHUNK = 4 * 1024 * 1024


def flight(chunks: int) -> FetchInFlight:
    ids = tuple(hashlib.sha256(bytes([i])).digest() for i in range(chunks))
    return FetchInFlight(Manifest(b"\1" * 32, KIND_FILE, chunks * CHUNK, CHUNK, ids), set())


def test_without_followers_nothing_is_kept() -> None:
    fetch = flight(3)
    fetch.stored(0, b"a" * CHUNK)
    assert 0 in fetch.on_disk and fetch.take(0) is None


def test_a_follower_takes_each_chunk_once_and_the_rest_is_read_from_disk() -> None:
    fetch = flight(3)
    fetch.follow()
    fetch.stored(0, b"a" * 10)
    fetch.stored(1)  # stored without its bytes (e.g. found on disk when the fetch resumed)
    assert fetch.take(0) == b"a" * 10
    assert fetch.take(0) is None and fetch.take(1) is None


def test_the_handoff_never_holds_more_than_its_cap_and_is_dropped_when_nobody_follows() -> None:
    count = HANDOFF_BYTES // CHUNK + 3
    fetch = flight(count)
    fetch.follow()
    for index in range(count):
        fetch.stored(index, bytes(CHUNK))
    kept = [index for index in range(count) if fetch.take(index) is not None]
    assert kept == list(range(HANDOFF_BYTES // CHUNK))  # the first ones, up to the cap; later ones from disk
    fetch.stored(0, bytes(CHUNK))
    fetch.unfollow()
    assert fetch.take(0) is None
