"""The node's own keys, read from its data directory (`NodeConfig.node_key_path`, `validator_key_path`).

- The node key is the node's P2P identity, the account that releases content keys, and the
  audience of signed reads. It is made on first start and kept unencrypted: it is an identity,
  not funds (as CometBFT's `node_key.json`).
- The validator key signs consensus messages; a node without one is not a validator.
"""

from __future__ import annotations

from pathlib import Path

from core.keys import PrivateKey, read_key_file, write_key_file


def load_node_key(path: Path) -> PrivateKey:
    """The node key at `path`, made and written there if there is none yet."""
    if path.exists():
        return read_key_file(path, None)
    node_key = PrivateKey.generate()
    write_key_file(path, node_key, None)
    return node_key


def load_validator_key(path: Path, password: str | None) -> PrivateKey | None:
    """The validator key at `path`, None if there is none."""
    if not path.exists():
        return None
    return read_key_file(path, password)
