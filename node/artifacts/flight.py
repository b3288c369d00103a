"""An artifact being fetched from peers, as far as it has come: which chunks are on disk here.

A fetch publishes one of these while it runs, so a reader can stream the stored chunks in order
as they land (`GET /artifacts/{id}/stored?follow=true`) instead of waiting for the whole fetch:
the transfer to the node and the transfer from it overlap. Nothing read this way is vouched for
by the node beyond each chunk's own id (checked on arrival, and again when it is read back from
disk); the reader checks the whole against the id it trusts, as it does for any stored download.

While someone follows, the chunks that just arrived are kept in memory for them too, up to
`HANDOFF_BYTES`: a follower that keeps up takes each chunk from there instead of reading back
(and hashing again) what was written a moment before. One that falls behind reads from disk.
"""

from __future__ import annotations

import asyncio

from core.artifact import Manifest

HANDOFF_BYTES = 64 * 1024 * 1024  # chunks kept in memory for followers, at most


class FetchInFlight:
    def __init__(self, manifest: Manifest, on_disk: set[int]) -> None:
        self.manifest = manifest
        self.on_disk = set(on_disk)
        self.ended = False
        self.error = ""
        self.followers = 0
        self._handoff: dict[int, bytes] = {}  # stored chunks (checked on arrival) no follower took yet
        self._handoff_bytes = 0
        self._changed = asyncio.Event()

    def stored(self, index: int, data: bytes | None = None) -> None:
        """Chunk `index` is on disk; `data`, its bytes as checked on arrival, may be handed to a follower."""
        self.on_disk.add(index)
        if data is not None and self.followers and self._handoff_bytes + len(data) <= HANDOFF_BYTES:
            self._handoff[index] = data
            self._handoff_bytes += len(data)
        self._wake()

    def take(self, index: int) -> bytes | None:
        """The bytes of stored chunk `index` if they are still in memory (then no longer), else None."""
        data = self._handoff.pop(index, None)
        if data is not None:
            self._handoff_bytes -= len(data)
        return data

    def follow(self) -> None:
        self.followers += 1

    def unfollow(self) -> None:
        self.followers -= 1
        if not self.followers:
            self._handoff.clear()
            self._handoff_bytes = 0

    def end(self, error: str = "") -> None:
        self.ended, self.error = True, error
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()  # later waiters wait for the next change

    async def wait_for(self, index: int, timeout: float) -> bool:
        """Wait until chunk `index` is on disk (True), or the fetch ended without it (False).

        TimeoutError if nothing at all changed for `timeout` seconds."""
        while index not in self.on_disk:
            if self.ended:
                return False
            await asyncio.wait_for(self._changed.wait(), timeout)
        return True


__all__ = ["FetchInFlight"]
