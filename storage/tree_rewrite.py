"""Rewriting the touched subtrees of the state tree for one batch of updates (`StateTree.prepare`).

The tree's layout and hashing rules are in `storage.state_tree` and `storage.state_proof`. A
`Rewrite` gets the sorted hex key hashes of a batch with their new value hashes, walks down
only the subtrees they touch, and returns each subtree's new top node bottom up, recording in
`writes` every node below it that changes (None = delete): leaves that move deeper when their
position gains a second key, leaves lifted when their sibling goes, and internal nodes whose
child hashes changed.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable

from storage.state_proof import HASH_SIZE, INTERNAL_TAG, LEAF_TAG

_sha256 = hashlib.sha256
HEX = "0123456789abcdef"
NIBBLE = {c: i for i, c in enumerate(HEX)}
NEXT = {c: HEX[i + 1] for i, c in enumerate(HEX[:-1])}  # no entry for "f": its group runs to the end
BIT = {c: 1 << i for i, c in enumerate(HEX)}  # a nibble's bit in a bitmap
DIGIT = {c: c.encode() for c in HEX}  # a nibble's character in a node key
LEAF = bytes([LEAF_TAG])
INTERNAL = bytes([INTERNAL_TAG])


class Rewrite:
    """One `prepare` run: rewrites touched subtrees and records the kv writes.

    Items are the sorted hex key hashes `hxs` with their new value hashes `vhs` (None =
    delete); a call gets the range [lo, hi) of items under its path. Each call returns the
    new stored bytes of its subtree's top node (None = empty) and is responsible for the
    writes strictly below its path; the caller places (or deletes, or lifts) the top node.
    """

    __slots__ = ("cached", "load", "prefix", "writes")

    def __init__(
        self,
        cached: Callable[[bytes], bytes | None],
        load: Callable[[bytes, bytes], bytes],
        prefix: bytes,
        writes: dict[bytes, bytes | None],
    ) -> None:
        self.cached = cached  # a committed node if it is in memory
        self.load = load  # a committed node, checked against the hash its parent holds
        self.prefix = prefix
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
            return None if vh is None else LEAF + bytes.fromhex(hx) + vh
        if old[0] == LEAF_TAG:
            return self.one_leaf(path, old, hx, vh)
        writes = self.writes
        c = hx[len(path)]
        bit = 1 << NIBBLE[c]
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
                sibling_key = self.prefix + (path[:-1] + HEX[bitmap.bit_length() - 1]).encode()
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
        return INTERNAL + bitmap.to_bytes(2, "big") + body + leafmap.to_bytes(2, "big")

    def one_leaf(self, path: str, old: bytes, hx: str, vh: bytes | None) -> bytes | None:
        """`one` at a position holding the single leaf `old`."""
        kh = bytes.fromhex(hx)
        if old[1:33] == kh:
            if vh is None:
                return None
            return old if old[33:] == vh else LEAF + kh + vh
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
            return LEAF + bytes.fromhex(hxs[lo]) + vhs[lo]
        depth = len(path)
        writes, prefix = self.writes, self.prefix
        bitmap = leafmap = 0
        hashes: list[bytes] = []
        i = lo
        while i < hi:
            c = hxs[i][depth]
            j = hi if c == "f" else bisect_left(hxs, path + NEXT[c], i, hi)
            bit = 1 << NIBBLE[c]
            bitmap |= bit
            if j - i == 1:
                child = LEAF + bytes.fromhex(hxs[i]) + vhs[i]
                leafmap |= bit
                hashes.append(_sha256(child).digest())
            else:
                child = self.build(path + c, hxs, vhs, i, j)
                hashes.append(_sha256(child[:-2]).digest())
            writes[prefix + (path + c).encode()] = child
            i = j
        return INTERNAL + bitmap.to_bytes(2, "big") + b"".join(hashes) + leafmap.to_bytes(2, "big")

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
            j = hi if c == "f" else bisect_left(hxs, path + NEXT[c], i, hi)
            bit = BIT[c]
            off = (bitmap & (bit - 1)).bit_count() << 5
            child_key = key_prefix + DIGIT[c]
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
        return INTERNAL + new_bitmap.to_bytes(2, "big") + b"".join(parts) + leafmap.to_bytes(2, "big")

    def lift(self, path: str, old_bitmap: int, bit: int, digest: bytes) -> bytes:
        """The only child left (at `bit`) is a leaf: it moves up to `path`, and its position goes."""
        child_key = self.prefix + (path + HEX[bit.bit_length() - 1]).encode()
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
