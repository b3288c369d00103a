"""SHA-256 and the binary Merkle tree used for transaction and receipt roots.

Leaves and inner nodes are hashed under different one-byte prefixes (as in RFC 6962),
so an inner node can never be passed off as a leaf.
"""

from __future__ import annotations

import hashlib

HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)
EMPTY_MERKLE_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def sha256(data: bytes) -> bytes:
    return _sha256(data).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """Root of the binary Merkle tree over `leaves` (the encoded items, not their hashes)."""
    if not leaves:
        return EMPTY_MERKLE_ROOT
    level = [_sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        nxt = [_sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])  # an odd node is promoted, not duplicated (no CVE-2012-2459)
        level = nxt
    return level[0]
