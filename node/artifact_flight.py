"""An artifact being fetched from peers, as far as it has come: which chunks are on disk here.

A fetch publishes one of these while it runs, so a reader can stream the stored chunks in order
as they land (`GET /artifacts/{id}/stored?follow=true`) instead of waiting for the whole fetch:
the transfer to the node and the transfer from it overlap. Nothing read this way is vouched for
by the node beyond each chunk's own id (checked on arrival and again on read); the reader checks
the whole against the id it trusts, as it does for any stored download.
"""

from __future__ import annotations

import asyncio

from core.artifact import Manifest


class FetchInFlight:
    def __init__(self, manifest: Manifest, on_disk: set[int]) -> None:
        self.manifest = manifest
        self.on_disk = set(on_disk)
        self.ended = False
        self.error = ""
        self._changed = asyncio.Event()

    def stored(self, index: int) -> None:
        self.on_disk.add(index)
        self._wake()

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
