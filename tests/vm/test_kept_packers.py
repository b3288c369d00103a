"""Accounts and receipts encode as `codec.encode` does (its packers are tested in tests/core/test_codec.py);
a plain receipt made without `__init__` is the receipt `__init__` makes.

A receipt keeps its encoding once made (the receipts root and the block store both need it):
the kept bytes are those of its fields, a changed copy encodes its own, and equality ignores them.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import codec
from core.receipt import STATUS_FAILED, STATUS_SUCCESS, Event, Receipt
from core.units import U64_MAX
from vm.account import ACCOUNT_TAG, Account

uints = st.integers(min_value=0, max_value=U64_MAX)
values = st.one_of(uints, st.binary(max_size=40), st.text(max_size=20), st.booleans())
events = st.builds(
    Event,
    st.binary(min_size=20, max_size=20),
    st.text(max_size=12),
    st.lists(st.tuples(st.text(max_size=8), values), max_size=4).map(tuple),
)
receipts = st.builds(
    Receipt,
    st.binary(min_size=32, max_size=32),
    st.sampled_from([STATUS_FAILED, STATUS_SUCCESS]),
    uints,
    st.lists(events, max_size=3).map(tuple),
    st.text(max_size=30),
)


@given(uints, uints, st.sampled_from([b"", b"\x01" * 32]))
def test_account_encoding_is_the_codec_encoding(balance: int, nonce: int, code_hash: bytes) -> None:
    account = Account(balance, nonce, code_hash)
    assert account.encode() == codec.encode([ACCOUNT_TAG, balance, nonce, code_hash])
    assert Account.decode(account.encode()).encode() == account.encode()


@given(receipts)
def test_receipt_encoding_is_the_codec_encoding_and_is_kept(receipt: Receipt) -> None:
    encoded = receipt.encode()
    assert encoded == codec.encode(receipt.to_wire())
    assert receipt.encode() is encoded  # made once
    assert Receipt.decode(encoded) == receipt


def test_a_changed_copy_encodes_its_own_fields_and_equality_ignores_the_kept_bytes() -> None:
    receipt = Receipt(b"\x01" * 32, STATUS_SUCCESS, 21_000)
    receipt.encode()
    changed = dataclasses.replace(receipt, gas_used=21_001)
    assert changed.encode() == codec.encode(changed.to_wire()) != receipt.encode()
    fresh = Receipt(b"\x01" * 32, STATUS_SUCCESS, 21_000)
    assert fresh == receipt and hash(fresh) == hash(receipt)


def test_a_value_the_packer_refuses_leaves_it_clean_for_the_next() -> None:
    with pytest.raises(OverflowError):
        Account(U64_MAX + 1).encode()
    with pytest.raises(OverflowError):
        Receipt(b"\x02" * 32, STATUS_SUCCESS, U64_MAX + 1).encode()
    assert Account(5, 1).encode() == codec.encode([ACCOUNT_TAG, 5, 1, b""])
    receipt = Receipt(b"\x03" * 32, STATUS_FAILED, 7, (), "x")
    assert receipt.encode() == codec.encode(receipt.to_wire())


@given(st.binary(min_size=32, max_size=32), st.sampled_from([STATUS_FAILED, STATUS_SUCCESS]), uints)
def test_a_plain_receipt_is_the_one_init_makes_field_by_field(tx_hash: bytes, status: int, gas_used: int) -> None:
    plain, made = Receipt.plain(tx_hash, status, gas_used), Receipt(tx_hash, status, gas_used)
    # every field, the kept encoding included: a field added later and not set by `plain` fails here
    assert [getattr(plain, f.name) for f in dataclasses.fields(Receipt)] == [
        getattr(made, f.name) for f in dataclasses.fields(Receipt)
    ]
    assert plain == made and hash(plain) == hash(made) and repr(plain) == repr(made)
    assert plain.encode() == made.encode() == codec.encode(made.to_wire())
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.status = 3  # type: ignore[misc]
