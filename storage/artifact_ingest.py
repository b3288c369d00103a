"""Ingest into the artifact store: files, streams, directories, encrypted artifacts.

The store's writer threads hash and write chunks while the reading thread computes the
digests the manifest records; at most `IN_FLIGHT` chunks are in memory per ingest.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from core.artifact import KIND_DIRECTORY, KIND_FILE, FileEntry, Manifest, check_path, directory_id, format_id
from core.artifact_listing import directory_files, plaintext_listing
from core.errors import ArtifactError, ArtifactKeyConflict
from core.hashing import sha256
from core.sealing import encrypt_chunk
from storage.artifact_io import plaintext_blocks, read_blocks
from storage.chunk_store import ChunkStore

IN_FLIGHT = 4  # chunks read but not yet written, per ingest (bounds memory)

Progress = Callable[[int], None]  # called with the number of bytes just processed
Seal = tuple[bytes, bytes]  # (content key, the plaintext id the chunks' encryption binds)


def _sealed(blocks: Iterable[bytes], seal: Seal) -> Iterator[bytes]:
    key, artifact = seal
    for index, block in enumerate(blocks):
        yield encrypt_chunk(key, artifact, index, block)


class Ingest:
    """The ingest half of `ArtifactStore` (which provides the attributes and `_commit`)."""

    root: Path
    chunk_size: int
    chunks: ChunkStore
    _lock: threading.RLock
    _writing: Counter[bytes]
    _pool: ThreadPoolExecutor

    def _commit(self, manifest: Manifest, pin: bool) -> None:
        raise NotImplementedError

    def has(self, artifact: bytes) -> bool:
        raise NotImplementedError

    def manifest(self, artifact: bytes) -> Manifest:
        raise NotImplementedError

    # --- ingest ----------------------------------------------------------------------------

    def add_stream(
        self, stream: BinaryIO, *, pin: bool = True, progress: Progress | None = None, seal: Seal | None = None
    ) -> Manifest:
        """Ingest a binary stream as a single-file artifact; its id is the SHA-256 of its bytes."""
        return self.add_blocks(read_blocks(stream, self.chunk_size), pin=pin, progress=progress, seal=seal)

    def add_file(self, path: Path, *, pin: bool = True, progress: Progress | None = None) -> Manifest:
        if path.is_dir():
            return self.add_directory(path, pin=pin, progress=progress)
        with path.open("rb") as stream:
            return self.add_stream(stream, pin=pin, progress=progress)

    def add_blocks(
        self, blocks: Iterable[bytes], *, pin: bool = True, progress: Progress | None = None, seal: Seal | None = None
    ) -> Manifest:
        """Ingest the bytes given as blocks of exactly `chunk_size` (the last one shorter).

        With `seal` = (content key, the id the bytes must have), the chunks are stored encrypted in
        one pass; bytes that turn out to have another id are refused (`ArtifactError`)."""
        whole = hashlib.sha256()
        size = 0

        def hashed(block: bytes) -> bytes:
            nonlocal size
            whole.update(block)
            size += len(block)
            return block

        stream = (hashed(b) for b in blocks)
        chunk_ids = self._write_chunks(stream if seal is None else _sealed(stream, seal), progress)
        try:
            manifest = Manifest(
                whole.digest(), KIND_FILE, size, self.chunk_size, tuple(chunk_ids), encrypted=seal is not None
            )
            self._commit_sealed(manifest, pin, seal)
        finally:
            self._release(chunk_ids)
        return manifest

    def add_directory(self, root: Path, *, pin: bool = True, progress: Progress | None = None) -> Manifest:
        """Ingest a directory as one artifact: its regular files, sorted by relative path."""
        paths = directory_files(root)

        def opened() -> Iterator[tuple[str, BinaryIO]]:
            for path in paths:
                with path.open("rb") as stream:
                    yield path.relative_to(root).as_posix(), stream

        return self.add_files(opened(), pin=pin, progress=progress)

    def add_files(
        self,
        files: Iterable[tuple[str, BinaryIO]],
        *,
        pin: bool = True,
        progress: Progress | None = None,
        seal: Seal | None = None,
    ) -> Manifest:
        """Ingest (relative path, stream) pairs, given in path order, as one directory artifact."""
        entries: list[FileEntry] = []

        def blocks() -> Iterator[bytes]:
            buffer = bytearray()
            for path, stream in files:
                check_path(path)
                if entries and path <= entries[-1].path:
                    previous = entries[-1].path
                    raise ArtifactError(f"files must come sorted by path, each once: {path!r} after {previous!r}")
                hasher, size = hashlib.sha256(), 0
                while piece := stream.read(self.chunk_size):
                    hasher.update(piece)
                    size += len(piece)
                    buffer += piece
                    while len(buffer) >= self.chunk_size:
                        yield bytes(buffer[: self.chunk_size])
                        del buffer[: self.chunk_size]
                entries.append(FileEntry(path, size, hasher.digest()))
            if buffer:
                yield bytes(buffer)

        chunk_ids = self._write_chunks(blocks() if seal is None else _sealed(blocks(), seal), progress)
        try:
            listing = tuple(entries)
            size = sum(f.size for f in listing)
            manifest = Manifest(
                directory_id(listing),
                KIND_DIRECTORY,
                size,
                self.chunk_size,
                tuple(chunk_ids),
                listing,
                encrypted=seal is not None,
            )
            self._commit_sealed(manifest, pin, seal)
        finally:
            self._release(chunk_ids)
        return manifest

    def _commit_sealed(self, manifest: Manifest, pin: bool, seal: Seal | None) -> None:
        if seal is not None and manifest.id != seal[1]:
            raise ArtifactError(
                f"the bytes are {manifest.artifact_id}, not {format_id(seal[1])} as announced: "
                "their chunks were encrypted for the wrong id, nothing was kept"
            )
        self._commit_keyed(manifest, pin, None if seal is None else seal[0])

    def _commit_keyed(self, manifest: Manifest, pin: bool, content_key: bytes | None) -> None:
        """Keep the content key (if encrypted) and make the manifest visible, as one step: two ingests of the
        same bytes at once must not leave the key of one beside the chunks of the other."""
        with self._lock:
            if content_key is not None:
                self._keep_key(manifest.id, content_key)
            self._commit(manifest, pin)

    def _keep_key(self, artifact: bytes, content_key: bytes) -> None:
        """Keep the content key of a new encrypted artifact; never replace another one: envelopes
        sealed with it open the chunks stored here, and whoever re-uploads the bytes must not
        spoil them. Nor give one to bytes stored in the clear: anyone can fetch those."""
        held = self.content_key(artifact)
        if held is None and self.has(artifact):
            if not self.manifest(artifact).encrypted:
                raise ArtifactKeyConflict(
                    f"{format_id(artifact)} is already stored here unencrypted, so anyone can "
                    "fetch it: it cannot be made private; nothing new was kept"
                )
            held = b""  # stored encrypted (fetched from peers) under a key this store never had
        if held is not None and held != content_key:
            raise ArtifactKeyConflict(
                f"{format_id(artifact)} is already stored encrypted under another content key, "
                "which is kept; nothing new was kept"
            )
        self.set_content_key(artifact, content_key)

    def add_encrypted(
        self, path: Path, content_key: bytes, *, pin: bool = True, progress: Progress | None = None
    ) -> Manifest:
        """Ingest a file or directory encrypted under `content_key` (AES-256-GCM per chunk, `core.sealing`).

        Two passes: the first hashes the plaintext (the id, which the chunks' encryption binds),
        the second encrypts and stores. The id stays the plaintext's; the key is kept here."""
        digest, kind, size, files = plaintext_listing(path)
        blocks = plaintext_blocks(path, self.chunk_size)
        sealed = (encrypt_chunk(content_key, digest, index, block) for index, block in enumerate(blocks))
        chunk_ids = self._write_chunks(sealed, progress)
        try:
            manifest = Manifest(digest, kind, size, self.chunk_size, tuple(chunk_ids), files, encrypted=True)
            self._commit_keyed(manifest, pin, content_key)
        finally:
            self._release(chunk_ids)
        return manifest

    def set_content_key(self, artifact: bytes, content_key: bytes) -> None:
        """Keep the content key of an encrypted artifact (owner-readable only)."""
        keys = self.root / "keys"
        keys.mkdir(mode=0o700, exist_ok=True)
        path = keys / f"{artifact.hex()}.key"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, content_key)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def content_key(self, artifact: bytes) -> bytes | None:
        path = self.root / "keys" / f"{artifact.hex()}.key"
        return path.read_bytes() if path.exists() else None

    def _write_chunks(self, blocks: Iterable[bytes], progress: Progress | None) -> list[bytes]:
        """Hash and store every block on the writer threads, at most IN_FLIGHT at a time; their ids in order."""
        pending: list[Future[bytes]] = []
        ids: list[bytes] = []
        try:
            for block in blocks:
                if len(pending) >= IN_FLIGHT:
                    ids.append(pending.pop(0).result())
                pending.append(self._pool.submit(self._store_chunk, block))
                if progress is not None:
                    progress(len(block))
            for future in pending:
                ids.append(future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled() and future.exception() is None:
                    ids.append(future.result())
            self._release(ids)
            raise
        self.chunks.sync()
        return ids

    def _store_chunk(self, block: bytes) -> bytes:
        chunk_id = sha256(block)
        with self._lock:  # before the file appears, so that gc never takes it
            self._writing[chunk_id] += 1
        try:
            self.chunks.put(chunk_id, block)
        except BaseException:
            self._release([chunk_id])
            raise
        return chunk_id

    def _release(self, chunk_ids: list[bytes]) -> None:
        with self._lock:
            for chunk_id in chunk_ids:
                self._writing[chunk_id] -= 1
                if self._writing[chunk_id] <= 0:
                    del self._writing[chunk_id]
