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


def merkle_proof(leaves: list[bytes], index: int) -> list[bytes]:
    """The sibling hashes from leaf `index` up to the root of `merkle_root(leaves)`.

    Where a node has no sibling (an odd node promoted a level) nothing is added; the verifier
    knows where from the leaf count.
    """
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of {len(leaves)}")
    level = [_sha256(b"\x00" + leaf).digest() for leaf in leaves]
    proof = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = [
            _sha256(b"\x01" + level[i] + level[i + 1]).digest() if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
        index //= 2
    return proof


def verify_merkle_proof(root: bytes, leaf: bytes, index: int, count: int, proof: list[bytes]) -> bool:
    """True if `leaf` is item `index` of `count` leaves whose `merkle_root` is `root`."""
    if not 0 <= index < count:
        return False
    node = _sha256(b"\x00" + leaf).digest()
    steps = iter(proof)
    width = count
    while width > 1:
        if index ^ 1 < width:
            sibling = next(steps, None)
            if sibling is None:
                return False
            pair = sibling + node if index & 1 else node + sibling
            node = _sha256(b"\x01" + pair).digest()
        index //= 2
        width = (width + 1) // 2
    return node == root and next(steps, None) is None
