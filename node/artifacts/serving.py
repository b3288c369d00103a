"""Serving artifacts to peers: the answers to WANT and GET.

Messages (application types 23-26; the fetching side is `node.artifacts.exchange`):
- `[23, artifact id]` WANT: who stores this artifact?
- `[24, artifact id, manifest bytes | nil]` HAVE: the manifest, from a node storing all of it;
- `[25, artifact id, [index, ...]]` GET: chunks by index (at most `MAX_GET` per message);
- `[26, artifact id, index, chunk bytes | nil]` CHUNK: one chunk as stored (nil: not here).

A node answers WANT only for artifacts it stores whole, and GET with the chunks as stored, each
checked as it is read (a damaged chunk is answered nil, never sent). As stored means an encrypted
artifact's ciphertext: nothing here decrypts, even on the node that keeps the content key (the
plaintext leaves a node only over HTTP, to signed owners and licensees: `node.artifacts.access`).
At most `SERVING_PER_PEER` GETs per peer are served at once, each peer at most
`serve_mb_s_per_peer` (0: no limit). A peer may have at most `MAX_PENDING_CHUNKS` chunks asked
and not yet sent; a GET beyond that is dropped and costs `PENALTY_TOO_MANY` (a fetch keeps 4
requests of one chunk each in flight per holder, 4 fetches at most: 16). Without the bound, 1,500
GETs of 8 chunks each queued 48 GB of reads for one peer, and the node's memory grew with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from core import codec
from core.errors import CorruptChunk, DecodeError
from node.p2p.errors import P2PError
from node.p2p.peer import Peer

if TYPE_CHECKING:
    from node.config import ArtifactsConfig
    from storage.artifact_store import ArtifactStore

log = logging.getLogger("aichain.artifacts")

WANT, HAVE, GET, CHUNK = 23, 24, 25, 26
MAX_GET = 8
SERVING_PER_PEER = 4
MAX_PENDING_CHUNKS = 32
PENALTY_MALFORMED = 20.0
PENALTY_TOO_MANY = 5.0


class _Bucket:
    """A token bucket of bytes per second (0: unlimited), to cap what one peer is sent."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = time.monotonic()

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= n
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


class ArtifactServer:
    """`read_chunk(chunk id)`: a chunk's bytes as stored, checked as they are read (the store's, unless
    a test wires in another)."""

    def __init__(
        self,
        store: ArtifactStore,
        config: ArtifactsConfig,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        read_chunk: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self._spawn = spawn  # runs a task the exchange cancels when it stops
        self.read_chunk = read_chunk or store.chunks.read
        self._slots: dict[bytes, asyncio.Semaphore] = {}
        self._buckets: dict[bytes, _Bucket] = {}
        self._pending: dict[bytes, int] = {}  # peer node key -> chunks asked and not yet sent
        self.chunks_served = 0

    async def on_want(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, WANT, 2, "want")
            artifact = codec.expect_bytes(items[1], "artifact id", 32)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        raw = None
        if self.store.has(artifact):
            raw = self.store.manifest(artifact).encode()
        with contextlib.suppress(P2PError):
            await peer.send(HAVE, [HAVE, artifact, raw])

    async def on_get(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, GET, 3, "get chunks")
            artifact = codec.expect_bytes(items[1], "artifact id", 32)
            if not isinstance(items[2], list) or len(items[2]) > MAX_GET:
                raise DecodeError(f"get chunks: expected an array of at most {MAX_GET} indexes")
            indexes = [codec.expect_uint(i, "chunk index") for i in items[2]]
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        pending = self._pending.get(peer.node_key, 0)
        if pending + len(indexes) > MAX_PENDING_CHUNKS:
            peer.penalize(PENALTY_TOO_MANY, f"too_many_requests: {pending} chunks asked and not yet sent")
            return
        self._pending[peer.node_key] = pending + len(indexes)
        self._spawn(self._serve(peer, artifact, indexes))

    async def _serve(self, peer: Peer, artifact: bytes, indexes: list[int]) -> None:
        try:
            await self._serve_chunks(peer, artifact, indexes)
        finally:
            left = self._pending.get(peer.node_key, 0) - len(indexes)
            if left > 0:
                self._pending[peer.node_key] = left
            else:
                self._pending.pop(peer.node_key, None)

    async def _serve_chunks(self, peer: Peer, artifact: bytes, indexes: list[int]) -> None:
        slots = self._slots.setdefault(peer.node_key, asyncio.Semaphore(SERVING_PER_PEER))
        bucket = self._buckets.setdefault(peer.node_key, _Bucket(self.config.serve_mb_s_per_peer * 1e6))
        async with slots:
            manifest = self.store.manifest(artifact) if self.store.has(artifact) else None
            for index in indexes:
                data = None
                if manifest is not None and index < len(manifest.chunks):
                    try:
                        data = await asyncio.to_thread(self.read_chunk, manifest.chunks[index])
                    except CorruptChunk as exc:
                        log.error("not serving chunk %d of %s: %s", index, manifest.artifact_id, exc)
                if data is not None:
                    await bucket.take(len(data))
                try:
                    await peer.send(CHUNK, [CHUNK, artifact, index, data])
                except P2PError:
                    return
                self.chunks_served += data is not None

    def peer_gone(self, peer: Peer) -> None:
        self._slots.pop(peer.node_key, None)
        self._buckets.pop(peer.node_key, None)
