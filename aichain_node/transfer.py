"""Moving artifact bytes between a node and this machine, checked here.

- `tar_stream`: a directory as an uncompressed tar (regular files sorted by path), made while
  it is sent, for the node's directory upload.
- `StoredDownload`: the chunks of an artifact as a node stores them (`GET /artifacts/{id}/stored`),
  decrypted here when a content key is given, written into a file or a directory and checked
  against the artifact id *the caller* trusts (the chain's), never the node's word. Nothing
  appears under the destination's name until every digest holds.

A licensee's content key never leaves this process: the node serves ciphertext, which anyone
may have. A private artifact's plaintext is written readable by its user only: files 0600 (the
temporary ones too), the directories made for it 0700 (`private_file`, `private_dir`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

from core.artifact import FileEntry, check_path, directory_id, format_id
from core.artifact_listing import directory_files, plaintext_listing
from core.sealing import AEAD_TAG_SIZE, decrypt_chunk

Progress = Callable[[int], None]
BLOCK = 1 << 20
TAR_BLOCK = 512
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def private_file(path: Path) -> BinaryIO:
    """A new file (truncated if it exists) that only its user can read, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # an existing file keeps its mode through O_CREAT
    return os.fdopen(fd, "wb")


def private_dir(path: Path) -> None:
    """`path` as a directory only its user can enter: made if missing (with any missing parents, each
    private too), narrowed if it exists wider."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_DIR_MODE)


async def tar_stream(root: Path, progress: Progress | None = None) -> AsyncIterator[bytes]:
    """`root`'s regular files as a ustar/pax stream, in path order (the node's directory order)."""
    for path in directory_files(root):
        info = tarfile.TarInfo(path.relative_to(root).as_posix())
        info.size = path.stat().st_size
        info.mode = 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        with path.open("rb") as stream:
            while block := await asyncio.to_thread(stream.read, BLOCK):
                if progress is not None:
                    progress(len(block))
                yield block
        if info.size % TAR_BLOCK:
            yield bytes(TAR_BLOCK - info.size % TAR_BLOCK)
    yield bytes(2 * TAR_BLOCK)


def local_id(path: Path) -> bytes:
    """The artifact id a local file or directory would have (sha256 of a file; a directory's listing id)."""
    return plaintext_listing(path)[0]


class DigestMismatch(Exception):
    """Internal: what was received does not hash to the id it must have (`expected`, `got`)."""

    def __init__(self, expected: bytes, got: bytes, what: str) -> None:
        super().__init__(what)
        self.expected, self.got, self.what = expected, got, what


class _Writer:
    """Plaintext in order → the file (or the directory's files) under a temporary name, hashed as it goes."""

    def __init__(self, summary: dict[str, Any], temp: Path, private: bool = False) -> None:
        self.temp = temp
        self.private = private  # a private artifact's plaintext: 0600 files in 0700 directories
        self.directory = summary["kind"] == "directory"
        if self.directory:
            self.entries = [
                FileEntry(check_path(f["path"]), int(f["size"]), bytes.fromhex(f["sha256"])) for f in summary["files"]
            ]
            temp.mkdir(mode=PRIVATE_DIR_MODE if private else 0o777)
        else:
            self.entries = [FileEntry("", int(summary["size"]), b"")]
        self._index = -1
        self._left = 0
        self._out: Any = None
        self._hasher = hashlib.sha256()
        self.digests: list[bytes] = []
        self._next_file()

    def _next_file(self) -> None:
        self._close_file()
        while self._index + 1 < len(self.entries):
            self._index += 1
            entry = self.entries[self._index]
            target = self.temp / entry.path if self.directory else self.temp
            if self.private:
                if self.directory:
                    private_dir(target.parent)
                self._out = private_file(target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._out = target.open("wb")
            self._hasher = hashlib.sha256()
            self._left = entry.size
            if self._left:
                return
            self._close_file()

    def _close_file(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
            self.digests.append(self._hasher.digest())

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._out is None:
                raise DigestMismatch(b"", b"", "the node sent more bytes than the artifact holds")
            take = min(self._left, len(view))
            piece = view[:take]
            self._hasher.update(piece)
            self._out.write(piece)
            self._left -= take
            view = view[take:]
            if self._left == 0:
                self._next_file()

    def finish(self, expected: bytes) -> None:
        """Check every digest against `expected` (the artifact id the caller trusts)."""
        if self._out is not None:
            self._close_file()
            raise DigestMismatch(expected, b"", "the node's stream ended before the artifact did")
        if not self.directory:
            got = self.digests[0]
            if got != expected:
                raise DigestMismatch(expected, got, "the bytes")
            return
        listing = tuple(self.entries)
        if directory_id(listing) != expected:
            raise DigestMismatch(expected, directory_id(listing), "the directory's file list")
        for entry, got in zip(self.entries, self.digests, strict=True):
            if got != entry.sha256:
                raise DigestMismatch(entry.sha256, got, f"file {entry.path}")

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        remove(self.temp)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class StoredDownload:
    """Receive an artifact's stored chunks, decrypt them (given the key), write and check them.

    The plaintext of an encrypted artifact (or any, with `private`) is written for its user only."""

    def __init__(
        self, summary: dict[str, Any], expected: bytes, content_key: bytes | None, dest: Path, *, private: bool = False
    ) -> None:
        self.summary = summary
        self.expected = expected
        self.key = content_key
        self.dest = dest
        self.temp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
        self.size = int(summary["size"])
        self.chunk_size = int(summary["chunk_size"])
        self.encrypted = bool(summary["encrypted"])
        self.private = private or self.encrypted
        self._writer: _Writer | None = None
        self._index = 0

    def stored_size(self, index: int) -> int:
        plain = min(self.chunk_size, self.size - index * self.chunk_size)
        return plain + (AEAD_TAG_SIZE if self.encrypted else 0)

    @property
    def chunks(self) -> int:
        return -(-self.size // self.chunk_size)

    def begin(self) -> None:
        remove(self.temp)
        self._writer = _Writer(self.summary, self.temp, self.private)

    def take(self, stored_chunk: bytes) -> None:
        """One stored chunk, in order (runs on a worker thread: AES-GCM, SHA-256 and writes release the GIL)."""
        assert self._writer is not None
        data = stored_chunk
        if self.encrypted:
            assert self.key is not None
            data = decrypt_chunk(self.key, self.expected, self._index, stored_chunk)
        self._writer.write(data)
        self._index += 1

    def take_plain(self, data: bytes) -> None:
        """Plaintext bytes of the artifact, in order (a directory's files one after the other)."""
        assert self._writer is not None
        self._writer.write(data)

    def finish(self) -> Path:
        assert self._writer is not None
        try:
            self._writer.finish(self.expected)
        except DigestMismatch:
            self._writer.abort()
            raise
        remove(self.dest)
        self.temp.replace(self.dest)
        return self.dest

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


def describe_mismatch(error: DigestMismatch, artifact: bytes) -> str:
    if not error.got:
        return f"{format_id(artifact)}: {error.what}; nothing was kept"
    return (
        f"{error.what} of {format_id(artifact)} hash to {format_id(error.got)}, not {format_id(error.expected)}: "
        "the node served something else; nothing was kept"
    )


__all__ = [
    "DigestMismatch",
    "StoredDownload",
    "describe_mismatch",
    "local_id",
    "private_dir",
    "private_file",
    "remove",
    "tar_stream",
]
