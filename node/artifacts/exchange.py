"""Artifact exchange between nodes: who has an artifact, and fetching its chunks from several peers.

Messages (application types 23-26):
- `[23, artifact id]` WANT: who stores this artifact?
- `[24, artifact id, manifest bytes | nil]` HAVE: the manifest, from a node storing all of it;
- `[25, artifact id, [index, ...]]` GET: chunks by index (at most `MAX_GET` per message);
- `[26, artifact id, index, chunk bytes | nil]` CHUNK: one chunk as stored (nil: not here).

Rules of a fetch:
- the holders are the peers that hold the manifest most of them hold (`node.artifacts.peer_requests`);
- the chunks come from all holders in parallel (`node.artifacts.chunk_download`);
- a chunk is kept only if it hashes to the manifest's id for its index. A peer that sends a
  wrong chunk is penalised (`PENALTY_BAD_CHUNK`) and not asked again in this fetch; the
  chunk is asked of another holder;
- chunks are stored as they arrive, and the fetch is recorded in the store, so a restart
  resumes it (stored chunks are not fetched again);
- at the end the whole is hashed against its id before it becomes visible; if it does not
  match, the manifest was wrong and its holders are penalised;
- an erased artifact (tombstone) is only fetched when asked with `force`.

Serving (WANT and GET) is `node.artifacts.serving`; at most `max_fetches` fetches run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.artifact import Manifest, format_id
from core.errors import AichainError, ArtifactErased, CorruptChunk
from core.hashing import sha256
from node.artifacts.chunk_download import download_chunks
from node.artifacts.fetch_status import FetchStatus
from node.artifacts.flight import FetchInFlight
from node.artifacts.peer_requests import PENALTY_BAD_MANIFEST, PeerRequests
from node.artifacts.serving import CHUNK, GET, HAVE, WANT, ArtifactServer
from node.p2p.errors import P2PError
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer
from storage.artifact_io import Digests

if TYPE_CHECKING:
    from node.config import ArtifactsConfig
    from storage.artifact_store import ArtifactStore

log = logging.getLogger("aichain.artifacts")

RESUME_WAIT_S = 60.0  # after a restart, how long interrupted fetches wait for a first peer
PENALTY_BAD_CHUNK = 50.0
NOT_HERE, BAD, GONE = "not here", "bad", "gone"  # why a chunk request gave no chunk


class ArtifactExchange:
    def __init__(
        self,
        store: ArtifactStore,
        manager: PeerManager,
        config: ArtifactsConfig,
        serve_chunk: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.store = store
        self.manager = manager
        self.config = config
        self.status: dict[bytes, FetchStatus] = {}
        self._tasks: dict[bytes, asyncio.Task[Manifest]] = {}
        self.in_flight: dict[bytes, FetchInFlight] = {}  # fetches past finding: their manifest and chunks so far
        self._slots = asyncio.Semaphore(config.max_fetches)
        self._requests = PeerRequests(manager)
        self._background: set[asyncio.Task[Any]] = set()
        self.server = ArtifactServer(self.store, config, self._spawn, serve_chunk)
        self.chunks_fetched = 0
        self.bad_chunks_received = 0

    def register(self) -> None:
        for msg_type, handler in (
            (WANT, self.server.on_want),
            (HAVE, self._requests.on_have),
            (GET, self.server.on_get),
            (CHUNK, self._requests.on_chunk),
        ):
            self.manager.register(msg_type, handler)
        self.manager.on_peer_disconnected(self._on_disconnected)

    def start(self) -> None:
        """Resume the fetches a restart interrupted, once a peer is connected (or after `RESUME_WAIT_S`)."""
        pending = self.store.pending_fetches()
        if pending:
            self._spawn(self._resume([m.id for m in pending]))

    async def _resume(self, artifacts: list[bytes]) -> None:
        deadline = time.monotonic() + RESUME_WAIT_S
        while not self.manager.connected_peers() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # a moment for the other peers to connect too
        for artifact in artifacts:
            log.info("resuming the fetch of %s", format_id(artifact))
            self.start_fetch(artifact)

    async def stop(self) -> None:
        for task in [*self._tasks.values(), *self._background]:
            task.cancel()
        for task in [*self._tasks.values(), *self._background]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- fetching ---------------------------------------------------------------------------

    def start_fetch(self, artifact: bytes, *, pin: bool = True, force: bool = False) -> FetchStatus:
        """Start fetching (or return the fetch under way); its status updates as it goes."""
        task = self._tasks.get(artifact)
        if task is None or task.done():
            self.status[artifact] = FetchStatus(artifact)
            task = asyncio.create_task(self.fetch(artifact, pin=pin, force=force), name=f"fetch-{artifact.hex()[:12]}")
            task.add_done_callback(lambda t: None if t.cancelled() else t.exception())  # retrieved: logged in fetch
            self._tasks[artifact] = task
        return self.status[artifact]

    async def wait(self, artifact: bytes, timeout: float) -> None:
        task = self._tasks.get(artifact)
        if task is not None:
            with contextlib.suppress(TimeoutError, AichainError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout)

    async def fetch(self, artifact: bytes, *, pin: bool = True, force: bool = False) -> Manifest:
        status = self.status.setdefault(artifact, FetchStatus(artifact))
        try:
            manifest = await self._fetch(artifact, status, pin, force)
        except asyncio.CancelledError:
            status.state, status.error, status.ended = "failed", "stopped", time.monotonic()
            raise
        except AichainError as exc:
            status.state, status.error, status.ended = "failed", str(exc), time.monotonic()
            log.warning("fetch of %s failed: %s", format_id(artifact), exc)
            raise
        status.state, status.ended = "done", time.monotonic()
        return manifest

    async def _fetch(self, artifact: bytes, status: FetchStatus, pin: bool, force: bool) -> Manifest:
        if self.store.has(artifact):
            manifest = self.store.manifest(artifact)
            status.size, status.chunks, status.chunks_done = manifest.size, len(manifest.chunks), len(manifest.chunks)
            return manifest
        if self.store.is_erased(artifact) and not force:
            raise ArtifactErased(f"{format_id(artifact)} was erased on this node; fetch it with force to get it again")
        async with self._slots:
            manifest, holders = await self._requests.find(artifact)
            status.size, status.chunks, status.state = manifest.size, len(manifest.chunks), "fetching"
            missing = await asyncio.to_thread(self.store.begin_fetch, manifest)
            status.chunks_done = len(manifest.chunks) - len(missing)
            digests = None if manifest.encrypted else Digests(manifest)
            flight = self.in_flight[artifact] = FetchInFlight(manifest, set(range(len(manifest.chunks))) - set(missing))
            try:
                await self._download(manifest, holders, missing, status, digests, flight)
                status.state = "checking"
                verdict = None if digests is None else digests.matches()
                try:
                    await asyncio.to_thread(self.store.finish_fetch, manifest, pin=pin, digest_ok=verdict)
                except CorruptChunk:
                    for peer in holders:
                        peer.penalize(PENALTY_BAD_MANIFEST, "bad manifest: its chunks do not make the artifact")
                    raise
            except BaseException as exc:
                flight.end(str(exc) or type(exc).__name__)
                with contextlib.suppress(Exception):
                    self.store.end_fetch(manifest)  # its stored chunks stay (until gc) for the next attempt
                raise
            finally:
                if not flight.ended:
                    flight.end()
                self.in_flight.pop(artifact, None)
        log.info("fetched %s (%d bytes) from %s", manifest.artifact_id, manifest.size, status.from_peers)
        return manifest

    async def repair(self, artifact: bytes, bad: list[int]) -> list[int]:
        """Fetch again, from peers storing the same manifest, chunks found damaged here; the indexes repaired."""
        manifest = self.store.manifest(artifact)
        _, holders = await self._requests.find(artifact, expected=manifest)
        await self._download(manifest, holders, list(bad), FetchStatus(artifact))
        log.info("repaired chunks %s of %s from peers", bad, manifest.artifact_id)
        return list(bad)

    async def _download(
        self,
        manifest: Manifest,
        holders: list[Peer],
        missing: list[int],
        status: FetchStatus,
        digests: Digests | None = None,
        flight: FetchInFlight | None = None,
    ) -> None:
        """Fetch the `missing` chunks from `holders`; with `digests`, hash the plaintext in order meanwhile."""
        get = functools.partial(self._request, manifest=manifest, status=status)
        read = functools.partial(self.store.chunks.read, verify=False)
        await download_chunks(manifest, holders, missing, get, read, digests, flight)

    async def _request(self, peer: Peer, index: int, *, manifest: Manifest, status: FetchStatus) -> str | bytes:
        """Ask `peer` for one chunk and store it: its bytes, or why not (GONE, NOT_HERE, BAD)."""
        try:
            data = await self._requests.chunk(peer, manifest.id, index)
        except (TimeoutError, P2PError):
            return GONE
        if data is None:
            return NOT_HERE
        chunk_id = manifest.chunks[index]
        if len(data) != manifest.stored_size(index) or not await asyncio.to_thread(_hashes_to, data, chunk_id):
            self.bad_chunks_received += 1
            peer.penalize(PENALTY_BAD_CHUNK, f"bad chunk: {index} of {manifest.artifact_id} does not match its id")
            log.warning("peer %s sent a wrong chunk %d of %s; asking another", peer, index, manifest.artifact_id)
            return BAD
        await asyncio.to_thread(self.store.put_chunk, chunk_id, data)
        status.chunks_done += 1
        status.bytes_fetched += len(data)
        self.chunks_fetched += 1
        name = "0x" + peer.node_key.hex()
        status.from_peers[name] = status.from_peers.get(name, 0) + 1
        return data

    def counters(self) -> dict[str, Any]:
        """What /metrics shows of the exchange."""
        fetches: dict[str, int] = {}
        for status in self.status.values():
            fetches[status.state] = fetches.get(status.state, 0) + 1
        return {
            "chunks_served": self.server.chunks_served,
            "chunks_fetched": self.chunks_fetched,
            "bad_chunks": self.bad_chunks_received,
            "fetches": fetches,
        }

    def _on_disconnected(self, peer: Peer) -> None:
        self._requests.peer_gone(peer)
        self.server.peer_gone(peer)


def _hashes_to(data: bytes, chunk_id: bytes) -> bool:
    return sha256(data) == chunk_id
