"""Content keys a publisher keeps on its own machine, so it can post envelopes itself.

A private model published from the SDK or CLI is encrypted under a key made here, sent to the
node with the upload (which keeps it to release envelopes to buyers) and kept here too, under
`~/.aichain/content-keys/<artifact hex>.key` (or `$AICHAIN_CONTENT_KEYS`), readable by the
owner only. With it, the owners post a buyer's envelope themselves (`models.release`,
`aichain-node model release`) when the node's automatic release is off or offline.
"""

from __future__ import annotations

import os
from pathlib import Path


def keys_dir() -> Path:
    return Path(os.environ.get("AICHAIN_CONTENT_KEYS") or Path.home() / ".aichain" / "content-keys")


def key_file(artifact: bytes) -> Path:
    return keys_dir() / f"{artifact.hex()}.key"


def save_content_key(artifact: bytes, key: bytes) -> Path:
    """Write the key (owner read/write only), atomically: it is there whole or not at all."""
    path = key_file(artifact)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    part = path.with_name(path.name + f".part-{os.getpid()}")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, path)
    return path


def load_content_key(artifact: bytes) -> bytes | None:
    try:
        key = bytes.fromhex(key_file(artifact).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return key if len(key) == 32 else None


__all__ = ["keys_dir", "load_content_key", "save_content_key"]
