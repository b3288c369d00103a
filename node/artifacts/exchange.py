"""Artifact exchange between nodes: who has an artifact, and fetching its chunks from several peers.

Messages (application types 23-26):
- `[23, artifact id]` WANT: who stores this artifact?
- `[24, artifact id, manifest bytes | nil]` HAVE: the manifest, from a node storing all of it;
- `[25, artifact id, [index, ...]]` GET: chunks by index (at most `MAX_GET` per message);
- `[26, artifact id, index, chunk bytes | nil]` CHUNK: one chunk as stored (nil: not here).

Rules of a fetch:
- WANT goes to every connected peer; the manifests that come back are decoded and checked
  (id, Merkle root, chunk count). If peers disagree, the manifest most of them hold is used
  and they are its holders;
- each holder has up to `WINDOW` chunks outstanding, so the chunks come from all holders in
  parallel; a request unanswered within `REQUEST_TIMEOUT_S` goes to another holder;
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
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core import codec
from core.artifact import Manifest, format_id
from core.errors import AichainError, ArtifactErased, ArtifactError, ArtifactNotFound, CorruptChunk, DecodeError
from core.hashing import sha256
from node.artifacts.flight import FetchInFlight
from node.artifacts.serving import CHUNK, GET, HAVE, PENALTY_MALFORMED, WANT, ArtifactServer
from node.p2p.errors import P2PError
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer
from storage.artifact_io import Digests

if TYPE_CHECKING:
    from node.config import ArtifactsConfig
    from storage.artifact_store import ArtifactStore

log = logging.getLogger("aichain.artifacts")

WINDOW = 4
FIND_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
RESUME_WAIT_S = 60.0  # after a restart, how long interrupted fetches wait for a first peer
PENALTY_BAD_CHUNK = 50.0
PENALTY_BAD_MANIFEST = 50.0
PENALTY_UNREQUESTED = 5.0  # a late answer to a request that timed out costs little; a flood adds up
NOT_HERE, BAD, GONE = "not here", "bad", "gone"  # why a chunk request gave no chunk
HASH_AHEAD_BYTES = 64 * 1024 * 1024  # fetched chunks kept in memory until the in-order digest reaches them


@dataclass(slots=True)
class FetchStatus:
    artifact: bytes
    state: str = "finding"  # finding, fetching, checking, done, failed
    size: int = 0
    chunks: int = 0
    chunks_done: int = 0
    bytes_fetched: int = 0
    error: str = ""
    from_peers: dict[str, int] = field(default_factory=dict)  # peer node key -> chunks it sent that were kept
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None  # when it was done or failed: its seconds stop there

    def to_json(self) -> dict[str, Any]:
        elapsed = max((self.ended or time.monotonic()) - self.started, 1e-9)
        return {"id": format_id(self.artifact), "state": self.state, "size": self.size, "chunks": self.chunks,
                "chunks_done": self.chunks_done, "bytes_fetched": self.bytes_fetched, "error": self.error,
                "from_peers": dict(self.from_peers), "seconds": round(elapsed, 3),
                "bytes_per_s": round(self.bytes_fetched / elapsed)}  # fmt: skip


class ArtifactExchange:
    def __init__(
        self, store: ArtifactStore, manager: PeerManager, config: ArtifactsConfig,
        serve_chunk: Callable[[bytes], bytes] | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.manager = manager
        self.config = config
        self.status: dict[bytes, FetchStatus] = {}
        self._tasks: dict[bytes, asyncio.Task[Manifest]] = {}
        self.in_flight: dict[bytes, FetchInFlight] = {}  # fetches past finding: their manifest and chunks so far
        self._slots = asyncio.Semaphore(config.max_fetches)
        self._answers: dict[bytes, tuple[dict[bytes, bytes | None], asyncio.Event]] = {}
        self._waiting: dict[tuple[bytes, int, bytes], asyncio.Future[bytes | None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.server = ArtifactServer(self.store, config, self._spawn, serve_chunk)
        self.chunks_fetched = 0
        self.bad_chunks_received = 0

    def register(self) -> None:
        for msg_type, handler in ((WANT, self.server.on_want), (HAVE, self._on_have), (GET, self.server.on_get),
                                  (CHUNK, self._on_chunk)):  # fmt: skip
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
            manifest, holders = await self._find(artifact)
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
        _, holders = await self._find(artifact, expected=manifest)
        await self._download(manifest, holders, list(bad), FetchStatus(artifact))
        log.info("repaired chunks %s of %s from peers", bad, manifest.artifact_id)
        return list(bad)

    async def _find(self, artifact: bytes, expected: Manifest | None = None) -> tuple[Manifest, list[Peer]]:
        peers = self.manager.connected_peers()
        if not peers:
            raise ArtifactNotFound(f"{format_id(artifact)} is not stored here and no peer is connected to ask")
        answers: dict[bytes, bytes | None] = {}
        event = asyncio.Event()
        self._answers[artifact] = (answers, event)
        try:
            asked = 0
            for peer in peers:
                with contextlib.suppress(P2PError):
                    await peer.send(WANT, [WANT, artifact])
                    asked += 1
            deadline = time.monotonic() + FIND_TIMEOUT_S
            while len(answers) < asked and time.monotonic() < deadline:
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), deadline - time.monotonic())
                if any(raw is not None for raw in answers.values()) and len(answers) >= asked:
                    break
        finally:
            self._answers.pop(artifact, None)
        groups: dict[bytes, list[Peer]] = {}
        manifests: dict[bytes, Manifest] = {}
        for node_key, raw in answers.items():
            peer = self.manager.peer(node_key)
            if raw is None or peer is None:
                continue
            try:
                manifest = Manifest.decode(raw)
            except DecodeError as exc:
                peer.penalize(PENALTY_MALFORMED, f"malformed: manifest: {exc}")
                continue
            if manifest.id != artifact:
                peer.penalize(PENALTY_BAD_MANIFEST, "bad manifest: for another artifact")
                continue
            if expected is not None and manifest != expected:
                continue
            groups.setdefault(raw, []).append(peer)
            manifests[raw] = manifest
        if not groups:
            raise ArtifactNotFound(f"none of the {asked} connected peers stores {format_id(artifact)}")
        best = max(groups, key=lambda raw: len(groups[raw]))
        return manifests[best], groups[best]

    async def _download(
        self, manifest: Manifest, holders: list[Peer], missing: list[int], status: FetchStatus,
        digests: Digests | None = None, flight: FetchInFlight | None = None,
    ) -> None:  # fmt: skip
        """Fetch the `missing` chunks from `holders`; with `digests`, hash the plaintext in order meanwhile
        (as soon as each next chunk is on disk), so no second pass is needed. Chunks that arrive ahead
        of their turn are kept in memory for it, up to `HASH_AHEAD_BYTES` (beyond, they are read back)."""
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
                outcome = await self._request(peer, manifest, index, status)
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

        async def hash_in_order() -> None:
            nonlocal arrived_bytes
            assert digests is not None
            for index, chunk_id in enumerate(manifest.chunks):
                while index not in on_disk:
                    stored.clear()
                    await stored.wait()
                data = arrived.pop(index, None)
                if data is not None:
                    arrived_bytes -= len(data)
                else:
                    data = await asyncio.to_thread(self.store.chunks.read, chunk_id, verify=False)
                await asyncio.to_thread(digests.update, data)

        hasher = asyncio.create_task(hash_in_order()) if digests is not None else None
        try:
            await asyncio.gather(*(lane(peer) for peer in holders for _ in range(WINDOW)))
            if remaining > 0:
                raise ArtifactError(f"{remaining} chunks of {manifest.artifact_id} could not be fetched: no holder "
                                    "left (the chunks fetched so far are kept; fetching again resumes)")  # fmt: skip
            if hasher is not None:
                await hasher
        finally:
            if hasher is not None and not hasher.done():
                hasher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hasher

    async def _request(self, peer: Peer, manifest: Manifest, index: int, status: FetchStatus) -> str | bytes:
        """Ask `peer` for one chunk and store it: its bytes, or why not (GONE, NOT_HERE, BAD)."""
        key = (manifest.id, index, peer.node_key)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await peer.send(GET, [GET, manifest.id, [index]])
            data = await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        except (TimeoutError, P2PError):
            return GONE
        finally:
            self._waiting.pop(key, None)
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
        return {"chunks_served": self.server.chunks_served, "chunks_fetched": self.chunks_fetched,
                "bad_chunks": self.bad_chunks_received, "fetches": fetches}  # fmt: skip

    # --- answers to our requests ------------------------------------------------------------

    async def _on_have(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, HAVE, 3, "have")
            artifact = codec.expect_bytes(items[1], "artifact id", 32)
            raw = None if items[2] is None else codec.expect_bytes(items[2], "manifest", max_size=64 * 1024 * 1024)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        waiting = self._answers.get(artifact)
        if waiting is not None:
            waiting[0][peer.node_key] = raw
            waiting[1].set()

    async def _on_chunk(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, CHUNK, 4, "chunk")
            artifact = codec.expect_bytes(items[1], "artifact id", 32)
            index = codec.expect_uint(items[2], "chunk index")
            data = None if items[3] is None else codec.expect_bytes(items[3], "chunk")
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        future = self._waiting.pop((artifact, index, peer.node_key), None)
        if future is None:  # not asked (or asked and given up on): chunks are exempt from the byte rate limit
            peer.penalize(PENALTY_UNREQUESTED, "unrequested chunk")
        elif not future.done():
            future.set_result(data)

    def _on_disconnected(self, peer: Peer) -> None:
        for key in [k for k in self._waiting if k[2] == peer.node_key]:
            future = self._waiting.pop(key)
            if not future.done():
                future.set_exception(TimeoutError("peer disconnected"))
        self.server.peer_gone(peer)


def _hashes_to(data: bytes, chunk_id: bytes) -> bool:
    return sha256(data) == chunk_id
