"""Chunk files: the bytes of artifacts, one file per distinct chunk, named by its SHA-256.

Layout under the store's root: `chunks/<first two hex digits>/<64 hex digits>`. A chunk is
written to `tmp/` first, fsynced, then renamed into place, so a chunk file that exists is
whole; a crash leaves at most a stray file in `tmp/`, which opening the store removes. The
directories that received renames are fsynced (`sync`) before anything refers to the chunks.
Large blobs never go into LevelDB.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import CorruptChunk, StorageError
from core.hashing import sha256


class ChunkStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "chunks"
        self.tmp = root / "tmp"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the artifact store at {root}: {exc}") from exc
        for stray in self.tmp.iterdir():  # half-written chunks of a crashed ingest or fetch
            stray.unlink(missing_ok=True)
        self._dirty: set[Path] = set()
        self._lock = threading.Lock()

    def path(self, chunk_id: bytes) -> Path:
        name = chunk_id.hex()
        return self.dir / name[:2] / name

    def has(self, chunk_id: bytes) -> bool:
        return self.path(chunk_id).is_file()

    def put(self, chunk_id: bytes, data: bytes | memoryview, *, fsync: bool = True) -> bool:
        """Store `data` as chunk `chunk_id` (the caller hashed it); False if it was already stored.

        Without `fsync` the caller must call `fsync_files` before anything refers to the chunk."""
        final = self.path(chunk_id)
        if final.is_file():
            return False
        final.parent.mkdir(exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix=chunk_id.hex()[:16])
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp_name)
            raise
        os.close(fd)
        os.replace(tmp_name, final)
        with self._lock:
            self._dirty.add(final.parent)
        return True

    def fsync_files(self, chunk_ids: Iterable[bytes]) -> None:
        """Make chunk files written without `fsync` durable (cheap once the kernel has written them back)."""
        for chunk_id in chunk_ids:
            fd = os.open(self.path(chunk_id), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def sync(self) -> None:
        """Make the renames of `put` durable: fsync every directory that received a chunk."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for directory in dirty:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, chunk_id: bytes, *, verify: bool = True) -> bytes:
        """The bytes of a chunk; with `verify`, raise `CorruptChunk` unless they hash to its id."""
        try:
            data = self.path(chunk_id).read_bytes()
        except FileNotFoundError:
            raise CorruptChunk(f"chunk {chunk_id.hex()} is missing from the store", chunk=chunk_id.hex()) from None
        if verify and sha256(data) != chunk_id:
            raise CorruptChunk(
                f"chunk {chunk_id.hex()} is corrupt on disk (its bytes hash to {sha256(data).hex()}); "
                "`aichain-node artifact verify` lists the damage and a fetch repairs it from a peer",
                chunk=chunk_id.hex(),
            )
        return data

    def size(self, chunk_id: bytes) -> int:
        try:
            return self.path(chunk_id).stat().st_size
        except FileNotFoundError:
            return 0

    def delete(self, chunk_id: bytes) -> None:
        self.path(chunk_id).unlink(missing_ok=True)

    def ids(self) -> Iterator[bytes]:
        """Every chunk id with a file (in no particular order)."""
        for sub in self.dir.iterdir():
            if sub.is_dir():
                for file in sub.iterdir():
                    if len(file.name) == 64:
                        try:
                            yield bytes.fromhex(file.name)
                        except ValueError:
                            continue
