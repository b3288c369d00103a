"""Wire/ledger types: round trips, signatures over every field, and rejection of malformed encodings."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import codec
from core.block import (
    BLOCK_TAG,
    COMMIT_TAG,
    HEADER_TAG,
    MAX_BLOCK_BYTES,
    VOTE_TAG,
    Block,
    Commit,
    CommitSig,
    Header,
    Vote,
    VoteType,
    commit_hash,
    evidence_root,
    transactions_root,
)
from core.errors import ConfigError, DecodeError, EncodingTooLarge
from core.genesis import Genesis
from core.hashing import EMPTY_MERKLE_ROOT, ZERO_HASH, merkle_root, sha256
from core.keys import PrivateKey, address_hex
from core.receipt import EVENT_TAG, RECEIPT_TAG, STATUS_FAILED, STATUS_SUCCESS, Event, Receipt
from core.transaction import MAX_TX_DATA, TX_TAG, Transaction, TxKind
from core.units import U64_MAX, UNIT, format_amount, parse_amount
from core.validators import VALIDATOR_SET_TAG, Validator, ValidatorSet

CHAIN = 7777
U64 = st.integers(min_value=0, max_value=U64_MAX)


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


def make_tx(i: int = 1, **overrides: Any) -> Transaction:
    fields: dict[str, Any] = dict(
        chain_id=CHAIN,
        sender=b"",
        nonce=0,
        gas_limit=21_000,
        gas_price=1,
        kind=int(TxKind.TRANSFER),
        to=key(50).address,
        value=1000,
        data=b"",
    )
    fields.update(overrides)
    return Transaction(**fields).signed_by(key(i))


def make_header(**overrides: Any) -> Header:
    fields: dict[str, Any] = dict(
        chain_id=CHAIN,
        height=5,
        timestamp_ms=1_700_000_000_000,
        parent_hash=b"\x01" * 32,
        proposer=key(1).address,
        tx_root=b"\x02" * 32,
        state_root=b"\x03" * 32,
        receipts_root=b"\x04" * 32,
        validators_hash=b"\x05" * 32,
        next_validators_hash=b"\x06" * 32,
        last_commit_hash=b"\x07" * 32,
        evidence_hash=b"\x08" * 32,
        gas_used=42_000,
        tx_count=2,
    )
    fields.update(overrides)
    return Header(**fields)


def make_commit(height: int = 4, block_hash: bytes = b"\x09" * 32, signers: tuple[int, ...] = (1, 2)) -> Commit:
    sigs = []
    for i in signers:
        vote = Vote(VoteType.PRECOMMIT, height, 0, block_hash, key(i).address).signed_by(key(i), CHAIN)
        sigs.append(CommitSig(key(i).address, vote.signature))
    return Commit(height, 0, block_hash, tuple(sigs))


def reencode(wire: Any) -> Any:
    """`wire` as it would arrive: through canonical bytes and back."""
    return codec.decode(codec.encode(wire), limits=codec.Limits(max_depth=8))


def mutated(wire: list[Any], index: int, value: Any) -> list[Any]:
    out = list(wire)
    out[index] = value
    return out


# --- transactions ---------------------------------------------------------------------------------

tx_fields = st.fixed_dictionaries(
    {
        "chain_id": U64,
        "nonce": U64,
        "gas_limit": U64,
        "gas_price": U64,
        "kind": st.sampled_from([int(k) for k in TxKind]),
        "to": st.one_of(st.just(b""), st.binary(min_size=20, max_size=20)),
        "value": U64,
        "data": st.binary(max_size=300),
    }
)


@settings(max_examples=100)
@given(tx_fields, st.integers(min_value=1, max_value=4))
def test_tx_round_trip(fields: dict[str, Any], signer: int) -> None:
    tx = Transaction(sender=b"", **fields).signed_by(key(signer))
    assert tx.signature_valid()
    decoded = Transaction.decode(tx.encoded)
    assert decoded == tx
    assert decoded.hash == tx.hash == sha256(tx.encoded)
    assert decoded.sender_address == key(signer).address
    assert decoded.signature_valid()
    assert Transaction.from_wire(reencode(tx.to_wire())) == tx
    # the payload cut from the signed bytes is the encoding of the unsigned body
    body = codec.encode(tx.to_wire()[:-1])
    assert tx.signing_payload() == decoded.signing_payload() == body
    assert decoded.encoded == tx.encoded and decoded.to_wire() == tx.to_wire()


TAMPERS: dict[str, Any] = {
    "chain_id": CHAIN + 1,
    "sender": key(2).public_key,
    "nonce": 1,
    "gas_limit": 21_001,
    "gas_price": 2,
    "kind": int(TxKind.CALL),
    "to": key(51).address,
    "value": 1001,
    "data": b"x",
}


@pytest.mark.parametrize("field", sorted(TAMPERS))
def test_tampering_any_tx_field_breaks_the_signature(field: str) -> None:
    tx = make_tx()
    assert tx.signature_valid()
    tampered = dataclasses.replace(tx, **{field: TAMPERS[field]})
    assert tampered.hash != tx.hash
    assert not tampered.signature_valid()
    # also when it travels over the wire
    assert not Transaction.decode(tampered.encoded).signature_valid()


@settings(max_examples=60)
@given(st.data())
def test_flipping_any_bit_of_a_signed_tx_never_yields_a_valid_other_tx(data: st.DataObject) -> None:
    tx = make_tx(data=b"payload")
    raw = bytearray(tx.encoded)
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="byte")
    bit = data.draw(st.integers(min_value=0, max_value=7), label="bit")
    raw[index] ^= 1 << bit
    try:
        other = Transaction.decode(bytes(raw))
    except DecodeError:
        return
    assert other != tx
    assert not other.signature_valid()


def test_tampering_the_signature_breaks_it() -> None:
    tx = make_tx()
    sig = bytearray(tx.signature)
    sig[10] ^= 1
    assert not dataclasses.replace(tx, signature=bytes(sig)).signature_valid()
    assert not dataclasses.replace(tx, signature=b"").signature_valid()


def test_tx_signed_by_sets_the_sender() -> None:
    tx = make_tx(3)
    assert tx.sender == key(3).public_key
    assert tx.sender_address == key(3).address
    assert tx.max_fee == tx.gas_limit * tx.gas_price


def _tx_wire() -> list[Any]:
    return make_tx(data=b"abc").to_wire()


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, 2),  # wrong tag
        (0, True),
        (1, -1),
        (1, "7777"),
        (1, True),
        (2, bytes(31)),
        (2, bytes(33)),
        (2, "x" * 32),
        (3, -1),
        (3, b"\x00"),
        (4, None),
        (5, -5),
        (6, 99),  # unknown kind
        (6, 256),
        (6, -1),
        (7, bytes(19)),
        (7, bytes(21)),
        (7, None),
        (8, -1),
        (8, False),
        (9, "abc"),
        (9, None),
        (10, bytes(63)),
        (10, bytes(65)),
        (10, b""),
        (10, None),
    ],
)
def test_tx_rejects_bad_fields(index: int, value: Any) -> None:
    wire = mutated(_tx_wire(), index, value)
    with pytest.raises(DecodeError):
        Transaction.from_wire(wire)
    with pytest.raises(DecodeError):
        Transaction.decode(codec.encode(wire))


@pytest.mark.parametrize("wire", [[], [TX_TAG], _tx_wire()[:10], [*_tx_wire(), b""], "tx", None, 1])
def test_tx_rejects_wrong_shapes(wire: Any) -> None:
    with pytest.raises(DecodeError):
        Transaction.from_wire(wire)


def test_tx_size_limits() -> None:
    at_limit = make_tx(data=b"d" * MAX_TX_DATA, gas_limit=10_000_000)
    assert Transaction.decode(at_limit.encoded) == at_limit
    over = make_tx(data=b"d" * (MAX_TX_DATA + 1), gas_limit=10_000_000)
    with pytest.raises(EncodingTooLarge):
        Transaction.decode(over.encoded)
    with pytest.raises(DecodeError):
        Transaction.decode(make_tx().encoded + b"\x00")
    with pytest.raises(DecodeError):
        Transaction.decode(make_tx().encoded[:-1])
    with pytest.raises(DecodeError):
        Transaction.decode(codec.encode(mutated(_tx_wire(), 9, [[b"deep"]])))


def test_tx_non_canonical_bytes_are_rejected() -> None:
    tx = make_tx(nonce=5)
    raw = tx.encoded
    # nonce 5 is fixint 0x05 after tag, chain id (uint16) and sender (bin8 of 32)
    prefix = b"\x9b\x01\xcd" + CHAIN.to_bytes(2, "big") + b"\xc4\x20" + tx.sender
    assert raw.startswith(prefix + b"\x05")
    wider = prefix + b"\xcc\x05" + raw[len(prefix) + 1 :]
    with pytest.raises(DecodeError):
        Transaction.decode(wider)


# --- headers, votes, commits, blocks --------------------------------------------------------------


@settings(max_examples=50)
@given(U64, U64, U64, U64, U64, st.binary(min_size=32, max_size=32))
def test_header_round_trip(chain_id: int, height: int, ts: int, gas: int, count: int, parent: bytes) -> None:
    header = make_header(
        chain_id=chain_id, height=height, timestamp_ms=ts, gas_used=gas, tx_count=count, parent_hash=parent
    )
    again = Header.from_wire(reencode(header.to_wire()))
    assert again == header
    assert again.hash == header.hash == sha256(codec.encode(header.to_wire()))


def test_header_hash_covers_every_field() -> None:
    header = make_header()
    seen = {header.hash}
    for f in dataclasses.fields(Header):
        if not f.init:
            continue
        value = getattr(header, f.name)
        changed = value + 1 if isinstance(value, int) else bytes([value[0] ^ 1]) + value[1:]
        other = dataclasses.replace(header, **{f.name: changed})
        assert other.hash not in seen, f.name
        seen.add(other.hash)


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, 3),
        (1, -1),
        (2, "5"),
        (3, None),
        (4, bytes(31)),
        (5, bytes(32)),
        (5, bytes(19)),
        (6, bytes(33)),
        (7, b""),
        (8, 1),
        (9, bytes(31)),
        (10, bytes(31)),
        (11, bytes(31)),
        (12, bytes(31)),
        (13, -1),
        (14, b"\x02"),
    ],
)
def test_header_rejects_bad_fields(index: int, value: Any) -> None:
    with pytest.raises(DecodeError):
        Header.from_wire(mutated(make_header().to_wire(), index, value))


def test_header_rejects_wrong_lengths() -> None:
    wire = make_header().to_wire()
    for bad in (wire[:14], [*wire, 0], [HEADER_TAG], [], None):
        with pytest.raises(DecodeError):
            Header.from_wire(bad)


@settings(max_examples=40)
@given(
    st.sampled_from([VoteType.PREVOTE, VoteType.PRECOMMIT]),
    U64,
    st.integers(min_value=0, max_value=2**32 - 1),
    st.one_of(st.just(b""), st.binary(min_size=32, max_size=32)),
)
def test_vote_round_trip(vote_type: int, height: int, round_: int, block_hash: bytes) -> None:
    vote = Vote(int(vote_type), height, round_, block_hash, key(1).address).signed_by(key(1), CHAIN)
    again = Vote.from_wire(reencode(vote.to_wire()))
    assert again == vote
    assert again.verify(key(1).public_key, CHAIN)
    assert not again.verify(key(2).public_key, CHAIN)


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, VOTE_TAG + 1),
        (1, 0),
        (1, 3),
        (1, 256),
        (2, -1),
        (3, 2**32),
        (4, bytes(31)),
        (4, bytes(33)),
        (4, None),
        (5, bytes(32)),
        (6, bytes(63)),
    ],
)
def test_vote_rejects_bad_fields(index: int, value: Any) -> None:
    vote = Vote(VoteType.PREVOTE, 3, 1, b"\x01" * 32, key(1).address).signed_by(key(1), CHAIN)
    with pytest.raises(DecodeError):
        Vote.from_wire(mutated(vote.to_wire(), index, value))
    with pytest.raises(DecodeError):
        Vote.from_wire(vote.to_wire()[:6])


def test_commit_round_trip() -> None:
    commit = make_commit(signers=(1, 2, 3))
    assert Commit.decode(commit.encode()) == commit
    assert commit.hash() == sha256(commit.encode())
    assert commit_hash(commit) == commit.hash()
    assert commit_hash(None) == ZERO_HASH
    for sig in commit.signatures:
        signer = next(i for i in (1, 2, 3) if key(i).address == sig.validator)
        assert commit.precommit_of(sig).verify(key(signer).public_key, CHAIN)
    empty = Commit(0, 0, b"\x01" * 32, ())
    assert Commit.decode(empty.encode()) == empty


@pytest.mark.parametrize(
    "wire",
    [
        [COMMIT_TAG + 1, 4, 0, b"\x09" * 32, []],
        [COMMIT_TAG, 4, 0, b"\x09" * 32],
        [COMMIT_TAG, -1, 0, b"\x09" * 32, []],
        [COMMIT_TAG, 4, 2**32, b"\x09" * 32, []],
        [COMMIT_TAG, 4, 0, b"", []],
        [COMMIT_TAG, 4, 0, b"\x09" * 31, []],
        [COMMIT_TAG, 4, 0, b"\x09" * 32, None],
        [COMMIT_TAG, 4, 0, b"\x09" * 32, b""],
        [COMMIT_TAG, 4, 0, b"\x09" * 32, [[bytes(20)]]],
        [COMMIT_TAG, 4, 0, b"\x09" * 32, [[bytes(20), bytes(64), 1]]],
        [COMMIT_TAG, 4, 0, b"\x09" * 32, [[bytes(19), bytes(64)]]],
        [COMMIT_TAG, 4, 0, b"\x09" * 32, [[bytes(20), bytes(63)]]],
        [COMMIT_TAG, 4, 0, b"\x09" * 32, [b"x"]],
    ],
)
def test_commit_rejects(wire: Any) -> None:
    with pytest.raises(DecodeError):
        Commit.decode(codec.encode(wire))


def _block(last_commit: Commit | None = None, evidence: tuple[bytes, ...] = ()) -> Block:
    txs = (make_tx(1), make_tx(2, value=5, data=b"hi"))
    header = make_header(
        tx_root=transactions_root(txs), last_commit_hash=commit_hash(last_commit), evidence_hash=evidence_root(evidence)
    )
    return Block(header, txs, last_commit, evidence)


def test_block_round_trip() -> None:
    for block in (_block(), _block(make_commit(), (b"ev1", b"")), Block(make_header(), (), None, ())):
        again = Block.decode(block.encode())
        assert again == block
        assert again.hash == block.hash == block.header.hash
        assert again.height == block.height
        assert [tx.hash for tx in again.transactions] == [tx.hash for tx in block.transactions]


def test_block_rejects() -> None:
    good = _block(make_commit()).to_wire()
    bad_wires: list[Any] = [
        mutated(good, 0, BLOCK_TAG + 1),
        good[:4],
        [*good, []],
        mutated(good, 1, None),
        mutated(good, 1, make_header().to_wire()[:14]),
        mutated(good, 2, None),
        mutated(good, 2, [b"not a tx"]),
        mutated(good, 2, [mutated(make_tx().to_wire(), 6, 9)]),
        mutated(good, 3, 5),
        mutated(good, 3, [COMMIT_TAG]),
        mutated(good, 4, None),
        mutated(good, 4, [5]),
        mutated(good, 4, [b"e" * 4097]),
    ]
    for wire in bad_wires:
        with pytest.raises(DecodeError):
            Block.decode(codec.encode(wire))
    assert Block.decode(codec.encode(mutated(good, 4, [b"e" * 4096]))).evidence == (b"e" * 4096,)


def test_block_decode_limits() -> None:
    with pytest.raises(EncodingTooLarge):
        Block.decode(b"\xc0" * (MAX_BLOCK_BYTES + 1))
    with pytest.raises(DecodeError):
        Block.decode(_block().encode() + b"\x00")


def test_roots() -> None:
    assert transactions_root([]) == EMPTY_MERKLE_ROOT == sha256(b"")
    tx = make_tx()
    assert transactions_root([tx]) == sha256(b"\x00" + tx.encoded)
    a, b, c = (sha256(b"\x00" + x) for x in (b"a", b"b", b"c"))
    assert merkle_root([b"a", b"b"]) == sha256(b"\x01" + a + b)
    assert merkle_root([b"a", b"b", b"c"]) == sha256(b"\x01" + sha256(b"\x01" + a + b) + c)
    assert merkle_root([b"a", b"b"]) != merkle_root([b"b", b"a"])
    assert evidence_root(()) == EMPTY_MERKLE_ROOT


# --- receipts -------------------------------------------------------------------------------------

event_values = st.one_of(U64, st.binary(max_size=40), st.text(max_size=40), st.booleans())


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20), st.lists(st.tuples(st.text(max_size=10), event_values), max_size=4)
        ),
        max_size=4,
    ),
    st.sampled_from([STATUS_FAILED, STATUS_SUCCESS]),
    U64,
    st.text(max_size=100),
)
def test_receipt_round_trip(events: list[tuple[str, list[tuple[str, Any]]]], status: int, gas: int, error: str) -> None:
    receipt = Receipt(
        b"\x01" * 32, status, gas, tuple(Event(key(1).address, name, tuple(f)) for name, f in events), error
    )
    again = Receipt.decode(receipt.encode())
    assert again == receipt
    assert again.succeeded == (status == STATUS_SUCCESS)


def _event_wire(fields: Any) -> list[Any]:
    return [EVENT_TAG, key(1).address, "Transfer", fields]


@pytest.mark.parametrize(
    "wire",
    [
        [RECEIPT_TAG + 1, b"\x01" * 32, 1, 0, [], ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, []],
        [RECEIPT_TAG, b"\x01" * 31, 1, 0, [], ""],
        [RECEIPT_TAG, b"\x01" * 32, 256, 0, [], ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, -1, [], ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, None, ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [], b"err"],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [], "e" * 4097],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [[EVENT_TAG + 1, key(1).address, "T", []]], ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [[EVENT_TAG, bytes(19), "T", []]], ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [[EVENT_TAG, key(1).address, "T" * 257, []]], ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [_event_wire(None)], ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [_event_wire([["a"]])], ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [_event_wire([[1, 2]])], ""],
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [_event_wire([["a", None]])], ""],  # values are int/bytes/str/bool
        [RECEIPT_TAG, b"\x01" * 32, 1, 0, [_event_wire([["a", [1, 2]]])], ""],
    ],
)
def test_receipt_rejects(wire: Any) -> None:
    with pytest.raises(DecodeError):
        Receipt.decode(codec.encode(wire))


# --- validator sets -------------------------------------------------------------------------------


def test_validator_set_is_ordered_by_address_and_round_trips() -> None:
    validators = [Validator(key(i).public_key, i) for i in (1, 2, 3, 4)]
    a = ValidatorSet(tuple(validators))
    b = ValidatorSet(tuple(reversed(validators)))
    assert a == b and a.hash() == b.hash()
    assert [v.address for v in a.validators] == sorted(v.address for v in validators)
    assert a.total_power == 10 and len(a) == 4
    assert a.by_address[key(3).address].power == 3
    again = ValidatorSet.from_wire(reencode(a.to_wire()))
    assert again == a and again.hash() == a.hash()


@pytest.mark.parametrize(("powers", "quorum"), [((1,), 1), ((1, 1, 1), 3), ((1, 1, 1, 1), 3), ((3, 3, 4), 7)])
def test_quorum_is_more_than_two_thirds(powers: tuple[int, ...], quorum: int) -> None:
    vs = ValidatorSet(tuple(Validator(key(i + 1).public_key, p) for i, p in enumerate(powers)))
    assert vs.quorum() == quorum
    assert 3 * vs.quorum() > 2 * vs.total_power
    assert 3 * (vs.quorum() - 1) <= 2 * vs.total_power


def test_validator_set_rejects() -> None:
    with pytest.raises(ValueError):
        ValidatorSet((Validator(key(1).public_key, 1), Validator(key(1).public_key, 2)))
    with pytest.raises(ValueError):
        ValidatorSet((Validator(key(1).public_key, 0),))
    pk = key(1).public_key
    for wire in (
        [VALIDATOR_SET_TAG + 1, [[pk, 1]]],
        [VALIDATOR_SET_TAG, [[pk, 1]], 0],
        [VALIDATOR_SET_TAG, None],
        [VALIDATOR_SET_TAG, [[pk]]],
        [VALIDATOR_SET_TAG, [[pk[:31], 1]]],
        [VALIDATOR_SET_TAG, [[pk, 0]]],
        [VALIDATOR_SET_TAG, [[pk, -1]]],
        [VALIDATOR_SET_TAG, [[pk, 1], [pk, 2]]],
    ):
        with pytest.raises(DecodeError):
            ValidatorSet.from_wire(wire)


# --- units ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("1", UNIT),
        ("1.5", 1_500_000_000),
        ("1.5AIC", 1_500_000_000),
        ("1.5 AIC", 1_500_000_000),
        ("1.5 aic", 1_500_000_000),
        (" 2 AIC ", 2 * UNIT),
        (".5", UNIT // 2),
        ("5.", 5 * UNIT),
        ("0.000000001", 1),
        ("1500units", 1500),
        ("1500 units", 1500),
        ("1500UNITS", 1500),
        ("1_000", 1000 * UNIT),
        ("1_000.25 AIC", 1000 * UNIT + UNIT // 4),
        ("1,000.25 AIC", 1000 * UNIT + UNIT // 4),
        ("18446744073.709551615", U64_MAX),
        (f"{U64_MAX}units", U64_MAX),
        ("0", 0),
    ],
)
def test_parse_amount(text: str, units: int) -> None:
    assert parse_amount(text) == units


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        ".",
        "abc",
        "-1",
        "+1",
        "1e9",
        "1.2.3",
        "0x10",
        "1.0000000001",
        "18446744073.709551616",
        f"{U64_MAX + 1}units",
        "units",
        "AIC",
        "1.5units",
        "-5units",
        "1 ETH",
        "²",
        "1²",
        "١٢",
        "１",
        "1,5",
        "1,00.25 AIC",
        "10,00",
    ],
)
def test_parse_amount_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"amount|decimals|limit|whole number|commas"):
        parse_amount(text)


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (0, "0 AIC"),
        (1, "0.000000001 AIC"),
        (1_500_000_000, "1.5 AIC"),
        (UNIT * 1234, "1,234 AIC"),
        (U64_MAX, "18,446,744,073.709551615 AIC"),
    ],
)
def test_format_amount(units: int, text: str) -> None:
    assert format_amount(units) == text


@settings(max_examples=200)
@given(U64)
def test_format_parse_round_trip(units: int) -> None:
    assert parse_amount(format_amount(units)) == units
    assert parse_amount(f"{units}units") == units


# --- genesis --------------------------------------------------------------------------------------


def genesis_doc() -> dict[str, Any]:
    return {
        "chain_id": CHAIN,
        "chain_name": "aichain-test",
        "timestamp_ms": 1_767_225_600_000,
        "validators": [
            {"public_key": "0x" + key(1).public_key.hex(), "power": 10, "name": "v0"},
            {"public_key": key(2).public_key.hex(), "power": 5, "name": "v1"},
        ],
        "allocations": {
            address_hex(key(1).address): "1000000 AIC",
            address_hex(key(3).address).upper().replace("0X", "0x"): 1234,
            address_hex(key(4).address): "1.5",
        },
        "params": {"block_time_ms": 500, "min_gas_price": 2, "block_reward": "2 AIC"},
    }


def test_genesis_from_dict() -> None:
    g = Genesis.from_dict(genesis_doc())
    assert g.chain_id == CHAIN and g.chain_name == "aichain-test"
    assert g.params.block_time_ms == 500 and g.params.min_gas_price == 2
    assert g.params.block_reward == 2 * UNIT
    assert g.params.empty_block_interval_ms == 10_000  # default
    assert dict(g.allocations) == {key(1).address: 10**6 * UNIT, key(3).address: 1234, key(4).address: 1_500_000_000}
    assert g.total_supply() == 10**6 * UNIT + 1234 + 1_500_000_000
    assert g.validators.total_power == 15
    assert dict(g.validator_names)[key(2).address] == "v1"
    assert len(g.hash()) == 32


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@settings(max_examples=30)
@given(st.integers(min_value=0, max_value=2**32), st.booleans())
def test_genesis_hash_is_stable_under_json_key_order_and_layout(seed: int, reverse_validators: bool) -> None:
    doc = genesis_doc()
    reference = Genesis.from_dict(doc).hash()
    shuffled = _shuffled(doc, random.Random(seed))
    if reverse_validators:
        shuffled["validators"] = list(reversed(shuffled["validators"]))
    text = json.dumps(shuffled, indent=seed % 5, sort_keys=bool(seed % 2))
    assert Genesis.from_dict(json.loads(text)).hash() == reference


def test_genesis_hash_changes_with_content() -> None:
    reference = Genesis.from_dict(genesis_doc()).hash()
    for change in (
        {"chain_id": CHAIN + 1},
        {"timestamp_ms": 1},
        {"chain_name": "other"},
        {"params": {"block_reward": "3 AIC"}},
        {"allocations": {}},
    ):
        assert Genesis.from_dict({**genesis_doc(), **change}).hash() != reference, change


def test_genesis_to_dict_save_load_round_trip(tmp_path: Path) -> None:
    g = Genesis.from_dict(genesis_doc())
    again = Genesis.from_dict(json.loads(json.dumps(g.to_dict())))
    assert again.hash() == g.hash()
    assert dataclasses.replace(again, validator_names=()) == dataclasses.replace(g, validator_names=())
    assert dict(again.validator_names) == dict(g.validator_names)
    path = tmp_path / "cfg" / "genesis.json"
    g.save(path)
    loaded = Genesis.load(path)
    assert loaded.hash() == g.hash()
    assert dict(loaded.validator_names) == dict(g.validator_names)


def test_genesis_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no genesis file"):
        Genesis.load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Genesis.load(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        Genesis.load(bad)


def _with(**changes: Any) -> dict[str, Any]:
    doc = genesis_doc()
    for k, v in changes.items():
        if v is _DELETE:
            del doc[k]
        else:
            doc[k] = v
    return doc


_DELETE = object()
_PK = "0x" + key(1).public_key.hex()


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (_with(chain_id=_DELETE), "chain_id"),
        (_with(validators=_DELETE), "validators"),
        (_with(chain_id=0), "chain_id"),
        (_with(chain_id=-1), "chain_id"),
        (_with(chain_id=2**53), "chain_id"),
        (_with(chain_id="7777"), "chain_id"),
        (_with(chain_id=True), "chain_id"),
        (_with(validators=[]), "at least one validator"),
        (_with(validators=5), "validators"),
        (_with(validators=[{"power": 1}]), "public_key"),
        (_with(validators=[{"public_key": "0x1234"}]), "public_key"),
        (_with(validators=[{"public_key": "zz" * 32}]), "public_key"),
        (_with(validators=[{"public_key": 5}]), "public_key"),
        (_with(validators=["0x" + "00" * 32]), "validator"),
        (_with(validators=[{"public_key": _PK, "power": 0}]), "power"),
        (_with(validators=[{"public_key": _PK, "power": -1}]), "power"),
        (_with(validators=[{"public_key": _PK, "power": "1"}]), "power"),
        (_with(validators=[{"public_key": _PK, "power": True}]), "power"),
        (_with(validators=[{"public_key": _PK, "power": 2**32}]), "power"),
        (_with(validators=[{"public_key": _PK}, {"public_key": _PK}]), "validator"),
        (_with(allocations={"0x1234": "1 AIC"}), "0x1234"),
        (_with(allocations={"alice": "1 AIC"}), "alice"),
        (_with(allocations={address_hex(key(1).address): "1.5 XYZ"}), "allocation"),
        (_with(allocations={address_hex(key(1).address): -1}), "allocation"),
        (_with(allocations={address_hex(key(1).address): 2**64}), "allocation"),
        (_with(allocations={address_hex(key(1).address): True}), "allocation"),
        (_with(allocations={address_hex(key(1).address): 1.5}), "allocation"),
        (_with(allocations={address_hex(key(1).address): "1.0000000001"}), "allocation"),
        (_with(allocations={address_hex(key(i).address): f"{U64_MAX}units" for i in (1, 2)}), "2^64"),
        (_with(allocations=["0x" + "00" * 20]), "allocations"),
        (_with(params={"block_time": 5}), "block_time"),
        (_with(params={"block_time_ms": 0}), "block_time_ms"),
        (_with(params={"max_block_txs": 0}), "max_block_txs"),
        (_with(params={"min_gas_price": -1}), "min_gas_price"),
        (_with(params={"min_gas_price": "1"}), "min_gas_price"),
        (_with(params={"min_gas_price": 1.5}), "min_gas_price"),
        (_with(params={"block_gas_limit": True}), "block_gas_limit"),
        (_with(params={"block_gas_limit": 2**64}), "block_gas_limit"),
        (_with(params={"block_reward": "lots"}), "block_reward"),
        (_with(params={"block_reward": 2**64}), "block_reward"),
        (_with(params=[1, 2]), "params"),
        (_with(timestamp_ms=-1), "timestamp_ms"),
        (_with(timestamp_ms="soon"), "timestamp_ms"),
        (_with(timestamp_ms=1.5), "timestamp_ms"),
        (_with(timestamp_ms=2**64), "timestamp_ms"),
    ],
)
def test_genesis_errors_are_config_errors_with_helpful_messages(doc: Any, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Genesis.from_dict(doc)
    assert fragment in str(info.value), str(info.value)


def test_genesis_must_be_an_object() -> None:
    for doc in ("genesis", [1], None, 5):
        with pytest.raises(ConfigError):
            Genesis.from_dict(doc)  # type: ignore[arg-type]
