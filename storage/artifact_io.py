"""Reading artifact bytes for the store: blocks of a stream, a directory's files, and the digests a
manifest records, recomputed from its plaintext."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from core.artifact import KIND_DIRECTORY, KIND_FILE, FileEntry, Manifest, directory_id
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


def plaintext_listing(path: Path) -> tuple[bytes, int, int, tuple[FileEntry, ...]]:
    """(id, kind, size, files) of a file or directory, read once: what a manifest records of its plaintext."""
    if not path.is_dir():
        hasher, size = hashlib.sha256(), 0
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                hasher.update(block)
                size += len(block)
        return hasher.digest(), KIND_FILE, size, ()
    entries = []
    for file in directory_files(path):
        hasher, size = hashlib.sha256(), 0
        with file.open("rb") as stream:
            while block := stream.read(1 << 20):
                hasher.update(block)
                size += len(block)
        entries.append(FileEntry(file.relative_to(path).as_posix(), size, hasher.digest()))
    files = tuple(entries)
    return directory_id(files), KIND_DIRECTORY, sum(f.size for f in files), files


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
