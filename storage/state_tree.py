"""The authenticated state tree: a radix-16 Merkle tree over hashed keys, latest version only.

In the style of Diem's Jellyfish Merkle Tree: a key lives at the path SHA-256(key) (64
nibbles); a subtree holding one key is a single leaf at the shallowest position where the
key is alone; there are no extension nodes, so the depth is about log16(N). The hashing
rules, the proof format and the verifier are in `storage.state_proof`.

Updates come in batches (one per block): `prepare` sorts the key hashes and rewrites only
the subtrees they touch, bottom up (`storage.tree_rewrite`), returning the new root and the kv writes (puts and
deletes) that turn the stored tree into the new one. The caller puts them into its own
`WriteBatch` (`write`), commits that batch with the block, then calls `committed`. Only the
latest version is stored: when a leaf moves deeper (its position gains a second key) or up
(its sibling is deleted), its old position is overwritten or deleted in the same batch.

Storage layout, under the constructor's `prefix` (the tree owns every key that starts with it):

- node at nibble path p (0..64 nibbles): `prefix || p as lowercase ASCII hex`, one character
  per nibble (e.g. the node at nibbles 0xa, 0x3 is `prefix + b"a3"`; the root node is `prefix`
  itself). Keys sort parent first, then each child's subtree in nibble order.
- root hash: `prefix || b"root"` -> 32 bytes ("r" is no hex digit, so it never meets a node key).
- leaf node:     `0x00 || key_hash (32) || value_hash (32)` - exactly the bytes the leaf hash covers.
- internal node: `0x01 || bitmap (2, BE) || present child hashes (32 each, nibble order) || leafmap (2, BE)`;
  leafmap bit n set = child n is a leaf. The node hash covers everything but the leafmap.

Every node is loaded through an in-memory cache (dict kv-key -> stored bytes, insertion
ordered, oldest dropped first past `cache_nodes`); a node read from the kv is checked
against the hash its parent (or the stored root) holds, so a corrupt database is noticed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice

from core.errors import StorageError
from storage.kv import KeyValueStore, WriteBatch
from storage.state_proof import (
    EMPTY_ROOT,
    HASH_SIZE,
    INTERNAL_TAG,
    LEAF_TAG,
    Proof,
    verify_proof,
)
from storage.tree_rewrite import HEX, INTERNAL, LEAF, NIBBLE, Rewrite

__all__ = ["EMPTY_ROOT", "Proof", "StateTree", "TreeUpdate", "verify_proof"]

_sha256 = hashlib.sha256
_HEX_DIGITS = HEX.encode()
_ROOT_SUFFIX = b"root"
PATHS_KEPT = 100_000  # keys whose path `prepare` remembers (~30 MB at most)


@dataclass(frozen=True)
class TreeUpdate:
    """The result of `StateTree.prepare`: the new root and the kv writes (None = delete) that give it.

    `base_root` is the committed root the update was prepared against (None = unchecked).
    """

    root: bytes
    writes: dict[bytes, bytes | None]
    base_root: bytes | None = field(default=None, compare=False, repr=False)


def node_hash(enc: bytes) -> bytes:
    """Hash of a stored node: a leaf hashes all its bytes, an internal node all but its leafmap."""
    if enc[0] == LEAF_TAG:
        return _sha256(enc).digest()
    return _sha256(enc[:-2]).digest()


class StateTree:
    """The state tree stored in `kv` under `prefix`; see the module docstring for the rules.

    Not thread-safe for writers: callers serialise `committed` with `prove` and
    `prepare` (node.chain holds its commit lock). `prepare` and `prove` only read committed
    nodes, so they may interleave with each other.
    """

    def __init__(self, kv: KeyValueStore, prefix: bytes = b"n", cache_nodes: int = 2_000_000) -> None:
        if not prefix:
            raise ValueError("the state tree needs a non-empty key prefix")
        self._kv = kv
        self._prefix = prefix
        self._root_key = prefix + _ROOT_SUFFIX
        self._root_node_key = prefix
        self._cache_limit = max(0, cache_nodes)
        self._cache: dict[bytes, bytes] = {}
        # key -> its path, SHA-256(key) in hex: blocks update the same accounts over and over.
        self._paths: dict[bytes, str] = {}
        self._root = self._read_root()

    @property
    def root(self) -> bytes:
        """Root hash of the committed tree."""
        return self._root

    # --- updates ----------------------------------------------------------------------------

    def prepare(self, updates: Mapping[bytes, bytes | None]) -> TreeUpdate:
        """The root and kv writes after applying `updates` (key -> new value, None = delete).

        Pure with respect to the committed tree: nothing is written and the committed root
        is unchanged, so it may be called several times. Deleting an absent key is a no-op.
        """
        pairs: dict[str, bytes | None] = {}
        paths = self._paths
        if len(paths) + len(updates) > PATHS_KEPT:
            paths.clear()  # dropped whole when full: cheaper than LRU upkeep
        for key, value in updates.items():
            hx = paths.get(key)
            if hx is None:
                hx = paths[key] = _sha256(key).hexdigest()
            pairs[hx] = None if value is None else _sha256(value).digest()
        hxs = sorted(pairs)
        vhs = [pairs[h] for h in hxs]
        writes: dict[bytes, bytes | None] = {}
        old = None if self._root == EMPTY_ROOT else self._load(self._root_node_key, self._root)
        rewrite = Rewrite(self._cache.get, self._load, self._prefix, writes)
        new = rewrite.slot("", old, hxs, vhs, 0, len(hxs)) if hxs else old
        if new is None:
            root = EMPTY_ROOT
            if old is not None:
                writes[self._root_node_key] = None
        else:
            root = node_hash(new)
            if new != old:
                writes[self._root_node_key] = new
        writes[self._root_key] = root
        return TreeUpdate(root, writes, base_root=self._root)

    def write(self, update: TreeUpdate, batch: WriteBatch) -> None:
        """Put `update.writes` into the caller's batch; call `committed` once the batch is durable."""
        self._check_base(update)
        put, delete = batch.put, batch.delete
        for key, value in update.writes.items():
            if value is None:
                delete(key)
            else:
                put(key, value)

    def committed(self, update: TreeUpdate) -> None:
        """Make `update` the committed tree in memory (its batch has been written durably)."""
        self._check_base(update)
        cache, pop = self._cache, self._cache.pop
        if self._cache_limit:
            for key, value in update.writes.items():
                pop(key, None)
                if value is not None:
                    cache[key] = value
            cache.pop(self._root_key, None)
            self._trim_cache()
        self._root = update.root

    # --- reads ------------------------------------------------------------------------------

    def prove(self, key: bytes) -> Proof:
        """A proof of `key`'s value, or of its absence, against `self.root`."""
        if self._root == EMPTY_ROOT:
            return Proof((), None)
        hx = _sha256(key).hexdigest()
        enc = self._load(self._root_node_key, self._root)
        levels: list[tuple[int, bytes]] = []
        depth = 0
        while enc[0] == INTERNAL_TAG:
            bitmap = (enc[1] << 8) | enc[2]
            hashes = enc[3:-2]
            bit = 1 << NIBBLE[hx[depth]]
            if not bitmap & bit:
                levels.append((bitmap, hashes))
                return Proof(tuple(levels), None)
            off = (bitmap & (bit - 1)).bit_count() * HASH_SIZE
            levels.append((bitmap, hashes[:off] + hashes[off + HASH_SIZE :]))
            depth += 1
            enc = self._load(self._prefix + hx[:depth].encode(), hashes[off : off + HASH_SIZE])
        return Proof(tuple(levels), (enc[1:33], enc[33:65]))

    def warm(self, *, leaves: bool = False) -> int:
        """Load the committed internal nodes (and leaves if asked) into the cache; return how many.

        Optional: nodes are loaded on demand anyway; warming after a restart spares the first
        blocks those kv reads. Warmed nodes are trusted as stored; only nodes loaded on demand are checked against
        their parent's hash.
        """
        loaded = 0
        skip = len(self._prefix)
        for key, enc in self._kv.iterate(self._prefix):
            if len(self._cache) >= self._cache_limit:
                break
            if key[skip:].translate(None, _HEX_DIGITS) or not (leaves or enc[:1] == INTERNAL):
                continue  # not a node key (the root hash), or a leaf we were not asked for
            self._cache[key] = enc
            loaded += 1
        return loaded

    # --- internals --------------------------------------------------------------------------

    def _load(self, key: bytes, expected: bytes) -> bytes:
        """The committed node under `key`, whose hash must be `expected`."""
        enc = self._cache.get(key)
        if enc is not None:
            return enc
        enc = self._kv.get(key)
        if enc is None:
            raise StorageError(f"state tree node {key.hex()} is missing: the database is corrupt")
        if not _well_formed(enc) or node_hash(enc) != expected:
            raise StorageError(f"state tree node {key.hex()} does not match its hash: the database is corrupt")
        if self._cache_limit:
            self._cache[key] = enc
            if len(self._cache) > self._cache_limit:
                self._trim_cache()
        return enc

    def _trim_cache(self) -> None:
        """Drop the oldest cached nodes until the cache is at 90% of its limit."""
        excess = len(self._cache) - self._cache_limit * 9 // 10
        if len(self._cache) > self._cache_limit and excess > 0:
            pop = self._cache.pop
            for key in list(islice(self._cache, excess)):
                pop(key, None)

    def _read_root(self) -> bytes:
        raw = self._kv.get(self._root_key)
        if raw is None:
            return EMPTY_ROOT
        if len(raw) != HASH_SIZE:
            raise StorageError(f"state root under {self._root_key!r} is {len(raw)} bytes, expected {HASH_SIZE}")
        return raw

    def _check_base(self, update: TreeUpdate) -> None:
        if update.base_root is not None and update.base_root != self._root:
            raise ValueError("this TreeUpdate was prepared against another committed root")


def _well_formed(enc: bytes) -> bool:
    """A stored node of a valid shape: a 65-byte leaf, or an internal node matching its bitmap."""
    if enc[:1] == LEAF:
        return len(enc) == 1 + 2 * HASH_SIZE
    if enc[:1] != INTERNAL or len(enc) < 5:
        return False
    bitmap = (enc[1] << 8) | enc[2]
    leafmap = (enc[-2] << 8) | enc[-1]
    return bitmap != 0 and leafmap & ~bitmap == 0 and len(enc) == 5 + bitmap.bit_count() * HASH_SIZE
