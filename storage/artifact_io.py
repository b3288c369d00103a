"""Reading artifact bytes for the store: blocks of a stream, a directory's files, and the digests a
manifest records, recomputed from its plaintext."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from core.artifact import KIND_FILE, Manifest
from core.artifact_listing import directory_files


class Digests:
    """The digests a manifest records, recomputed from its plaintext stream."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.broken = False
        self.whole = hashlib.sha256()
        self.files = [hashlib.sha256() for _ in manifest.files]
        self._file = 0
        self._left = manifest.files[0].size if manifest.files else 0

    def update(self, data: bytes) -> None:
        if self.manifest.kind == KIND_FILE:
            self.whole.update(data)
            return
        view = memoryview(data)
        while view:
            while self._left == 0 and self._file + 1 < len(self.files):
                self._file += 1
                self._left = self.manifest.files[self._file].size
            take = min(self._left, len(view))
            self.files[self._file].update(view[:take])
            self._left -= take
            view = view[take:]
            if take == 0:
                break

    def matches(self) -> bool:
        if self.broken:
            return False
        if self.manifest.kind == KIND_FILE:
            return self.whole.digest() == self.manifest.id
        return all(h.digest() == f.sha256 for h, f in zip(self.files, self.manifest.files, strict=True))


def read_blocks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Blocks of exactly `size` bytes (the last one shorter), however the stream returns them."""
    while True:
        block = stream.read(size)
        if not block:
            return
        while len(block) < size:
            more = stream.read(size - len(block))
            if not more:
                break
            block += more
        yield block
        if len(block) < size:
            return


def plaintext_blocks(path: Path, chunk_size: int) -> Iterator[bytes]:
    """The bytes of a file, or of a directory's files in path order, in blocks of `chunk_size` (the last shorter)."""
    if not path.is_dir():
        with path.open("rb") as stream:
            yield from read_blocks(stream, chunk_size)
        return
    buffer = bytearray()
    for file in directory_files(path):
        with file.open("rb") as stream:
            while piece := stream.read(chunk_size):
                buffer += piece
                while len(buffer) >= chunk_size:
                    yield bytes(buffer[:chunk_size])
                    del buffer[:chunk_size]
    if buffer:
        yield bytes(buffer)
