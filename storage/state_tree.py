"""The authenticated state tree: a radix-16 Merkle tree over hashed keys, latest version only.

In the style of Diem's Jellyfish Merkle Tree: a key lives at the path SHA-256(key) (64
nibbles); a subtree holding one key is a single leaf at the shallowest position where the
key is alone; there are no extension nodes, so the depth is about log16(N). The hashing
rules, the proof format and the verifier are in `storage.state_proof`.

Updates come in batches (one per block): `prepare` sorts the key hashes and rewrites only
the subtrees they touch, bottom up, returning the new root and the kv writes (puts and
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
from bisect import bisect_left
from collections.abc import Callable, Mapping
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

__all__ = ["EMPTY_ROOT", "Proof", "StateTree", "TreeUpdate", "verify_proof"]

_sha256 = hashlib.sha256
_HEX = "0123456789abcdef"
_NIBBLE = {c: i for i, c in enumerate(_HEX)}
_NEXT = {c: _HEX[i + 1] for i, c in enumerate(_HEX[:-1])}  # no entry for "f": its group runs to the end
_BIT = {c: 1 << i for i, c in enumerate(_HEX)}  # a nibble's bit in a bitmap
_DIGIT = {c: c.encode() for c in _HEX}  # a nibble's character in a node key
_LEAF = bytes([LEAF_TAG])
_INTERNAL = bytes([INTERNAL_TAG])
_HEX_DIGITS = _HEX.encode()
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
        new = _Preparer(self, writes).slot("", old, hxs, vhs, 0, len(hxs)) if hxs else old
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
            bit = 1 << _NIBBLE[hx[depth]]
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
            if key[skip:].translate(None, _HEX_DIGITS) or not (leaves or enc[:1] == _INTERNAL):
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
    if enc[:1] == _LEAF:
        return len(enc) == 1 + 2 * HASH_SIZE
    if enc[:1] != _INTERNAL or len(enc) < 5:
        return False
    bitmap = (enc[1] << 8) | enc[2]
    leafmap = (enc[-2] << 8) | enc[-1]
    return bitmap != 0 and leafmap & ~bitmap == 0 and len(enc) == 5 + bitmap.bit_count() * HASH_SIZE


class _Preparer:
    """One `prepare` run: rewrites touched subtrees and records the kv writes.

    Items are the sorted hex key hashes `hxs` with their new value hashes `vhs` (None =
    delete); a call gets the range [lo, hi) of items under its path. Each call returns the
    new stored bytes of its subtree's top node (None = empty) and is responsible for the
    writes strictly below its path; the caller places (or deletes, or lifts) the top node.
    """

    __slots__ = ("cached", "load", "prefix", "writes")

    def __init__(self, tree: StateTree, writes: dict[bytes, bytes | None]) -> None:
        self.cached: Callable[[bytes], bytes | None] = tree._cache.get
        self.load: Callable[[bytes, bytes], bytes] = tree._load
        self.prefix = tree._prefix
        self.writes = writes

    def slot(
        self, path: str, old: bytes | None, hxs: list[str], vhs: list[bytes | None], lo: int, hi: int
    ) -> bytes | None:
        """New top node of the subtree at `path` (old top node `old`, None = empty)."""
        if hi - lo == 1:
            return self.one(path, old, hxs[lo], vhs[lo])
        if old is None:
            return self.fresh(path, hxs, vhs, lo, hi)
        if old[0] == LEAF_TAG:
            return self.merge_leaf(path, old, hxs, vhs, lo, hi)
        return self.internal(path, old, hxs, vhs, lo, hi)

    def one(self, path: str, old: bytes | None, hx: str, vh: bytes | None) -> bytes | None:
        """`slot` for a single item (hex key hash `hx`, value hash `vh`): the common case below the top levels."""
        if old is None:
            return None if vh is None else _LEAF + bytes.fromhex(hx) + vh
        if old[0] == LEAF_TAG:
            return self.one_leaf(path, old, hx, vh)
        writes = self.writes
        c = hx[len(path)]
        bit = 1 << _NIBBLE[c]
        bitmap = (old[1] << 8) | old[2]
        start = 3 + ((bitmap & (bit - 1)).bit_count() << 5)
        path += c
        child_key = self.prefix + path.encode()
        if bitmap & bit:
            child_old = self.cached(child_key) or self.load(child_key, old[start : start + HASH_SIZE])
        else:
            child_old = None
        child_new = self.one(path, child_old, hx, vh)
        if child_new == child_old:
            return old
        writes[child_key] = child_new
        if child_old is not None and child_new is not None and child_new[0] == child_old[0]:
            # same kind of child in the same slot: only its hash changes (the common case)
            digest = _sha256(child_new if child_new[0] == LEAF_TAG else child_new[:-2]).digest()
            return old[:start] + digest + old[start + HASH_SIZE :]
        leafmap = (old[-2] << 8) | old[-1]
        if child_new is None:  # the child went away
            bitmap ^= bit
            leafmap &= ~bit
            if bitmap == 0:
                return None
            body = old[3:start] + old[start + HASH_SIZE : -2]
            if bitmap & (bitmap - 1) == 0 and leafmap:  # one leaf left: it moves up here
                sibling_key = self.prefix + (path[:-1] + _HEX[bitmap.bit_length() - 1]).encode()
                leaf = self.load(sibling_key, body)
                writes[sibling_key] = None
                return leaf
        else:
            if child_new[0] == LEAF_TAG:
                digest = _sha256(child_new).digest()
                leafmap |= bit
            else:
                digest = _sha256(child_new[:-2]).digest()
                leafmap &= ~bit
            if child_old is None:
                bitmap |= bit
                body = old[3:start] + digest + old[start:-2]
            else:
                body = old[3:start] + digest + old[start + HASH_SIZE : -2]
            if bitmap & (bitmap - 1) == 0 and leafmap:  # a chain whose bottom became one leaf: lift it
                writes[child_key] = None
                return child_new
        return _INTERNAL + bitmap.to_bytes(2, "big") + body + leafmap.to_bytes(2, "big")

    def one_leaf(self, path: str, old: bytes, hx: str, vh: bytes | None) -> bytes | None:
        """`one` at a position holding the single leaf `old`."""
        kh = bytes.fromhex(hx)
        if old[1:33] == kh:
            if vh is None:
                return None
            return old if old[33:] == vh else _LEAF + kh + vh
        if vh is None:  # deleting an absent key
            return old
        old_hx = old[1:33].hex()
        if old_hx < hx:
            return self.build(path, [old_hx, hx], [old[33:], vh], 0, 2)
        return self.build(path, [hx, old_hx], [vh, old[33:]], 0, 2)

    def fresh(self, path: str, hxs: list[str], vhs: list[bytes | None], lo: int, hi: int) -> bytes | None:
        """A subtree built from nothing: the inserts among the items (deletes are no-ops)."""
        if None in vhs[lo:hi]:
            kept = [i for i in range(lo, hi) if vhs[i] is not None]
            if not kept:
                return None
            hxs = [hxs[i] for i in kept]
            vhs = [vhs[i] for i in kept]
            lo, hi = 0, len(kept)
        # vhs[lo:hi] holds no None now, and build reads only that range (vhs outside it may):
        # a type checker cannot see a range of a list, and a copy would cost the hot path.
        return self.build(path, hxs, vhs, lo, hi)  # type: ignore[arg-type]

    def build(self, path: str, hxs: list[str], vhs: list[bytes], lo: int, hi: int) -> bytes:
        """A subtree of only inserts (at least one); writes every node below `path`."""
        if hi - lo == 1:
            return _LEAF + bytes.fromhex(hxs[lo]) + vhs[lo]
        depth = len(path)
        writes, prefix = self.writes, self.prefix
        bitmap = leafmap = 0
        hashes: list[bytes] = []
        i = lo
        while i < hi:
            c = hxs[i][depth]
            j = hi if c == "f" else bisect_left(hxs, path + _NEXT[c], i, hi)
            bit = 1 << _NIBBLE[c]
            bitmap |= bit
            if j - i == 1:
                child = _LEAF + bytes.fromhex(hxs[i]) + vhs[i]
                leafmap |= bit
                hashes.append(_sha256(child).digest())
            else:
                child = self.build(path + c, hxs, vhs, i, j)
                hashes.append(_sha256(child[:-2]).digest())
            writes[prefix + (path + c).encode()] = child
            i = j
        return _INTERNAL + bitmap.to_bytes(2, "big") + b"".join(hashes) + leafmap.to_bytes(2, "big")

    def merge_leaf(
        self, path: str, old: bytes, hxs: list[str], vhs: list[bytes | None], lo: int, hi: int
    ) -> bytes | None:
        """The subtree at a position that held the single leaf `old`, after two or more items."""
        old_hx = old[1:33].hex()
        k = bisect_left(hxs, old_hx, lo, hi)
        if k < hi and hxs[k] == old_hx:  # the leaf's own key is among the items: they replace it
            return self.fresh(path, hxs, vhs, lo, hi)
        if all(vhs[i] is None for i in range(lo, hi)):  # only deletes of other (absent) keys
            return old
        merged_h = [*hxs[lo:k], old_hx, *hxs[k:hi]]
        merged_v = [*vhs[lo:k], old[33:], *vhs[k:hi]]
        return self.fresh(path, merged_h, merged_v, 0, len(merged_h))

    def internal(
        self, path: str, old: bytes, hxs: list[str], vhs: list[bytes | None], lo: int, hi: int
    ) -> bytes | None:
        """The subtree at a position that held the internal node `old`, after two or more items.

        One pass in nibble order: unchanged runs of the old child hashes are copied, changed
        children are spliced in; then the node collapses if a single leaf is left.
        """
        depth = len(path)
        bitmap = new_bitmap = (old[1] << 8) | old[2]
        leafmap = (old[-2] << 8) | old[-1]
        hashes = old[3:-2]
        load, cached, writes = self.load, self.cached, self.writes
        key_prefix = self.prefix + path.encode()  # of this node's children's keys
        parts: list[bytes] = []
        copied = 0  # old child hashes before this offset are already in `parts` (or dropped)
        i = lo
        while i < hi:
            c = hxs[i][depth]
            j = hi if c == "f" else bisect_left(hxs, path + _NEXT[c], i, hi)
            bit = _BIT[c]
            off = (bitmap & (bit - 1)).bit_count() << 5
            child_key = key_prefix + _DIGIT[c]
            if bitmap & bit:
                child_old: bytes | None = cached(child_key) or load(child_key, hashes[off : off + HASH_SIZE])
            else:
                child_old = None
            child_new: bytes | None
            if j - i == 1:
                hx, vh = hxs[i], vhs[i]
                if (
                    child_old is not None
                    and vh is not None
                    and child_old[0] == LEAF_TAG
                    and child_old[1:33].hex() == hx
                ):
                    # `one_leaf` for the leaf's own key given a new value: the common case, inline
                    child_new = child_old if child_old[33:] == vh else child_old[:33] + vh
                else:
                    child_new = self.one(path + c, child_old, hx, vh)
            else:
                child_new = self.slot(path + c, child_old, hxs, vhs, i, j)
            i = j
            if child_new == child_old:
                continue
            writes[child_key] = child_new
            parts.append(hashes[copied:off])
            copied = off if child_old is None else off + HASH_SIZE
            if child_new is None:
                new_bitmap ^= bit
                leafmap &= ~bit
            elif child_new[0] == LEAF_TAG:
                parts.append(_sha256(child_new).digest())
                new_bitmap |= bit
                leafmap |= bit
            else:
                parts.append(_sha256(child_new[:-2]).digest())
                new_bitmap |= bit
                leafmap &= ~bit
        if not parts:
            return old
        parts.append(hashes[copied:])
        if new_bitmap == 0:
            return None
        if new_bitmap & (new_bitmap - 1) == 0 and leafmap:
            return self.lift(path, bitmap, new_bitmap, b"".join(parts))
        return _INTERNAL + new_bitmap.to_bytes(2, "big") + b"".join(parts) + leafmap.to_bytes(2, "big")

    def lift(self, path: str, old_bitmap: int, bit: int, digest: bytes) -> bytes:
        """The only child left (at `bit`) is a leaf: it moves up to `path`, and its position goes."""
        child_key = self.prefix + (path + _HEX[bit.bit_length() - 1]).encode()
        writes = self.writes
        if child_key not in writes:  # unchanged by this run
            leaf = self.load(child_key, digest)
        else:
            written = writes[child_key]
            assert written is not None  # a child that was deleted cannot be the one left
            leaf = written
        if old_bitmap & bit:
            writes[child_key] = None
        else:
            del writes[child_key]  # created by this run: never stored
        return leaf
