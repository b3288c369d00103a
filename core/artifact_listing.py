"""What an artifact id says of local files: a directory's files in the store's order, and the id, kind,
size and file list of a file or directory, read once. The store (storage/) and the SDK compute them alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.artifact import KIND_DIRECTORY, KIND_FILE, FileEntry, directory_id
from core.errors import ArtifactError


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
