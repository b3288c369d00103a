"""Content keys a publisher keeps on its own machine, so it can post envelopes itself.

A private model published from the SDK or CLI is encrypted under a key made here, sent to the
node with the upload (which keeps it to release envelopes to buyers) and kept here too, as
`<directory>/<artifact hex>.key`, readable by the owner only. The directory is the client's
`content_key_dir` (default `~/.aichain/content-keys`, `DEFAULT_CONTENT_KEY_DIR`). With the key,
the owners post a buyer's envelope themselves (`models.release`, `aichain-node model release`)
when the node's automatic release is off or offline.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONTENT_KEY_DIR = Path("~/.aichain/content-keys")


def key_file(directory: Path, artifact: bytes) -> Path:
    return directory / f"{artifact.hex()}.key"


def save_content_key(directory: Path, artifact: bytes, key: bytes) -> Path:
    """Write the key (owner read/write only), atomically: it is there whole or not at all."""
    path = key_file(directory, artifact)
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


def load_content_key(directory: Path, artifact: bytes) -> bytes | None:
    try:
        key = bytes.fromhex(key_file(directory, artifact).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return key if len(key) == 32 else None


__all__ = ["DEFAULT_CONTENT_KEY_DIR", "key_file", "load_content_key", "save_content_key"]
