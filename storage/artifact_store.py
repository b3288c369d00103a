"""The artifact store: content-addressed artifacts as chunk files, their bookkeeping in LevelDB.

Rules:
- an artifact becomes visible only when all its chunks are on disk, fsynced, and its
  manifest, chunk reference counts and pin are committed in one fsynced LevelDB batch; a
  crash before that leaves no trace but stray chunk files, which `gc` removes;
- identical chunks are stored once; a chunk's reference count is the number of stored
  manifests that list it; a chunk file with no references is garbage;
- ingest streams: memory holds a few chunks whatever the file size; the whole-file SHA-256
  is computed on the reading thread while worker threads hash and write chunks (hashlib
  releases the GIL on large buffers);
- every read checks each chunk against its id (`CorruptChunk` names the chunk);
- `gc` drops unpinned artifacts and unreferenced chunk files; `erase` deletes an
  artifact's bytes at once and leaves a tombstone, so the node does not fetch them again
  unless asked.

LevelDB keys (its own database under `<root>/index`):

| prefix | key | value |
|---|---|---|
| `M` | artifact id (32) | encoded manifest |
| `R` | chunk id (32) | reference count (8, big-endian) |
| `P` | artifact id (32) | pinned (empty) |
| `T` | artifact id (32) | tombstone: erase time, ms (8) |
| `F` | artifact id (32) | manifest of a fetch under way (resumed after a restart) |

A fetch from peers (node/artifacts/exchange.py) records its manifest under `F` first, stores
each chunk as it arrives (checked by the caller against the manifest), and `finish_fetch`
re-reads the whole before the artifact becomes visible like an ingested one.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from core.artifact import (
    DEFAULT_CHUNK_SIZE,
    Manifest,
    format_id,
)
from core.clock import now_ms
from core.errors import ArtifactErased, ArtifactError, ArtifactNotFound, CorruptChunk
from core.sealing import decrypt_chunk
from storage.artifact_ingest import Ingest
from storage.artifact_io import (
    Digests,
)
from storage.chunk_store import ChunkStore
from storage.kv import KeyValueStore

MANIFEST = b"M"
REFCOUNT = b"R"
PIN = b"P"
TOMBSTONE = b"T"
FETCHING = b"F"
MANIFEST_CACHE = 256  # decoded manifests kept in memory
WRITERS = 2  # chunk hashing + writing threads next to the reading thread
IN_FLIGHT = 4  # chunks read but not yet written, per ingest (bounds memory)

Progress = Callable[[int], None]  # called with the number of bytes just processed


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    manifest: Manifest
    pinned: bool

    @property
    def id(self) -> str:
        return self.manifest.artifact_id


@dataclass(slots=True)
class VerifyReport:
    artifact: str
    chunks: int
    bad_chunks: list[int] = field(default_factory=list)  # corrupt or missing, by index
    digest_ok: bool = True  # the whole file (or every file of a directory) hashes as recorded

    @property
    def ok(self) -> bool:
        return not self.bad_chunks and self.digest_ok


@dataclass(slots=True)
class GcReport:
    artifacts_removed: int = 0
    chunks_removed: int = 0
    bytes_freed: int = 0


class ArtifactStore(Ingest):
    def __init__(self, root: Path, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.root = root
        self.chunk_size = chunk_size
        self.chunks = ChunkStore(root)
        self.index = KeyValueStore(root / "index", cache_mb=16)
        self._lock = threading.RLock()  # bookkeeping: commits, gc, erase
        self._writing: Counter[bytes] = Counter()  # chunks of ingests not committed yet (gc keeps them)
        self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="chunk")
        # Manifests are immutable: serving reads one per chunk sent, so decoded ones are kept.
        self._manifests: dict[bytes, Manifest] = {}
        self._stored_bytes: int | None = None  # recounted after a commit or a drop changes it

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.index.close()

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _commit(self, manifest: Manifest, pin: bool) -> None:
        """Make a manifest whose chunks are all on disk visible, in one durable batch."""
        key = manifest.id
        with self._lock, self.index.batch(sync=True) as batch:
            if self.index.get(MANIFEST + key) is None:
                batch.put(MANIFEST + key, manifest.encode())
                for chunk_id in set(manifest.chunks):
                    batch.put(REFCOUNT + chunk_id, _u64(self._refcount(chunk_id) + 1))
                self._stored_bytes = None
            if pin:
                batch.put(PIN + key, b"")
            batch.delete(TOMBSTONE + key)  # adding the bytes again is asking for them

    # --- fetches from peers ---------------------------------------------------------------

    def begin_fetch(self, manifest: Manifest) -> list[int]:
        """Record a fetch (so it resumes after a restart); the chunk indexes still to fetch."""
        with self._lock:
            self.index.put(FETCHING + manifest.id, manifest.encode(), sync=True)
            for chunk_id in manifest.chunks:
                self._writing[chunk_id] += 1  # gc leaves the fetch's chunks alone
        return [i for i, chunk_id in enumerate(manifest.chunks) if not self._chunk_ok(chunk_id)]

    def _chunk_ok(self, chunk_id: bytes) -> bool:
        try:
            self.chunks.read(chunk_id)
        except CorruptChunk:
            return False
        return True

    def put_chunk(self, chunk_id: bytes, data: bytes) -> None:
        """Store a fetched chunk the caller has checked against its id (a damaged file is replaced).

        It is made durable by `finish_fetch`; until then a crash may lose it, and the resumed
        fetch (`begin_fetch` checks what is on disk) asks for it again."""
        if self.chunks.has(chunk_id) and not self._chunk_ok(chunk_id):
            self.chunks.delete(chunk_id)
        self.chunks.put(chunk_id, data, fsync=False, direct=True)

    def finish_fetch(self, manifest: Manifest, *, pin: bool = True, digest_ok: bool | None = None) -> None:
        """Make a fetched artifact durable and visible once its digest holds; `CorruptChunk` if it does not.

        `digest_ok` is the caller's verdict if it hashed the plaintext as it arrived; otherwise
        the chunks are read back and hashed here."""
        if digest_ok is None:
            digests = Digests(manifest)
            for chunk_id in manifest.chunks:  # each was checked against its id when it arrived
                data = self.chunks.read(chunk_id, verify=manifest.encrypted)
                if not manifest.encrypted:
                    digests.update(data)
            digest_ok = manifest.encrypted or digests.matches()
        if not digest_ok:
            raise CorruptChunk(
                f"the chunks of {manifest.artifact_id} are each as listed, but together they do "
                "not hash to its id: the manifest was wrong"
            )
        self.chunks.fsync_files(set(manifest.chunks))
        self.chunks.sync()
        self._commit(manifest, pin)
        self.end_fetch(manifest)

    def end_fetch(self, manifest: Manifest) -> None:
        """Forget a fetch (done or abandoned); its chunks stay until gc if nothing lists them."""
        with self._lock:
            self.index.delete(FETCHING + manifest.id, sync=True)
            self._release(list(manifest.chunks))

    def pending_fetches(self) -> list[Manifest]:
        return [Manifest.decode(raw) for _, raw in self.index.iterate(FETCHING)]

    # --- reads -----------------------------------------------------------------------------

    def has(self, artifact: bytes) -> bool:
        return self.index.get(MANIFEST + artifact) is not None

    def manifest(self, artifact: bytes) -> Manifest:
        cached = self._manifests.get(artifact)
        if cached is not None:
            return cached
        raw = self.index.get(MANIFEST + artifact)
        if raw is None:
            if self.is_erased(artifact):
                raise ArtifactErased(f"artifact {format_id(artifact)} was erased from this node")
            raise ArtifactNotFound(f"artifact {format_id(artifact)} is not stored on this node")
        manifest = Manifest.decode(raw)
        with self._lock:
            if len(self._manifests) >= MANIFEST_CACHE:
                self._manifests.clear()
            if self.index.get(MANIFEST + artifact) is not None:  # not dropped meanwhile
                self._manifests[artifact] = manifest
        return manifest

    def artifacts(self) -> list[ArtifactInfo]:
        stored = self.index.iterate(MANIFEST)
        return [ArtifactInfo(Manifest.decode(raw), self.is_pinned(key[1:])) for key, raw in stored]

    def is_pinned(self, artifact: bytes) -> bool:
        return self.index.get(PIN + artifact) is not None

    def is_erased(self, artifact: bytes) -> bool:
        return self.index.get(TOMBSTONE + artifact) is not None

    def read(self, artifact: bytes, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """The plaintext bytes [start, stop) of an artifact, every chunk checked as it is read (and
        decrypted, for an encrypted artifact whose content key this node holds)."""
        manifest = self.manifest(artifact)
        stop = manifest.size if stop is None else min(stop, manifest.size)
        if not 0 <= start <= stop:
            raise ArtifactError(f"range {start}-{stop} is outside the artifact's {manifest.size} bytes")
        return self.read_range(manifest, start, stop)

    def read_range(self, manifest: Manifest, start: int, stop: int) -> Iterator[bytes]:
        """Plaintext bytes [start, stop) of a stored artifact, each chunk checked (and decrypted)."""
        key = None
        if manifest.encrypted:
            key = self.content_key(manifest.id)
            if key is None:
                raise ArtifactError(f"{manifest.artifact_id} is encrypted and this node has not got its content key")
        size = manifest.chunk_size
        for index in range(start // size, -(-stop // size)):
            data = self.chunks.read(manifest.chunks[index])
            if key is not None:
                data = decrypt_chunk(key, manifest.id, index, data)
            base = index * size
            yield data[max(start - base, 0) : min(stop - base, len(data))]

    def read_stored(self, manifest: Manifest, first: int = 0) -> Iterator[bytes]:
        """The chunks of a stored artifact as stored (ciphertext, for an encrypted one), from chunk `first`,
        each checked against its chunk id: what a licensee holding the content key decrypts on its own machine."""
        for chunk_id in manifest.chunks[first:]:
            yield self.chunks.read(chunk_id)

    def read_bytes(self, artifact: bytes) -> bytes:
        return b"".join(self.read(artifact))

    # --- checks ----------------------------------------------------------------------------

    def verify(self, artifact: bytes, progress: Progress | None = None) -> VerifyReport:
        """Re-read every chunk and re-hash the whole: which chunks are bad, and whether the digest holds."""
        manifest = self.manifest(artifact)
        report = VerifyReport(manifest.artifact_id, len(manifest.chunks))
        hashers = Digests(manifest)
        key = self.content_key(artifact) if manifest.encrypted else None
        for index, chunk_id in enumerate(manifest.chunks):
            try:
                data = self.chunks.read(chunk_id)
            except CorruptChunk:
                report.bad_chunks.append(index)
                hashers.broken = True
                continue
            if key is not None:
                data = decrypt_chunk(key, manifest.id, index, data)
            if not manifest.encrypted or key is not None:
                hashers.update(data)
            if progress is not None:
                progress(len(data))
        # without the content key, an encrypted artifact's plaintext digest cannot be checked here
        report.digest_ok = (manifest.encrypted and key is None) or hashers.matches()
        return report

    # --- pins, garbage, erasure ------------------------------------------------------------

    def pin(self, artifact: bytes) -> None:
        self.manifest(artifact)
        self.index.put(PIN + artifact, b"", sync=True)

    def unpin(self, artifact: bytes) -> None:
        self.manifest(artifact)
        self.index.delete(PIN + artifact, sync=True)

    def gc(self) -> GcReport:
        """Drop unpinned artifacts, then every chunk file no stored manifest lists."""
        report = GcReport()
        with self._lock:
            for key, _ in list(self.index.iterate(MANIFEST)):
                artifact = key[1:]
                if not self.is_pinned(artifact):
                    self._drop(artifact)
                    report.artifacts_removed += 1
            fetching = {c for manifest in self.pending_fetches() for c in manifest.chunks}
            for chunk_id in list(self.chunks.ids()):
                if chunk_id in self._writing or chunk_id in fetching:
                    continue
                if self.index.get(REFCOUNT + chunk_id) is None:
                    report.bytes_freed += self.chunks.size(chunk_id)
                    self.chunks.delete(chunk_id)
                    report.chunks_removed += 1
        return report

    def erase(self, artifact: bytes) -> int:
        """Delete an artifact's bytes now and keep a tombstone (no fetching it again unless asked); bytes freed."""
        return self.remove(artifact, tombstone=True)

    def remove(self, artifact: bytes, *, tombstone: bool = False) -> int:
        """Delete an artifact and the chunks no other artifact lists, now; bytes freed."""
        with self._lock:
            freed = 0
            for chunk_id in self._drop(self.manifest(artifact).id):
                if chunk_id not in self._writing:
                    freed += self.chunks.size(chunk_id)
                    self.chunks.delete(chunk_id)
            if tombstone:
                self.index.put(TOMBSTONE + artifact, _u64(now_ms()), sync=True)
        return freed

    def _drop(self, artifact: bytes) -> list[bytes]:
        """Remove a manifest and its references; the chunks nothing lists any more."""
        manifest = self.manifest(artifact)
        unreferenced = []
        self._manifests.pop(artifact, None)
        self._stored_bytes = None
        with self.index.batch(sync=True) as batch:
            batch.delete(MANIFEST + artifact)
            batch.delete(PIN + artifact)
            for chunk_id in set(manifest.chunks):
                count = self._refcount(chunk_id) - 1
                if count > 0:
                    batch.put(REFCOUNT + chunk_id, _u64(count))
                else:
                    batch.delete(REFCOUNT + chunk_id)
                    unreferenced.append(chunk_id)
        return unreferenced

    def _refcount(self, chunk_id: bytes) -> int:
        raw = self.index.get(REFCOUNT + chunk_id)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def stored_bytes(self) -> int:
        """Bytes of chunk files referenced by stored artifacts (counted again only after a change)."""
        if self._stored_bytes is None:
            self._stored_bytes = sum(self.chunks.size(key[1:]) for key, _ in self.index.iterate(REFCOUNT))
        return self._stored_bytes


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")
