"""The key-value layer's own choices: what it writes to disk, and how."""

from __future__ import annotations

from pathlib import Path

from storage.kv import KeyValueStore


def _table_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.ldb"))


def test_tables_are_written_uncompressed(tmp_path: Path) -> None:
    """Compaction copies values as they are: 4 MB of zeros stays 4 MB on disk (Snappy would make it ~0.2 MB)."""
    path = tmp_path / "chaindata"
    with KeyValueStore(path) as kv:
        with kv.batch() as batch:
            for i in range(1024):
                batch.put(b"k" + i.to_bytes(4, "big"), bytes(4096))
        kv.compact()
        assert _table_bytes(path) >= 4 * 1024 * 1024
        assert kv.get(b"k" + (7).to_bytes(4, "big")) == bytes(4096)


def test_tables_written_compressed_are_still_read(tmp_path: Path) -> None:
    """A database an older version wrote with Snappy opens and reads the same values."""
    import plyvel

    path = tmp_path / "chaindata"
    old = plyvel.DB(str(path), create_if_missing=True, compression="snappy")
    for i in range(256):
        old.put(b"k" + i.to_bytes(4, "big"), bytes(4096))
    old.compact_range()
    assert _table_bytes(path) < 1024 * 1024
    old.close()
    with KeyValueStore(path) as kv:
        assert kv.get(b"k" + (255).to_bytes(4, "big")) == bytes(4096)
        assert sum(1 for _ in kv.iterate(b"k")) == 256
