"""Reading artifact bytes for the store: blocks of a stream, a directory's files, and the digests a
manifest records, recomputed from its plaintext."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from core.artifact import KIND_FILE, Manifest
from core.errors import ArtifactError


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


def split_blocks(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


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


def directory_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ArtifactError(f"{root} is not a directory")
    files = []
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if path.is_symlink():
            raise ArtifactError(f"{path} is a symbolic link: copy the file it points to into the directory")
        if path.is_file():
            files.append(path)
    return files
