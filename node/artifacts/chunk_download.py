"""Fetching the missing chunks of one manifest from several holders at once.

Rules:
- each holder has up to `WINDOW` chunks outstanding, so the chunks come from all holders in
  parallel;
- a holder that gives no chunk for a request (gone, not there, or a wrong one) is not asked
  again in this download; the chunk goes back to the front of the queue for another holder;
- with `digests`, the plaintext is hashed in order meanwhile, as soon as each next chunk is on
  disk, so no second pass is needed. Chunks that arrive ahead of their turn are kept in memory
  for it, up to `HASH_AHEAD_BYTES` (beyond, they are read back);
- when no holder is left and chunks are still missing, it fails; the chunks fetched so far are
  kept, and fetching again resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

from core.artifact import Manifest
from core.errors import ArtifactError
from node.artifacts.flight import FetchInFlight
from node.p2p.peer import Peer
from storage.artifact_io import Digests

WINDOW = 4
HASH_AHEAD_BYTES = 64 * 1024 * 1024  # fetched chunks kept in memory until the in-order digest reaches them

GetChunk = Callable[[Peer, int], Awaitable[bytes | str]]  # chunk `index` from `peer`, stored: its bytes, or why not
ReadChunk = Callable[[bytes], bytes]  # a stored chunk by id, read back unchecked (it was checked on arrival)


async def download_chunks(
    manifest: Manifest,
    holders: list[Peer],
    missing: list[int],
    get: GetChunk,
    read: ReadChunk,
    digests: Digests | None = None,
    flight: FetchInFlight | None = None,
) -> None:
    """Fetch the `missing` chunks of `manifest` from `holders`; `flight` is told of each one stored."""
    queue = deque(missing)
    remaining = len(missing)
    changed = asyncio.Event()
    usable = {peer.node_key for peer in holders}
    on_disk = set(range(len(manifest.chunks))) - set(missing)
    stored = asyncio.Event()
    arrived: dict[int, bytes] = {}  # fetched chunks not hashed yet, by index
    arrived_bytes = 0

    async def lane(peer: Peer) -> None:
        nonlocal remaining, arrived_bytes
        while remaining > 0 and peer.node_key in usable:
            if not queue:
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 1.0)
                continue
            index = queue.popleft()
            outcome = await get(peer, index)
            if not isinstance(outcome, str):
                if digests is not None and arrived_bytes + len(outcome) <= HASH_AHEAD_BYTES:
                    arrived[index] = outcome
                    arrived_bytes += len(outcome)
                remaining -= 1
                on_disk.add(index)
                stored.set()
                if flight is not None:
                    flight.stored(index, outcome)
            else:
                queue.appendleft(index)
                usable.discard(peer.node_key)
            changed.set()

    async def hash_in_order(digests: Digests) -> None:
        nonlocal arrived_bytes
        for index, chunk_id in enumerate(manifest.chunks):
            while index not in on_disk:
                stored.clear()
                await stored.wait()
            data = arrived.pop(index, None)
            if data is not None:
                arrived_bytes -= len(data)
            else:
                data = await asyncio.to_thread(read, chunk_id)
            await asyncio.to_thread(digests.update, data)

    hasher = asyncio.create_task(hash_in_order(digests)) if digests is not None else None
    try:
        await asyncio.gather(*(lane(peer) for peer in holders for _ in range(WINDOW)))
        if remaining > 0:
            raise ArtifactError(
                f"{remaining} chunks of {manifest.artifact_id} could not be fetched: no holder "
                "left (the chunks fetched so far are kept; fetching again resumes)"
            )
        if hasher is not None:
            await hasher
    finally:
        if hasher is not None and not hasher.done():
            hasher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hasher
