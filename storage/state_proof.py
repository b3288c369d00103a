"""The hashing rules of the authenticated state tree, its proofs, and their offline verification.

This module is everything a light client needs to check a state proof against a header's
state root; `storage.state_tree` builds the tree with these same rules.

Hashing rules (H = SHA-256):

- A state key `k` (any bytes) sits at the path `kh = H(k)`, read as 64 nibbles, the high
  nibble of each byte first.
- leaf:     `H(0x00 || kh || H(value))` - the 65 bytes hashed are exactly the stored leaf node.
- internal: `H(0x01 || bitmap || child hashes)`, where `bitmap` is 2 bytes big-endian with
  bit n set iff the child at nibble n is present, and the child hashes are those of the
  present children in nibble order. The length of the hashed bytes is fixed by the bitmap,
  so no two child lists share a preimage; the leading 0x00/0x01 keeps leaves and internal
  nodes apart.
- empty tree: 32 zero bytes (`EMPTY_ROOT`).

The tree is canonical: a subtree holding exactly one key is a leaf at the shallowest
position where that key is alone; a subtree with two or more keys is an internal node
(there are no extension nodes). So the root depends only on the set of (key, value) pairs.

A `Proof` for a key lists, root first, the internal nodes on the key's path, each as its
bitmap and the hashes of its children *other than* the one on the path, and ends in one of:

- presence: the key's own leaf `(kh, H(value))` under the last listed node;
- absence by an empty slot: no leaf, and the last listed node has no child at the key's nibble
  (or the tree is empty: no levels at all);
- absence by another leaf: a leaf `(kh', vh')` with `kh' != kh` whose first `len(levels)`
  nibbles equal the key's - that position holds a single key, and it is another one.

Wire form (msgpack-encodable, ints/bytes/lists only):
`[1, [[bitmap, siblings], ...], leaf]`, where `siblings` is the concatenated 32-byte sibling
hashes of one level and `leaf` is `[]` or `[kh, vh]`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from core import codec
from core.errors import DecodeError

HASH_SIZE = 32
EMPTY_ROOT = bytes(HASH_SIZE)
LEAF_TAG = 0x00
INTERNAL_TAG = 0x01
PROOF_WIRE_TAG = 1
MAX_DEPTH = 64  # nibbles in a key hash: two distinct keys part at depth 63 at the latest
MAX_CHILDREN = 16
_LEAF_PREFIX = bytes([LEAF_TAG])
_INTERNAL_PREFIX = bytes([INTERNAL_TAG])
_sha256 = hashlib.sha256


def key_hash(key: bytes) -> bytes:
    """The path of a state key: SHA-256 of the key."""
    return _sha256(key).digest()


def value_hash(value: bytes) -> bytes:
    """The hash of a value, as a leaf commits to it."""
    return _sha256(value).digest()


def leaf_hash(kh: bytes, vh: bytes) -> bytes:
    """Hash of the leaf for key hash `kh` and value hash `vh`: H(0x00 || kh || vh)."""
    return _sha256(_LEAF_PREFIX + kh + vh).digest()


def internal_hash(bitmap: int, child_hashes: bytes) -> bytes:
    """Hash of an internal node: H(0x01 || bitmap (2 bytes BE) || present child hashes in nibble order)."""
    return _sha256(_INTERNAL_PREFIX + bitmap.to_bytes(2, "big") + child_hashes).digest()


def nibble(kh: bytes, depth: int) -> int:
    """The nibble of `kh` at `depth` (0 = high nibble of the first byte)."""
    byte = kh[depth >> 1]
    return byte & 0x0F if depth & 1 else byte >> 4


@dataclass(frozen=True, slots=True)
class Proof:
    """A proof of a key's value (or absence) against a state root; see the module docstring."""

    levels: tuple[tuple[int, bytes], ...]
    leaf: tuple[bytes, bytes] | None

    def proven_value_hash(self, key: bytes) -> bytes | None:
        """The value hash this proof shows for `key` (None = absent), if the proof verifies at all."""
        if self.leaf is not None and self.leaf[0] == key_hash(key):
            return self.leaf[1]
        return None

    def to_wire(self) -> list[Any]:
        """`[1, [[bitmap, siblings], ...], [] | [kh, vh]]`."""
        leaf: list[bytes] = [] if self.leaf is None else [self.leaf[0], self.leaf[1]]
        return [PROOF_WIRE_TAG, [[bitmap, siblings] for bitmap, siblings in self.levels], leaf]

    @classmethod
    def from_wire(cls, wire: object) -> Proof:
        """Parse an untrusted wire form; raise `DecodeError` unless it is well formed.

        Checks shape and sizes only (that each level's sibling count matches its bitmap);
        whether the proof is *true* is for `verify_proof`.
        """
        if not isinstance(wire, list) or len(wire) != 3:
            raise DecodeError("state proof: expected an array of 3 elements")
        if type(wire[0]) is not int or wire[0] != PROOF_WIRE_TAG:
            raise DecodeError(f"state proof: wrong type tag {wire[0]!r}, expected {PROOF_WIRE_TAG}")
        raw_levels, raw_leaf = wire[1], wire[2]
        if not isinstance(raw_levels, list) or len(raw_levels) > MAX_DEPTH:
            raise DecodeError(f"state proof: levels must be an array of at most {MAX_DEPTH} entries")
        leaf = _parse_leaf(raw_leaf)
        last = len(raw_levels) - 1
        levels = tuple(_parse_level(raw, open_slot=(i == last and leaf is None)) for i, raw in enumerate(raw_levels))
        return cls(levels, leaf)

    def encode(self) -> bytes:
        """Canonical msgpack bytes of the wire form."""
        return codec.encode(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> Proof:
        """Parse untrusted canonical msgpack bytes (`DecodeError` on anything else)."""
        return cls.from_wire(codec.decode(data))


def _parse_leaf(raw: object) -> tuple[bytes, bytes] | None:
    if not isinstance(raw, list) or len(raw) not in (0, 2):
        raise DecodeError("state proof: leaf must be [] or [key_hash, value_hash]")
    if not raw:
        return None
    kh, vh = raw
    if type(kh) is not bytes or type(vh) is not bytes or len(kh) != HASH_SIZE or len(vh) != HASH_SIZE:
        raise DecodeError("state proof: leaf hashes must be 32 bytes each")
    return kh, vh


def _parse_level(raw: object, *, open_slot: bool) -> tuple[int, bytes]:
    """One `[bitmap, siblings]`; `open_slot` = the key's nibble is absent from this node."""
    if not isinstance(raw, list) or len(raw) != 2:
        raise DecodeError("state proof: a level must be [bitmap, siblings]")
    bitmap, siblings = raw
    if type(bitmap) is not int or not 0 < bitmap < 1 << MAX_CHILDREN:
        raise DecodeError("state proof: bitmap must be an integer in 1..65535")
    if type(siblings) is not bytes:
        raise DecodeError("state proof: siblings must be bytes")
    expected = bitmap.bit_count() - (0 if open_slot else 1)
    if len(siblings) != expected * HASH_SIZE:
        raise DecodeError(f"state proof: a level with bitmap {bitmap:#06x} needs {expected} sibling hashes")
    return bitmap, siblings


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """True iff `proof` shows that `key` has exactly `value` (None = absent) in the tree with `root`.

    Never raises: a malformed proof (or argument) is simply not a valid proof.
    """
    try:
        return _verify(root, key, value, proof)
    except Exception:
        return False


def _verify(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    kh = key_hash(key)
    levels = proof.levels
    depth = len(levels)
    if depth > MAX_DEPTH:
        return False
    node = _terminal_hash(kh, value, proof.leaf, depth)
    if node is False:
        return False
    for d in range(depth - 1, -1, -1):
        node = _level_hash(levels[d], nibble(kh, d), node)
        if node is None:
            return False
    if node is None:  # no levels, no leaf: the empty tree
        return root == EMPTY_ROOT
    return node == root


def _terminal_hash(
    kh: bytes, value: bytes | None, leaf: tuple[bytes, bytes] | None, depth: int
) -> bytes | Literal[False] | None:
    """Hash of the node at the end of the path (None = empty slot), or False if the terminal cannot hold."""
    if value is not None:
        if leaf is None or leaf[0] != kh or leaf[1] != value_hash(value):
            return False
        return leaf_hash(kh, leaf[1])
    if leaf is None:
        return None
    other, vh = leaf
    if len(other) != HASH_SIZE or len(vh) != HASH_SIZE or other == kh:
        return False
    if any(nibble(other, d) != nibble(kh, d) for d in range(depth)):
        return False  # that leaf does not sit on this key's path
    return leaf_hash(other, vh)


def _level_hash(level: tuple[int, bytes], nib: int, child: bytes | None) -> bytes | None:
    """Hash of one internal node on the path, given its child on the path (None = that slot is empty)."""
    bitmap, siblings = level
    if type(bitmap) is not int or not 0 < bitmap < 1 << MAX_CHILDREN or len(siblings) % HASH_SIZE:
        return None
    bit = 1 << nib
    if child is None:
        if bitmap & bit or len(siblings) != bitmap.bit_count() * HASH_SIZE:
            return None
        return internal_hash(bitmap, siblings)
    if not bitmap & bit or len(child) != HASH_SIZE or len(siblings) != (bitmap.bit_count() - 1) * HASH_SIZE:
        return None
    off = (bitmap & (bit - 1)).bit_count() * HASH_SIZE
    return internal_hash(bitmap, siblings[:off] + child + siblings[off:])
