"""The key-value layer: LevelDB through plyvel.

Everything the node persists goes through one `KeyValueStore`. Writes that must land
together (a block, its receipts, its state and the new head) go into one `WriteBatch`,
which LevelDB applies atomically: after a crash either all of it is there or none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import plyvel

from core.errors import StorageError


class WriteBatch:
    """Puts and deletes applied atomically by `commit` (or on leaving a `with` block)."""

    def __init__(self, db: plyvel.DB, sync: bool) -> None:
        self._batch = db.write_batch(sync=sync)
        self._done = False
        # `put(key, value)` and `delete(key)` are the batch's own, bound once: a block's commit
        # puts tens of thousands of keys, and a Python method around each costs a call apiece.
        self.put: Callable[[bytes, bytes], None] = self._batch.put
        self.delete: Callable[[bytes], None] = self._batch.delete

    def commit(self) -> None:
        if not self._done:
            self._batch.write()
            self._done = True

    def discard(self) -> None:
        self._batch.clear()
        self._done = True

    def __enter__(self) -> WriteBatch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


class Snapshot:
    """The database as it was when the snapshot was taken: later writes are not seen (LevelDB snapshots)."""

    def __init__(self, db: plyvel.DB) -> None:
        self._snapshot = db.snapshot()

    def get(self, key: bytes) -> bytes | None:
        return self._snapshot.get(key)

    def close(self) -> None:
        self._snapshot.close()


class KeyValueStore:
    """A LevelDB database. Keys and values are bytes; key layouts live in `storage.keys`."""

    def __init__(self, path: str | Path, *, create: bool = True, cache_mb: int = 64) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = plyvel.DB(
                str(self.path),
                create_if_missing=create,
                lru_cache_size=cache_mb * 1024 * 1024,
                write_buffer_size=32 * 1024 * 1024,
                bloom_filter_bits=10,
                # Tables are written uncompressed: Snappy saves only about a fifth of what the
                # node stores (hashes, signatures and keys do not shrink), and compressing each
                # table again on every compaction cost about a tenth of a saturated validator's
                # CPU (docs/decisions.md). Tables an older version wrote compressed are still
                # read: LevelDB marks each block with its compression.
                compression=None,
            )
        except plyvel.IOError as exc:
            raise StorageError(
                f"cannot open the database at {self.path}: {exc}. "
                "Is another aichain-node running with the same --datadir?"
            ) from exc
        except plyvel.Error as exc:
            raise StorageError(f"the database at {self.path} cannot be opened: {exc}") from exc

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def put(self, key: bytes, value: bytes, *, sync: bool = False) -> None:
        self._db.put(key, value, sync=sync)

    def delete(self, key: bytes, *, sync: bool = False) -> None:
        self._db.delete(key, sync=sync)

    def snapshot(self) -> Snapshot:
        """A consistent view of the database as of now, for readers that must not see a write land midway."""
        return Snapshot(self._db)

    def batch(self, *, sync: bool = True) -> WriteBatch:
        """A new atomic batch; `sync=True` makes it durable (fsync) when committed."""
        return WriteBatch(self._db, sync)

    def iterate(
        self, prefix: bytes, *, start: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Key-value pairs whose key starts with `prefix`, in key order (from `start` if given)."""
        if start is None:
            return self._db.iterator(prefix=prefix, reverse=reverse)
        stop = _prefix_end(prefix)
        if reverse:
            return self._db.iterator(start=prefix, stop=start, include_stop=True, reverse=True)
        return self._db.iterator(start=start, stop=stop)

    def compact(self) -> None:
        """Write out the in-memory table and merge all levels, as LevelDB's own compactions do over time."""
        self._db.compact_range()

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()

    def __enter__(self) -> KeyValueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with `prefix`."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])
