"""The authenticated state tree against a plain dict model and an independent reference root."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DecodeError, StorageError
from storage import state_tree
from storage.kv import KeyValueStore
from storage.state_proof import Proof
from storage.state_tree import EMPTY_ROOT, StateTree, TreeUpdate, verify_proof

PREFIX = b"n"
HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def reference_root(model: Mapping[bytes, bytes]) -> bytes:
    """The root by the rules alone, written independently of the implementation."""
    items = sorted((H(k).hex(), H(v)) for k, v in model.items())

    def subtree(group: list[tuple[str, bytes]], depth: int) -> bytes:
        if len(group) == 1:
            return H(b"\x00" + bytes.fromhex(group[0][0]) + group[0][1])
        bitmap, hashes = 0, b""
        for n, digit in enumerate("0123456789abcdef"):
            child = [item for item in group if item[0][depth] == digit]
            if child:
                bitmap |= 1 << n
                hashes += subtree(child, depth + 1)
        return H(b"\x01" + bitmap.to_bytes(2, "big") + hashes)

    return subtree(items, 0) if items else EMPTY_ROOT


@cache
def colliding_keys() -> tuple[bytes, ...]:
    """Keys whose hashes share long nibble prefixes: they force chains of one-child nodes.

    The three largest groups sharing 6 nibbles (pairs, by the birthday bound) and the largest
    group sharing 5 nibbles, found among 40,000 candidate keys.
    """
    by_six: dict[str, list[bytes]] = {}
    by_five: dict[str, list[bytes]] = {}
    for i in range(40_000):
        key = b"c%d" % i
        digest = H(key).hex()
        by_six.setdefault(digest[:6], []).append(key)
        by_five.setdefault(digest[:5], []).append(key)
    deepest = sorted((keys for keys in by_six.values() if len(keys) > 1), key=len, reverse=True)[:3]
    widest = max(by_five.values(), key=len)
    return tuple(dict.fromkeys([k for group in deepest for k in group] + widest))


KEY_POOL = [b"k%d" % i for i in range(48)]
keys_st = st.one_of(st.sampled_from(KEY_POOL), st.sampled_from(colliding_keys()))
values_st = st.binary(min_size=0, max_size=12)
batch_st = st.dictionaries(keys_st, st.none() | values_st, max_size=24)


@contextmanager
def open_tree(path: Path | None = None, cache_nodes: int = 2_000_000) -> Iterator[tuple[KeyValueStore, StateTree]]:
    with tempfile.TemporaryDirectory() as tmp:
        kv = KeyValueStore(path or Path(tmp) / "db")
        try:
            yield kv, StateTree(kv, PREFIX, cache_nodes=cache_nodes)
        finally:
            kv.close()


def commit(kv: KeyValueStore, tree: StateTree, updates: Mapping[bytes, bytes | None]) -> TreeUpdate:
    update = tree.prepare(updates)
    with kv.batch() as batch:
        tree.write(update, batch)
    tree.committed(update)
    return update


def apply_model(model: dict[bytes, bytes], updates: Mapping[bytes, bytes | None]) -> None:
    for key, value in updates.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value


def stored(kv: KeyValueStore) -> dict[bytes, bytes]:
    return dict(kv.iterate(PREFIX))


def fresh_build(model: Mapping[bytes, bytes]) -> tuple[bytes, dict[bytes, bytes]]:
    """Root and stored nodes of a tree built in one batch from `model`."""
    with open_tree() as (kv, tree):
        commit(kv, tree, model)
        return tree.root, stored(kv)


def assert_proves(tree: StateTree, model: Mapping[bytes, bytes], keys: list[bytes]) -> None:
    for key in keys:
        proof = tree.prove(key)
        value = model.get(key)
        assert verify_proof(tree.root, key, value, proof), key
        assert not verify_proof(tree.root, key, (value or b"") + b"x", proof), key
        if value is not None:
            assert not verify_proof(tree.root, key, None, proof), key
            assert proof.proven_value_hash(key) == H(value)
        else:
            assert proof.proven_value_hash(key) is None


# --- the rules -------------------------------------------------------------------------------------


def test_empty_tree() -> None:
    with open_tree() as (kv, tree):
        assert tree.root == EMPTY_ROOT == bytes(32)
        proof = tree.prove(b"anything")
        assert verify_proof(EMPTY_ROOT, b"anything", None, proof)
        assert not verify_proof(EMPTY_ROOT, b"anything", b"v", proof)
        update = commit(kv, tree, {b"absent": None, b"absent too": None})
        assert update.root == EMPTY_ROOT and tree.root == EMPTY_ROOT
        assert stored(kv) == {PREFIX + b"root": EMPTY_ROOT}


def test_bad_configuration_and_bad_root() -> None:
    with open_tree() as (kv, _tree):
        with pytest.raises(ValueError):
            StateTree(kv, b"")
        kv.put(PREFIX + b"root", b"short")
        with pytest.raises(StorageError):
            StateTree(kv, PREFIX)


def test_single_key_is_a_leaf_at_the_root() -> None:
    with open_tree() as (kv, tree):
        commit(kv, tree, {b"a": b"1"})
        assert tree.root == H(b"\x00" + H(b"a") + H(b"1"))
        assert stored(kv) == {PREFIX: b"\x00" + H(b"a") + H(b"1"), PREFIX + b"root": tree.root}
        assert_proves(tree, {b"a": b"1"}, [b"a", b"b"])


def test_two_keys_and_the_stored_layout() -> None:
    model = {b"k1": b"one", b"k2": b"two"}
    with open_tree() as (kv, tree):
        commit(kv, tree, model)
        assert tree.root == reference_root(model)
        h1, h2 = H(b"k1").hex(), H(b"k2").hex()
        depth = next(d for d in range(64) if h1[d] != h2[d]) + 1
        nodes = stored(kv)
        assert nodes[PREFIX + h1[:depth].encode()] == b"\x00" + H(b"k1") + H(b"one")
        assert nodes[PREFIX + h2[:depth].encode()] == b"\x00" + H(b"k2") + H(b"two")
        assert len(nodes) == 1 + depth + 2  # root hash, the chain of internal nodes, two leaves


def test_deep_chains_split_and_collapse() -> None:
    keys = colliding_keys()
    shared = max(next(d for d in range(64) if H(a).hex()[d] != H(b).hex()[d]) for a in keys for b in keys if a != b)
    assert shared >= 6 and len(keys) >= 8
    model: dict[bytes, bytes] = {}
    with open_tree() as (kv, tree):
        for i, key in enumerate(keys):
            commit(kv, tree, {key: b"v%d" % i})
            model[key] = b"v%d" % i
            assert tree.root == reference_root(model)
            assert stored(kv) == fresh_build(model)[1]
        for key in reversed(keys):
            commit(kv, tree, {key: None})
            del model[key]
            assert tree.root == reference_root(model)
            assert stored(kv) == fresh_build(model)[1]
            assert_proves(tree, model, list(keys))
        assert tree.root == EMPTY_ROOT
        assert stored(kv) == {PREFIX + b"root": EMPTY_ROOT}


# --- against the model -----------------------------------------------------------------------------


@HYPOTHESIS
@given(batches=st.lists(batch_st, min_size=1, max_size=8), small_cache=st.booleans())
def test_batched_updates_match_the_model(batches: list[dict[bytes, bytes | None]], small_cache: bool) -> None:
    model: dict[bytes, bytes] = {}
    with open_tree(cache_nodes=7 if small_cache else 2_000_000) as (kv, tree):
        for batch in batches:
            commit(kv, tree, batch)
            apply_model(model, batch)
            assert tree.root == reference_root(model)
        root, nodes = fresh_build(model)
        assert tree.root == root
        assert stored(kv) == nodes  # no stale node is left behind
        assert_proves(tree, model, [*KEY_POOL[:12], *colliding_keys(), *model])


@HYPOTHESIS
@given(
    items=st.dictionaries(keys_st, values_st, min_size=1, max_size=40),
    extra=st.dictionaries(keys_st, values_st, max_size=10),
    data=st.data(),
)
def test_root_is_independent_of_order_and_batching(
    items: dict[bytes, bytes], extra: dict[bytes, bytes], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(list(items)))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(order)), max_size=5)))
    batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    transient = {k: v for k, v in extra.items() if k not in items}
    with open_tree() as (kv, tree):
        commit(kv, tree, transient)  # keys that come and go must leave no trace
        for batch in batches:
            commit(kv, tree, {k: items[k] for k in batch})
        commit(kv, tree, dict.fromkeys(transient))
        root, nodes = fresh_build(items)
        assert tree.root == root == reference_root(items)
        assert stored(kv) == nodes


@pytest.mark.parametrize("kept", [0, 3, 100_000])
def test_remembered_key_paths_change_nothing_however_many_are_kept(monkeypatch: pytest.MonkeyPatch, kept: int) -> None:
    monkeypatch.setattr(state_tree, "PATHS_KEPT", kept)  # 0 and 3: dropped on (nearly) every batch
    model: dict[bytes, bytes] = {}
    with open_tree() as (kv, tree):
        for i in range(8):
            batch: dict[bytes, bytes | None] = {b"k%d" % ((i * 7 + j) % 23): b"v%d-%d" % (i, j) for j in range(5)}
            batch[b"k%d" % ((i * 5) % 23)] = None
            commit(kv, tree, batch)
            apply_model(model, batch)
            assert tree.root == reference_root(model)
        assert stored(kv) == fresh_build(model)[1]


def test_deleting_everything_gives_the_empty_root() -> None:
    model = {b"k%d" % i: b"v%d" % i for i in range(300)}
    with open_tree() as (kv, tree):
        commit(kv, tree, model)
        keys = list(model)
        for start in range(0, len(keys), 70):
            commit(kv, tree, dict.fromkeys(keys[start : start + 70]))
        assert tree.root == EMPTY_ROOT
        assert stored(kv) == {PREFIX + b"root": EMPTY_ROOT}
        assert_proves(tree, {}, keys[:5])


@pytest.mark.parametrize("size", [2, 3, 17, 60])
def test_replacing_every_key_in_one_batch(size: int) -> None:
    old = {b"old%d" % i: b"v" for i in range(size)}
    for new in ({b"new": b"n"}, {b"new%d" % i: b"n" for i in range(size)}):
        with open_tree() as (kv, tree):
            commit(kv, tree, old)
            commit(kv, tree, {**dict.fromkeys(old), **new})
            assert tree.root == reference_root(new)
            assert stored(kv) == fresh_build(new)[1]


def test_without_a_cache() -> None:
    model = {b"k%d" % i: b"v%d" % i for i in range(200)}
    with open_tree(cache_nodes=0) as (kv, tree):
        commit(kv, tree, model)
        commit(kv, tree, {b"k1": None, b"k2": b"two"})
        apply_model(model, {b"k1": None, b"k2": b"two"})
        assert tree.root == reference_root(model)
        assert tree.warm() == 0
        assert_proves(tree, model, [b"k1", b"k2", b"k3"])


def test_same_value_rewrite_changes_nothing() -> None:
    model = {b"k%d" % i: b"v%d" % i for i in range(100)}
    with open_tree() as (kv, tree):
        commit(kv, tree, model)
        update = tree.prepare({b"k1": b"v1", b"k2": b"v2", b"absent": None})
        assert update.root == tree.root
        assert update.writes == {PREFIX + b"root": tree.root}


# --- prepare, write, committed ---------------------------------------------------------------------


def test_prepare_is_pure_until_committed() -> None:
    model = {b"k%d" % i: b"v%d" % i for i in range(200)}
    with open_tree() as (kv, tree):
        commit(kv, tree, model)
        before_root, before_nodes = tree.root, stored(kv)
        changes = {b"k1": None, b"new": b"x", b"k2": b"changed"}
        first = tree.prepare(changes)
        again = tree.prepare(changes)
        assert first == again and first.root != before_root
        assert tree.root == before_root and stored(kv) == before_nodes
        assert_proves(tree, model, [b"k1", b"k2", b"new"])
        with kv.batch() as batch:  # a discarded batch: committed() is never called
            tree.write(first, batch)
            batch.discard()
        assert tree.root == before_root and stored(kv) == before_nodes
        commit(kv, tree, {b"k3": b"other"})
        with pytest.raises(ValueError):
            tree.committed(first)  # prepared against a root that is no longer the committed one


def test_persistence_across_reopen(tmp_path: Path) -> None:
    model = {b"k%d" % i: b"v%d" % i for i in range(500)}
    path = tmp_path / "db"
    with open_tree(path) as (kv, tree):
        commit(kv, tree, model)
        commit(kv, tree, {b"k7": None, b"k8": b"eight"})
        apply_model(model, {b"k7": None, b"k8": b"eight"})
        root = tree.root
        proofs = {k: tree.prove(k).to_wire() for k in [b"k1", b"k7", b"k8"]}
    with open_tree(path) as (kv, tree):
        assert tree.root == root == reference_root(model)
        assert {k: tree.prove(k).to_wire() for k in proofs} == proofs
        assert_proves(tree, model, [b"k1", b"k7", b"k8", b"k499"])
        assert tree.warm() > 0 and tree.warm(leaves=True) > 0
        commit(kv, tree, {b"k9": None})
        tree = StateTree(kv, PREFIX)  # a fresh tree: nothing cached, the root read from the kv
        del model[b"k9"]
        assert tree.root == reference_root(model)
        assert_proves(tree, model, [b"k9", b"k10"])


def test_corrupt_node_is_detected(tmp_path: Path) -> None:
    model = {b"k%d" % i: b"v%d" % i for i in range(50)}
    with open_tree(tmp_path / "db") as (kv, tree):
        commit(kv, tree, model)
        leaf_key = next(k for k, v in kv.iterate(PREFIX) if v[0] == 0 and k != PREFIX + b"root")
        good = kv.get(leaf_key)
        assert good is not None
        kv.put(leaf_key, good[:-1] + bytes([good[-1] ^ 1]))
        tree = StateTree(kv, PREFIX)  # a fresh tree: nothing cached, the root read from the kv
        with pytest.raises(StorageError):
            for key in model:
                tree.prove(key)
        kv.delete(leaf_key)
        tree = StateTree(kv, PREFIX)  # a fresh tree: nothing cached, the root read from the kv
        with pytest.raises(StorageError):
            tree.prepare(dict.fromkeys(model, b"new"))


# --- proofs ----------------------------------------------------------------------------------------


def tampered(proof: Proof) -> Iterator[Proof]:
    """Every small lie about a proof: flipped bytes, dropped or added levels, swapped siblings."""
    levels = list(proof.levels)
    for i, (bitmap, siblings) in enumerate(levels):
        for pos in {0, len(siblings) // 2, len(siblings) - 1}:
            if siblings:
                flipped = siblings[:pos] + bytes([siblings[pos] ^ 0x01]) + siblings[pos + 1 :]
                yield replace(proof, levels=(*levels[:i], (bitmap, flipped), *levels[i + 1 :]))
        if len(siblings) >= 64 and siblings[:32] != siblings[32:64]:
            swapped = siblings[32:64] + siblings[:32] + siblings[64:]
            yield replace(proof, levels=(*levels[:i], (bitmap, swapped), *levels[i + 1 :]))
        yield replace(proof, levels=(*levels[:i], (bitmap ^ 0x8001, siblings), *levels[i + 1 :]))
        yield replace(proof, levels=(*levels[:i], *levels[i + 1 :]))  # drop a level
    if levels:
        yield replace(proof, levels=tuple(levels[:-1]))
        yield replace(proof, levels=(*levels, levels[-1]))
        if len(levels) >= 2:
            yield replace(proof, levels=(levels[1], levels[0], *levels[2:]))
    if proof.leaf is not None:
        kh, vh = proof.leaf
        yield replace(proof, leaf=(kh, bytes([vh[0] ^ 1]) + vh[1:]))
        yield replace(proof, leaf=(bytes([kh[0] ^ 1]) + kh[1:], vh))
        yield replace(proof, leaf=None)
    else:
        yield replace(proof, leaf=(b"\x00" * 32, b"\x00" * 32))


def test_tampered_proofs_fail() -> None:
    model = {b"k%d" % i: b"v%d" % i for i in range(400)}
    with open_tree() as (kv, tree):
        commit(kv, tree, model)
        for key, value in [(b"k5", b"v5"), (b"k77", b"v77"), (b"absent", None), (b"gone", None)]:
            proof = tree.prove(key)
            assert verify_proof(tree.root, key, value, proof)
            assert not verify_proof(bytes(32), key, value, proof)
            assert not verify_proof(tree.root, key + b"?", value, proof)
            for lie in tampered(proof):
                assert not verify_proof(tree.root, key, value, lie), lie


def test_absence_by_another_leaf_must_be_on_the_path() -> None:
    model = {b"k%d" % i: b"v%d" % i for i in range(400)}
    with open_tree() as (kv, tree):
        commit(kv, tree, model)
        other = tree.prove(b"k3")  # a presence proof of k3 is no absence proof of another key
        assert not verify_proof(tree.root, b"k4", None, other)
        absent = next(b"x%d" % i for i in range(10_000) if tree.prove(b"x%d" % i).leaf is not None)
        proof = tree.prove(absent)
        assert proof.leaf is not None and verify_proof(tree.root, absent, None, proof)
        assert proof.proven_value_hash(absent) is None
        owner = next(k for k in model if H(k) == proof.leaf[0])
        assert not verify_proof(tree.root, absent, model[owner], proof)


def test_wire_round_trip() -> None:
    model = {b"k%d" % i: b"v%d" % i for i in range(300)}
    with open_tree() as (kv, tree):
        commit(kv, tree, model)
        for key in [b"k1", b"k2", b"nope", b"also-nope"]:
            proof = tree.prove(key)
            assert Proof.from_wire(proof.to_wire()) == proof
            assert Proof.decode(proof.encode()) == proof
            assert verify_proof(tree.root, key, model.get(key), Proof.decode(proof.encode()))
    assert Proof.from_wire(Proof((), None).to_wire()) == Proof((), None)


GOOD_WIRE = [1, [[0b11, b"\x11" * 32], [0b100, b""]], [b"\x22" * 32, b"\x33" * 32]]


@pytest.mark.parametrize(
    "wire",
    [
        None,
        b"",
        [],
        [1, []],
        [2, [], []],
        [True, [], []],
        [1, [], [], []],
        [1, {}, []],
        [1, [[0, b""]], []],
        [1, [[1 << 16, b"\x00" * 32 * 16]], []],
        [1, [[-1, b""]], []],
        [1, [[True, b""]], [b"\x00" * 32, b"\x00" * 32]],
        [1, [[0b11, b"\x00" * 31]], [b"\x00" * 32, b"\x00" * 32]],
        [1, [[0b11, b"\x00" * 64]], [b"\x00" * 32, b"\x00" * 32]],  # one sibling too many
        [1, [[0b11, b"\x00" * 32]], []],  # an open slot lists every child
        [1, [[0b1, "00" * 32]], []],
        [1, [[0b1, b"\x00" * 32]], [b"\x00" * 32]],
        [1, [[0b1, b"\x00" * 32]], [b"\x00" * 31, b"\x00" * 32]],
        [1, [[0b1, b"\x00" * 32]], [b"\x00" * 32, 5]],
        [1, [[0b1, b""]], [b"\x00" * 32, b"\x00" * 32, b""]],
        [1, [[0b1]], [b"\x00" * 32, b"\x00" * 32]],
        [1, [[0b1, b""]] * 65, [b"\x00" * 32, b"\x00" * 32]],
        [1, [5], []],
    ],
)
def test_from_wire_rejects_garbage(wire: object) -> None:
    assert Proof.from_wire(GOOD_WIRE) is not None
    with pytest.raises(DecodeError):
        Proof.from_wire(wire)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x93\x01\x90\x90\x00", b"\x93\x01\x90\xc0"])
def test_decode_rejects_garbage_bytes(data: bytes) -> None:
    with pytest.raises(DecodeError):
        Proof.decode(data)


@pytest.mark.parametrize(
    "proof",
    [
        Proof(None, None),  # type: ignore[arg-type]
        Proof(((1, None),), None),  # type: ignore[arg-type]
        Proof((("x", b""),), None),  # type: ignore[arg-type]
        Proof(((1, b""),), (b"", b"")),
        Proof(((1, b""),), (None, None)),  # type: ignore[arg-type]
        Proof((), (b"\x00" * 32,)),  # type: ignore[arg-type]
        Proof(((0xFFFF, b"\x00" * 32 * 15),) * 70, None),
        Proof(((1, b""),), 7),  # type: ignore[arg-type]
    ],
)
def test_verify_never_raises_on_garbage(proof: Proof) -> None:
    for value in (None, b"", b"v"):
        assert verify_proof(EMPTY_ROOT, b"k", value, proof) is False
        assert verify_proof(b"\x01" * 32, b"k", value, proof) is False
    assert verify_proof(None, None, None, Proof((), None)) is False  # type: ignore[arg-type]


@HYPOTHESIS
@given(wire=st.recursive(st.none() | st.integers() | st.binary(max_size=70), lambda c: st.lists(c, max_size=4)))
def test_from_wire_accepts_or_rejects_cleanly(wire: object) -> None:
    try:
        proof = Proof.from_wire(wire)
    except DecodeError:
        return
    assert verify_proof(EMPTY_ROOT, b"k", None, proof) in (True, False)
