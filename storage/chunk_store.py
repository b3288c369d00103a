"""Chunk files: the bytes of artifacts, one file per distinct chunk, named by its SHA-256.

Layout under the store's root: `chunks/<first two hex digits>/<64 hex digits>`. A chunk is
written to `tmp/` first, fsynced, then renamed into place, so a chunk file that exists is
whole; a crash leaves at most a stray file in `tmp/`, which opening the store removes. The
directories that received renames are fsynced (`sync`) before anything refers to the chunks.
Large blobs never go into LevelDB.

Chunks fetched from peers (`put(..., direct=True)`) are written with O_DIRECT where the
filesystem allows it. Writing through the page cache means the kernel must find fresh pages for
every byte, which on a machine whose memory was never used (a new VM) cost 3.8 s of system time
per GiB, more than receiving and checking the chunks; O_DIRECT copies from one reused buffer and
costs almost none. Ingested chunks still go through the cache: they are often served right away.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.errors import CorruptChunk, StorageError
from core.hashing import sha256

DIRECT_MIN = 1 << 20  # smaller chunks go through the page cache
DIRECT_ALIGN = 4096  # O_DIRECT writes whole blocks from aligned memory; the tail goes buffered
_buffers = threading.local()


def _aligned_buffer(size: int) -> mmap.mmap:
    """A page-aligned buffer of at least `size` bytes, one per thread, reused."""
    buffer: mmap.mmap | None = getattr(_buffers, "buffer", None)
    if buffer is None or len(buffer) < size:
        if buffer is not None:
            buffer.close()
        buffer = _buffers.buffer = mmap.mmap(-1, size)
    return buffer


def _write_direct(fd: int, view: memoryview) -> bool:
    """Write `view` to the empty file `fd` bypassing the page cache; False (nothing written) if
    this filesystem does not allow it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # tmpfs and some others
            return False
        raise
    whole = len(view) - len(view) % DIRECT_ALIGN
    buffer = _aligned_buffer(whole)
    buffer[:whole] = view[:whole]
    aligned = memoryview(buffer)
    done = 0
    try:
        while done < whole:
            done += os.write(fd, aligned[done:whole])
    except OSError as exc:
        if exc.errno != errno.EINVAL or done:
            raise
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        return False  # the device refused the alignment: write it all the usual way
    finally:
        aligned.release()
    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    rest = view[whole:]
    while rest:
        rest = rest[os.write(fd, rest) :]
    return True


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

    def put(self, chunk_id: bytes, data: bytes | memoryview, *, fsync: bool = True, direct: bool = False) -> bool:
        """Store `data` as chunk `chunk_id` (the caller hashed it); False if it was already stored.

        Without `fsync` the caller must call `fsync_files` before anything refers to the chunk;
        `direct` bypasses the page cache where the filesystem allows it."""
        final = self.path(chunk_id)
        if final.is_file():
            return False
        final.parent.mkdir(exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix=chunk_id.hex()[:16])
        try:
            view = memoryview(data)
            if not direct or len(view) < DIRECT_MIN or not _write_direct(fd, view):
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
