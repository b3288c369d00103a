"""`Transaction.decode` accepts exactly what the general path accepts, and refuses the rest the same way.

The fast path (`core.transaction._decode_fast`) must not change which bytes are a transaction: a
corpus of good and bad encodings goes through `Transaction.decode` and through the general path
(`codec.decode` under `TX_LIMITS`, then `Transaction.from_wire`, then the frozen constructor),
and each must come out the same: an equal transaction with the same encoding, hash and address,
or the same error type and message.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import random
import struct
import threading
from typing import Any

import msgpack
import pytest

from core import codec
from core.errors import AichainError
from core.keys import PrivateKey
from core.transaction import MAX_TX_DATA, TX_LIMITS, Transaction, TxKind, _decode_fast

KEY = PrivateKey.from_seed(bytes(range(32)))
U64 = 2**64 - 1


def reference(raw: bytes) -> Transaction | tuple[type[Exception], str]:
    """What the general path makes of `raw`: the transaction, or the error's type and message."""
    try:
        tx = Transaction.from_wire(codec.decode(raw, limits=TX_LIMITS, check_types=False))
    except AichainError as exc:
        return type(exc), str(exc)
    assert tx.encoded == raw  # canonical: the frozen constructor encodes it the same
    return tx


def outcome(raw: bytes) -> Transaction | tuple[type[Exception], str]:
    try:
        return Transaction.decode(raw)
    except AichainError as exc:
        return type(exc), str(exc)


def assert_same(raw: bytes) -> bool:
    """Both paths agree on `raw`; True if it is a transaction."""
    expected, got = reference(raw), outcome(raw)
    if isinstance(expected, Transaction):
        assert isinstance(got, Transaction), (raw.hex(), got)
        assert type(got) is Transaction
        assert got == expected and got.encoded == expected.encoded == raw
        assert got.hash == expected.hash and got.sender_address == expected.sender_address
        assert got.to_wire() == expected.to_wire() and got.signing_payload() == expected.signing_payload()
        assert got.signature_valid() == expected.signature_valid()
        assert hash(got) == hash(expected)
        return True
    assert got == expected, raw.hex()
    assert _decode_fast(raw) is None, raw.hex()
    return False


def signed(**fields: Any) -> Transaction:
    base: dict[str, Any] = dict(
        chain_id=7,
        sender=KEY.public_key,
        nonce=3,
        gas_limit=21_000,
        gas_price=1,
        kind=TxKind.TRANSFER,
        to=b"\x42" * 20,
        value=10,
        data=b"",
    )
    base.update(fields)
    return Transaction(**base).signed_by(KEY)


GOOD = [
    signed(),
    signed(nonce=0, value=0, gas_price=0, chain_id=0),
    signed(nonce=U64, value=U64, gas_limit=U64, gas_price=U64, chain_id=U64),
    signed(nonce=127, value=128, gas_limit=255, gas_price=256, chain_id=65_535),
    signed(nonce=65_536, value=2**32 - 1, gas_limit=2**32, gas_price=2**63),
    signed(kind=TxKind.DEPLOY, to=b"", data=b"\x00" * 300),
    signed(kind=TxKind.CALL, data=b"call" * 20),
    signed(kind=TxKind.VALIDATOR_VOTE, to=b"", data=b"v"),
    signed(data=b"d" * MAX_TX_DATA, gas_limit=10_000_000),
    signed(data=b"d" * 65_536),
]

# Values of every msgpack family, for any field: the wrong type, the wrong size, out of range.
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    -1,
    -(2**63),
    0,
    1,
    4,
    255,
    256,
    U64,
    1.5,
    "",
    "text",
    "x" * 32,
    b"",
    bytes(19),
    bytes(20),
    bytes(21),
    bytes(31),
    bytes(32),
    bytes(33),
    bytes(63),
    bytes(64),
    bytes(65),
    [],
    [1],
    [[b"deep"]],
    {},
    msgpack.ExtType(1, b"x"),
]


def wire_of(tx: Transaction) -> list[Any]:
    return list(tx.to_wire())


def field_corpus() -> list[bytes]:
    out: list[bytes] = []
    for tx in GOOD[:3]:
        wire = wire_of(tx)
        for index in range(11):
            for value in ODD_VALUES:
                changed = list(wire)
                changed[index] = value
                out.append(msgpack.packb(changed, use_bin_type=True))
    return out


def shape_corpus() -> list[bytes]:
    wire = wire_of(GOOD[0])
    shapes: list[Any] = [[], [1], wire[:10], [*wire, b""], wire * 2, "tx", None, 1, {}, [wire], b"\x01" * 140]
    out = [msgpack.packb(shape, use_bin_type=True) for shape in shapes]
    out.append(msgpack.packb({1: 2}, use_bin_type=True))
    out.append(msgpack.packb([[1] * 17], use_bin_type=True))  # an inner array over the length limit
    raw = GOOD[0].encoded
    out += [b"", b"\x00", b"\xc1", raw + b"\x00", raw[:-1], raw[:1], raw + raw, b"\x9b" * 2000]
    return out


def non_canonical_corpus() -> list[bytes]:
    """Each element of good transactions re-encoded in every longer (or other) form msgpack allows."""
    out: list[bytes] = []
    for tx in GOOD[:5] + GOOD[5:8]:
        wire = wire_of(tx)
        parts = [msgpack.packb(item, use_bin_type=True) for item in wire]
        for index, item in enumerate(wire):
            for variant in _other_forms(item):
                if variant == parts[index]:
                    continue  # the canonical form itself
                out.append(b"\x9b" + b"".join(parts[:index]) + variant + b"".join(parts[index + 1 :]))
        body = b"".join(parts)
        out.append(b"\xdc\x00\x0b" + body)  # array16 header for 11 elements
        out.append(b"\xdd\x00\x00\x00\x0b" + body)  # array32 header
    return out


def _other_forms(item: Any) -> list[bytes]:
    if isinstance(item, int):
        forms = []
        for fmt, header, low, high in [
            (">B", b"\xcc", 0, 255),
            (">H", b"\xcd", 0, 2**16 - 1),
            (">I", b"\xce", 0, 2**32 - 1),
            (">Q", b"\xcf", 0, U64),
            (">b", b"\xd0", -128, 127),
            (">h", b"\xd1", -(2**15), 2**15 - 1),
            (">i", b"\xd2", -(2**31), 2**31 - 1),
            (">q", b"\xd3", -(2**63), 2**63 - 1),
        ]:
            if low <= item <= high:
                forms.append(header + struct.pack(fmt, item))
        forms.append(struct.pack(">d", float(item)).join([b"\xcb", b""]))  # a float of the same value
        return forms
    assert isinstance(item, bytes)
    size = len(item)
    forms = [b"\xc5" + struct.pack(">H", size) + item, b"\xc6" + struct.pack(">I", size) + item]
    if size < 32:
        forms.append(bytes([0xA0 | size]) + item)  # as a str
    if size < 256:
        forms.append(b"\xd9" + bytes([size]) + item)  # as a str8
    return forms


def test_good_transactions_decode_the_same_both_ways() -> None:
    for tx in GOOD:
        assert assert_same(tx.encoded)
        assert _decode_fast(tx.encoded) is not None


def test_bad_fields_are_refused_the_same_both_ways() -> None:
    corpus = field_corpus()
    accepted = sum(assert_same(raw) for raw in corpus)
    assert 0 < accepted < len(corpus) // 2  # the corpus holds both, mostly bad


def test_bad_shapes_are_refused_the_same_both_ways() -> None:
    for raw in shape_corpus():
        assert not assert_same(raw)


def test_non_canonical_encodings_are_refused_the_same_both_ways() -> None:
    corpus = non_canonical_corpus()
    assert len(corpus) > 100
    for raw in corpus:
        assert not assert_same(raw)


def test_oversized_data_is_refused_the_same_both_ways() -> None:
    over = signed(data=b"d" * (MAX_TX_DATA + 1), gas_limit=10_000_000)
    assert not assert_same(over.encoded)


@pytest.mark.parametrize("seed", range(4))
def test_flipped_bits_and_cut_bytes_are_judged_the_same_both_ways(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2500):
        raw = bytearray(rng.choice(GOOD[:8]).encoded)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(raw))
            raw[at] ^= 1 << rng.randrange(8)
        if rng.random() < 0.1:
            del raw[rng.randrange(len(raw)) :]
        assert_same(bytes(raw))


def test_a_decoded_transaction_is_a_transaction_like_any_other() -> None:
    """Frozen, picklable, copyable and replaceable as one built by its constructor."""
    tx = Transaction.decode(GOOD[0].encoded)
    with pytest.raises(AttributeError):
        tx.nonce = 4  # type: ignore[misc]
    again = pickle.loads(pickle.dumps(tx))
    assert type(again) is Transaction and again == tx and again.hash == tx.hash
    assert copy.copy(tx) == tx
    changed = dataclasses.replace(tx, nonce=4)
    assert changed.nonce == 4 and changed.encoded == Transaction(*changed.to_wire()[1:]).encoded


def test_threads_decoding_at_once_each_get_their_own_transactions() -> None:
    """The canonical check packs with a packer per thread: threads decoding at once (the block thread,
    the event loop, verifiers) must not see each other's bytes."""
    raws = [signed(nonce=n, data=bytes([n]) * n).encoded for n in range(40)]
    results: dict[int, list[bytes]] = {}

    def work(k: int) -> None:
        results[k] = [Transaction.decode(raw).encoded for raw in raws * 50]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[k] == raws * 50 for k in range(4))
