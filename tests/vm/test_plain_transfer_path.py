"""The one-pass path for plain transfers gives exactly what the general path gives: the same receipt,
or the same error with the same words, and the same state changes; for any transfer, valid or not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vm.execution as execution
from core.errors import InvalidTransaction
from core.genesis import ChainParams
from core.keys import PrivateKey
from core.receipt import Receipt
from core.transaction import MAX_TX_DATA, Transaction, TxKind
from core.units import U64_MAX
from vm.account import Account, account_key
from vm.execution import BlockContext, apply_transaction
from vm.state import StateView

CHAIN = 31
PARAMS = ChainParams(min_gas_price=2, block_gas_limit=1_000_000, max_block_txs=50, block_reward=0)
KEYS = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(3)]
STRANGER = b"\x44" * 20  # an address with no account
BALANCES = [0, 60_000, 10**12, U64_MAX - 5, U64_MAX]

Outcome = tuple[Receipt | None, tuple[type, str] | None, dict[bytes, bytes | None]]


def _run(accounts: dict[bytes, Account], txs: list[Transaction]) -> list[Outcome]:
    state = {account_key(a): acc.encode() for a, acc in accounts.items()}
    view = StateView(state)  # a dict is a state reader
    ctx = BlockContext(CHAIN, 5, 1_000, b"\x09" * 20, PARAMS)
    out: list[Outcome] = []
    for tx in txs:
        try:
            out.append((apply_transaction(view, tx, ctx), None, view.changes()))
        except InvalidTransaction as exc:
            out.append((None, (type(exc), str(exc)), view.changes()))
    return out


transfers = st.builds(
    lambda signer, chain, nonce, gas, price, to, value, data: Transaction(
        chain, b"", nonce, gas, price, TxKind.TRANSFER, to, value, data
    ).signed_by(KEYS[signer]),
    st.integers(0, len(KEYS) - 1),
    st.sampled_from([CHAIN, CHAIN, CHAIN, CHAIN + 1]),
    st.integers(0, 3),
    st.sampled_from([0, 20_999, 21_000, 21_000, 21_500, 40_000, 1_000_001]),
    st.sampled_from([1, 2, 2, 3]),
    st.sampled_from([*(k.address for k in KEYS), STRANGER, b""]),
    st.sampled_from([0, 1, 7, 10**9, U64_MAX - 3, U64_MAX]),
    st.sampled_from([b"", b"", b"memo", b"\x00" * 40]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(BALANCES), min_size=len(KEYS), max_size=len(KEYS)), st.lists(transfers, max_size=8))
def test_the_plain_transfer_path_equals_the_general_path(balances: list[int], txs: list[Transaction]) -> None:
    accounts = {k.address: Account(b, 0) for k, b in zip(KEYS, balances, strict=True) if b}
    fast = _run(accounts, txs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execution, "_plain_transfer", lambda view, tx, ctx: None)
        general = _run(accounts, txs)
    assert fast == general


def _both(accounts: dict[bytes, Account], txs: list[Transaction]) -> list[Outcome]:
    fast = _run(accounts, txs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execution, "_plain_transfer", lambda view, tx, ctx: None)
        assert _run(accounts, txs) == fast
    return fast


def _transfer(signer: int, nonce: int, to: bytes, value: int, gas: int = 21_000, price: int = 2) -> Transaction:
    return Transaction(CHAIN, b"", nonce, gas, price, TxKind.TRANSFER, to, value, b"").signed_by(KEYS[signer])


FEE = 42_000
EDGES = [
    ({0: U64_MAX, 1: 10**12}, [_transfer(1, 0, KEYS[0].address, 7)]),  # the recipient would overflow
    ({0: U64_MAX - 6, 1: 10**12}, [_transfer(1, 0, KEYS[0].address, 6)]),  # it reaches 2^64 - 1 exactly
    ({0: U64_MAX}, [_transfer(0, 0, KEYS[0].address, 7)]),  # to oneself at the top: the fee is paid first
    ({0: U64_MAX}, [_transfer(0, 0, KEYS[0].address, U64_MAX - FEE)]),
    ({0: FEE + 5}, [_transfer(0, 0, STRANGER, 5)]),  # exactly what it holds
    ({0: FEE + 4}, [_transfer(0, 0, STRANGER, 5)]),  # one short
    ({0: FEE}, [_transfer(0, 0, b"", 0)]),  # no recipient
    ({0: 10**12}, [_transfer(0, 0, STRANGER, 0), _transfer(0, 1, KEYS[2].address, 0)]),  # nothing moves
    ({0: 10**12}, [_transfer(0, 0, STRANGER, 1, gas=20_999), _transfer(0, 0, STRANGER, 1, price=1)]),
    ({0: 10**12}, [_transfer(0, 1, STRANGER, 1), _transfer(0, 0, STRANGER, 1), _transfer(0, 0, STRANGER, 1)]),
]


@pytest.mark.parametrize(("balances", "txs"), EDGES)
def test_the_edges_of_a_transfer_take_the_same_outcome_either_way(
    balances: dict[int, int], txs: list[Transaction]
) -> None:
    _both({KEYS[i].address: Account(b) for i, b in balances.items()}, txs)


def test_an_oversized_transfer_takes_the_general_path_and_its_error() -> None:
    sender = KEYS[0]
    tx = Transaction(CHAIN, b"", 0, 900_000, 2, TxKind.TRANSFER, STRANGER, 1, b"\x01" * (MAX_TX_DATA + 1))
    tx = tx.signed_by(sender)
    [(receipt, error, changes)] = _run({sender.address: Account(10**12)}, [tx])
    assert receipt is None and error is not None and error[0] is InvalidTransaction and not changes
