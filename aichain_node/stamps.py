"""Verified stamps: a local copy of a model is trusted again while its files are unchanged.

A stamp sits beside the copy (`<name>.verified`): the artifact id it was checked against, and for
each file its size, modification time, change time and inode. No write can keep all four, so a
copy whose stamp still matches needs no hashing before it is loaded; any other is hashed again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from core.artifact import format_id


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _fingerprint(path: Path) -> list[list[Any]]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    # ctime and inode as well as mtime: a write, or a reset of the mtime after one, changes the ctime.
    stats = [(f, f.stat()) for f in files]
    return [[str(f.relative_to(path.parent)), s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino] for f, s in stats]


def write_stamp(path: Path, artifact: bytes, *, encrypted: bool = False) -> None:
    stamp = {
        "artifact": format_id(artifact),
        "encrypted": encrypted,
        "files": _fingerprint(path),
        "verified_at": int(time.time()),
    }
    _stamp_path(path).write_text(json.dumps(stamp))


def verified_stamp(path: Path, artifact: bytes) -> dict[str, Any] | None:
    """The stamp of `path` if it is unchanged since it was verified to be `artifact`, else None."""
    try:
        stamp: dict[str, Any] = json.loads(_stamp_path(path).read_text())
        if stamp["artifact"] == format_id(artifact) and stamp["files"] == _fingerprint(path):
            return stamp
    except (OSError, ValueError, KeyError):
        pass
    return None


def stale_stamp(path: Path, artifact: bytes) -> dict[str, Any] | None:
    """The stamp of `path` for `artifact` when the files have changed since (or are gone: then None)."""
    try:
        stamp: dict[str, Any] = json.loads(_stamp_path(path).read_text())
        if stamp["artifact"] == format_id(artifact) and path.exists() and stamp["files"] != _fingerprint(path):
            return stamp
    except (OSError, ValueError, KeyError):
        pass
    return None


def still_verified(path: Path, artifact: bytes) -> bool:
    """True if `path` is unchanged since it was verified to be `artifact` (sizes, times, inodes)."""
    return verified_stamp(path, artifact) is not None


__all__ = ["stale_stamp", "still_verified", "verified_stamp", "write_stamp"]
