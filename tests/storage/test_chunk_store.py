"""Chunk files written past the page cache (O_DIRECT) hold exactly their bytes, on any filesystem."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest

from core.hashing import sha256
from storage.chunk_store import DIRECT_ALIGN, DIRECT_MIN, ChunkStore, _write_direct

SIZES = [DIRECT_MIN, DIRECT_MIN + 1, DIRECT_MIN + DIRECT_ALIGN - 1, 4 * DIRECT_MIN + 17, DIRECT_MIN - 1, 10]


def _filesystems(tmp_path: Path) -> list[Path]:
    found = [tmp_path / "disk"]
    if Path("/dev/shm").is_dir():  # tmpfs refuses O_DIRECT: the plain write must take over
        found.append(Path(tempfile.mkdtemp(dir="/dev/shm", prefix="aichain-test-")))
    return found


@pytest.mark.parametrize("size", SIZES)
def test_direct_writes_round_trip_on_disk_and_on_tmpfs(tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    chunk_id = sha256(data)
    for root in _filesystems(tmp_path):
        try:
            store = ChunkStore(root)
            assert store.put(chunk_id, data, fsync=False, direct=True)
            store.fsync_files([chunk_id])
            assert store.read(chunk_id) == data
            assert store.path(chunk_id).stat().st_size == size
            assert not store.put(chunk_id, data, direct=True)  # stored once
        finally:
            if root.is_relative_to("/dev/shm"):
                for path in sorted(root.rglob("*"), reverse=True):
                    path.rmdir() if path.is_dir() else path.unlink()
                root.rmdir()


def test_direct_is_used_where_the_filesystem_allows_it(tmp_path: Path) -> None:
    data = random.Random(1).randbytes(DIRECT_MIN + 5)
    target = tmp_path / "chunk"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        used = _write_direct(fd, memoryview(data))
    finally:
        os.close(fd)
    assert target.read_bytes() == data
    if _fs_type(tmp_path) in ("ext4", "xfs", "btrfs"):
        assert used, "this filesystem takes O_DIRECT, so the chunk should have bypassed the page cache"


def _fs_type(path: Path) -> str:
    """The type of the filesystem holding `path` (the longest mount point above it)."""
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fs_type = line.split()[:3]
        if str(path.resolve()).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fs_type
    return kind
