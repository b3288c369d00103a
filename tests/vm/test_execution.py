"""The state transition of vm/execution.py: each inclusion rule, fees, refunds, payouts and supply."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import (
    AmountOverflow,
    FeeTooLow,
    GasLimitTooHigh,
    GasLimitTooLow,
    InsufficientBalance,
    InvalidBlock,
    InvalidTransaction,
    NonceTooHigh,
    NonceTooLow,
    WrongChainId,
)
from core.genesis import ChainParams
from core.keys import PrivateKey
from core.receipt import STATUS_FAILED, STATUS_SUCCESS
from core.transaction import Transaction, TxKind
from core.units import U64_MAX
from core.validators import Validator, ValidatorSet
from vm.account import Account, account_key
from vm.execution import BlockContext, BlockResult, apply_transaction, apply_transactions, finalize_block
from vm.gas import TX_BASE, TX_DATA_BYTE, intrinsic_gas
from vm.state import StateView
from vm.validators import genesis_entries

CHAIN = 7777
PARAMS = ChainParams(min_gas_price=2, block_gas_limit=10_000_000, max_block_txs=50, block_reward=0)


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


ALICE, BOB, CAROL, PROPOSER = key(1), key(2), key(3), key(9)
VALIDATORS = ValidatorSet((Validator(PROPOSER.public_key, 1),))


class DictState:
    """A `StateReader` over a dict of state key -> encoded value."""

    def __init__(self, accounts: dict[bytes, Account] | None = None) -> None:
        self.data: dict[bytes, bytes] = {}  # accounts
        self.system: dict[bytes, bytes] = genesis_entries(VALIDATORS)  # validator set and governance
        for address, account in (accounts or {}).items():
            self.data[account_key(address)] = account.encode()

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key, self.system.get(key))

    def apply(self, changes: dict[bytes, bytes | None]) -> None:
        for k, v in changes.items():
            table = self.data if k.startswith(b"a") else self.system
            if v is None:
                table.pop(k, None)
            else:
                table[k] = v

    def balances(self) -> dict[bytes, int]:
        return {k: Account.decode(v).balance for k, v in self.data.items()}


def ctx(params: ChainParams = PARAMS, proposer: bytes = PROPOSER.address) -> BlockContext:
    return BlockContext(CHAIN, 1, 1_000, proposer, params)


def tx(
    sender: PrivateKey = ALICE,
    *,
    to: bytes | None = None,
    value: int = 100,
    nonce: int = 0,
    gas_limit: int = 21_000,
    gas_price: int = 2,
    data: bytes = b"",
    chain_id: int = CHAIN,
    kind: int = int(TxKind.TRANSFER),
) -> Transaction:
    recipient = BOB.address if to is None else to
    return Transaction(chain_id, b"", nonce, gas_limit, gas_price, kind, recipient, value, data).signed_by(sender)


def view_with(**balances: int) -> StateView:
    accounts = {globals()[name.upper()].address: Account(balance) for name, balance in balances.items()}
    return StateView(DictState(accounts))


def view_of(accounts: dict[bytes, Account]) -> StateView:
    return StateView(DictState(accounts))


# --- rule 1: chain and kind -----------------------------------------------------------------------


def test_wrong_chain_id() -> None:
    view = view_with(alice=10**9)
    with pytest.raises(WrongChainId):
        apply_transaction(view, tx(chain_id=CHAIN + 1), ctx())


@pytest.mark.parametrize("kind", [7, 200])
def test_unknown_kind(kind: int) -> None:
    view = view_with(alice=10**9)
    with pytest.raises(InvalidTransaction) as info:
        apply_transaction(view, tx(kind=kind), ctx())
    assert type(info.value) is InvalidTransaction


# --- rule 2: nonce --------------------------------------------------------------------------------


def test_nonce_too_low() -> None:
    view = view_of({ALICE.address: Account(10**9, nonce=5)})
    with pytest.raises(NonceTooLow):
        apply_transaction(view, tx(nonce=4), ctx())


def test_nonce_too_high() -> None:
    view = view_of({ALICE.address: Account(10**9, nonce=5)})
    with pytest.raises(NonceTooHigh):
        apply_transaction(view, tx(nonce=6), ctx())


def test_nonce_equal_is_accepted_and_increments() -> None:
    view = view_of({ALICE.address: Account(10**9, nonce=5)})
    apply_transaction(view, tx(nonce=5), ctx())
    assert view.account(ALICE.address).nonce == 6
    with pytest.raises(NonceTooLow):
        apply_transaction(view, tx(nonce=5), ctx())


# --- rule 3: price and gas ------------------------------------------------------------------------


def test_gas_price_below_minimum() -> None:
    view = view_with(alice=10**9)
    with pytest.raises(FeeTooLow):
        apply_transaction(view, tx(gas_price=PARAMS.min_gas_price - 1), ctx())
    apply_transaction(view, tx(gas_price=PARAMS.min_gas_price), ctx())


def test_gas_limit_below_intrinsic_gas() -> None:
    view = view_with(alice=10**9)
    data = b"0123456789"
    needed = TX_BASE + TX_DATA_BYTE * len(data)
    assert intrinsic_gas(data) == needed
    with pytest.raises(GasLimitTooLow):
        apply_transaction(view, tx(data=data, gas_limit=needed - 1), ctx())
    with pytest.raises(GasLimitTooLow):
        apply_transaction(view, tx(gas_limit=0), ctx())
    receipt = apply_transaction(view, tx(data=data, gas_limit=needed), ctx())
    assert receipt.gas_used == needed


def test_gas_limit_above_block_gas_limit() -> None:
    view = view_with(alice=10**12)
    with pytest.raises(GasLimitTooHigh):
        apply_transaction(view, tx(gas_limit=PARAMS.block_gas_limit + 1), ctx())
    apply_transaction(view, tx(gas_limit=PARAMS.block_gas_limit), ctx())


# --- rule 4: balance ------------------------------------------------------------------------------


def test_balance_must_cover_value_and_max_fee() -> None:
    t = tx(value=500, gas_limit=30_000, gas_price=3)
    cost = 500 + 30_000 * 3
    with pytest.raises(InsufficientBalance):
        apply_transaction(view_with(alice=cost - 1), t, ctx())
    with pytest.raises(InsufficientBalance):
        apply_transaction(StateView(DictState()), t, ctx())  # no account at all
    view = view_with(alice=cost)
    receipt = apply_transaction(view, t, ctx())
    assert receipt.status == STATUS_SUCCESS
    # the unused gas came back
    assert view.account(ALICE.address).balance == (30_000 - 21_000) * 3


# --- rule order and purity ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "nonce", "balance", "expected"),
    [
        ({"chain_id": CHAIN + 1, "kind": 9, "gas_price": 0}, 3, 0, WrongChainId),
        ({"kind": 9, "gas_price": 0}, 3, 0, InvalidTransaction),
        ({"nonce": 2, "gas_price": 0, "gas_limit": 1}, 3, 0, FeeTooLow),
        ({"nonce": 2, "gas_limit": 1}, 3, 0, GasLimitTooLow),
        ({"nonce": 2, "gas_limit": 10**9}, 3, 0, GasLimitTooHigh),
        ({"nonce": 2}, 3, 0, NonceTooLow),
        ({"nonce": 4}, 3, 0, NonceTooHigh),
        ({"nonce": 3}, 3, 0, InsufficientBalance),
    ],
)
def test_rules_are_checked_in_order(
    overrides: dict[str, Any], nonce: int, balance: int, expected: type[Exception]
) -> None:
    view = view_of({ALICE.address: Account(balance, nonce=nonce)})
    with pytest.raises(expected) as info:
        apply_transaction(view, tx(**overrides), ctx())
    assert type(info.value) is expected
    assert view.changes() == {}  # a rejected transaction changes nothing


# --- effects of a valid transaction ---------------------------------------------------------------


def test_transfer_moves_value_charges_gas_used_and_refunds_the_rest() -> None:
    start = 10**9
    view = view_with(alice=start, bob=7)
    data = b"hello"
    t = tx(value=12_345, gas_limit=50_000, gas_price=3, data=data)
    receipt = apply_transaction(view, t, ctx())
    used = TX_BASE + TX_DATA_BYTE * len(data)
    assert receipt.status == STATUS_SUCCESS and receipt.error == ""
    assert receipt.gas_used == used
    assert receipt.tx_hash == t.hash
    alice = view.account(ALICE.address)
    assert alice.balance == start - 12_345 - used * 3
    assert alice.nonce == 1
    assert view.account(BOB.address).balance == 7 + 12_345
    # the fee is not paid to anyone until the block is finalized
    assert view.account(PROPOSER.address).balance == 0
    changes = view.changes()
    assert set(changes) == {account_key(ALICE.address), account_key(BOB.address)}


def test_transfer_to_a_new_account_creates_it() -> None:
    view = view_with(alice=10**9)
    apply_transaction(view, tx(to=CAROL.address, value=1), ctx())
    raw = view.changes()[account_key(CAROL.address)]
    assert raw is not None and Account.decode(raw).balance == 1


def test_zero_value_transfer_to_an_empty_account_stores_nothing_for_it() -> None:
    view = view_with(alice=10**9)
    apply_transaction(view, tx(to=CAROL.address, value=0), ctx())
    assert view.changes().get(account_key(CAROL.address)) is None


def test_transfer_to_self() -> None:
    start = 10**9
    view = view_with(alice=start)
    receipt = apply_transaction(view, tx(to=ALICE.address, value=5_000, gas_limit=40_000, gas_price=2), ctx())
    assert receipt.status == STATUS_SUCCESS
    alice = view.account(ALICE.address)
    assert alice.balance == start - 21_000 * 2
    assert alice.nonce == 1


def test_transfer_to_self_of_the_whole_balance() -> None:
    fee = 21_000 * 2
    view = view_with(alice=10_000 + fee)
    receipt = apply_transaction(view, tx(to=ALICE.address, value=10_000, gas_limit=21_000, gas_price=2), ctx())
    assert receipt.status == STATUS_SUCCESS
    assert view.account(ALICE.address).balance == 10_000


def test_transfer_without_a_recipient_fails_but_charges_the_fee() -> None:
    start = 10**9
    view = view_with(alice=start)
    receipt = apply_transaction(view, tx(to=b"", value=1_000, gas_limit=30_000, gas_price=2), ctx())
    assert receipt.status == STATUS_FAILED and "recipient" in receipt.error
    assert receipt.gas_used == 21_000
    alice = view.account(ALICE.address)
    assert alice.balance == start - 21_000 * 2
    assert alice.nonce == 1


def test_recipient_overflow_fails_the_transfer_but_charges_the_fee() -> None:
    start = 10**9
    view = view_of({ALICE.address: Account(start), BOB.address: Account(U64_MAX - 10)})
    receipt = apply_transaction(view, tx(value=11), ctx())
    assert receipt.status == STATUS_FAILED and "2^64" in receipt.error
    assert view.account(BOB.address).balance == U64_MAX - 10
    assert view.account(ALICE.address).balance == start - 21_000 * 2
    # exactly up to the limit is fine
    receipt = apply_transaction(view, tx(value=10, nonce=1), ctx())
    assert receipt.status == STATUS_SUCCESS
    assert view.account(BOB.address).balance == U64_MAX


# --- blocks: proposer payout and reward -----------------------------------------------------------


def test_proposer_gets_gas_used_times_price_plus_block_reward() -> None:
    params = ChainParams(min_gas_price=1, block_gas_limit=10**7, max_block_txs=10, block_reward=777)
    view = view_with(alice=10**9, bob=10**9)
    txs = [
        tx(ALICE, to=CAROL.address, value=1, gas_limit=90_000, gas_price=3, data=b"abc"),
        tx(BOB, to=CAROL.address, value=2, gas_limit=21_000, gas_price=5),
        tx(ALICE, to=CAROL.address, value=3, nonce=1, gas_limit=25_000, gas_price=1),
    ]
    result = apply_transactions(view, txs, ctx(params), drop_invalid=False)
    used = [21_000 + 48, 21_000, 21_000]
    assert [r.gas_used for r in result.receipts] == used
    assert result.gas_used == sum(used)
    assert result.fees == used[0] * 3 + used[1] * 5 + used[2] * 1
    finalize_block(view, ctx(params), result)
    assert view.account(PROPOSER.address).balance == result.fees + 777
    assert view.account(ALICE.address).balance == 10**9 - 1 - 3 - used[0] * 3 - used[2]
    assert view.account(BOB.address).balance == 10**9 - 2 - used[1] * 5
    assert view.account(CAROL.address).balance == 6


def test_proposer_payout_adds_to_an_existing_balance() -> None:
    params = ChainParams(min_gas_price=1, block_reward=10)
    view = view_of({ALICE.address: Account(10**9), PROPOSER.address: Account(1_000)})
    result = apply_transactions(view, [tx(gas_price=1)], ctx(params), drop_invalid=False)
    finalize_block(view, ctx(params), result)
    assert view.account(PROPOSER.address).balance == 1_000 + 21_000 + 10


def test_proposer_who_is_also_the_sender() -> None:
    params = ChainParams(min_gas_price=1, block_reward=5)
    start = 10**9
    view = view_with(alice=start)
    result = apply_transactions(view, [tx(value=100, gas_price=4)], ctx(params, ALICE.address), drop_invalid=False)
    finalize_block(view, ctx(params, ALICE.address), result)
    assert view.account(ALICE.address).balance == start - 100 + 5


def test_empty_block_without_reward_changes_nothing() -> None:
    view = view_with(alice=1)
    result = apply_transactions(view, [], ctx(), drop_invalid=False)
    finalize_block(view, ctx(), result)
    assert view.changes() == {}
    assert result == BlockResult()


def test_empty_block_with_reward_pays_the_reward() -> None:
    params = ChainParams(block_reward=123)
    view = StateView(DictState())
    result = apply_transactions(view, [], ctx(params), drop_invalid=False)
    finalize_block(view, ctx(params), result)
    assert view.account(PROPOSER.address).balance == 123


def test_proposer_overflow_is_an_error() -> None:
    params = ChainParams(block_reward=2)
    view = view_of({PROPOSER.address: Account(U64_MAX - 1)})
    with pytest.raises(AmountOverflow):
        finalize_block(view, ctx(params), BlockResult())


# --- apply_transactions: proposer vs verifier -----------------------------------------------------


def test_verifier_rejects_a_block_with_an_invalid_transaction() -> None:
    view = view_with(alice=10**9)
    with pytest.raises(InvalidBlock, match="transaction 1"):
        apply_transactions(view, [tx(nonce=0), tx(nonce=2)], ctx(), drop_invalid=False)


def test_proposer_drops_invalid_transactions_and_keeps_going() -> None:
    view = view_with(alice=10**9, bob=10)
    txs = [tx(nonce=0), tx(nonce=2), tx(BOB, value=1), tx(nonce=1), tx(chain_id=1, nonce=2)]
    result = apply_transactions(view, txs, ctx(), drop_invalid=True)
    assert result.transactions == [txs[0], txs[3]]
    assert [(t, type(e)) for t, e in result.dropped] == [
        (txs[1], NonceTooHigh),
        (txs[2], InsufficientBalance),
        (txs[4], WrongChainId),
    ]
    assert view.account(ALICE.address).nonce == 2
    assert view.account(BOB.address).nonce == 0


def test_block_tx_count_limit() -> None:
    params = ChainParams(min_gas_price=1, max_block_txs=2)
    view = view_with(alice=10**9)
    txs = [tx(nonce=n, gas_price=1) for n in range(3)]
    result = apply_transactions(view, txs, ctx(params), drop_invalid=True)
    assert result.transactions == txs[:2]
    with pytest.raises(InvalidBlock):
        apply_transactions(view_with(alice=10**9), txs, ctx(params), drop_invalid=False)


def test_block_gas_limit_counts_gas_limits() -> None:
    params = ChainParams(min_gas_price=1, block_gas_limit=50_000)
    txs = [tx(nonce=0, gas_price=1, gas_limit=30_000), tx(nonce=1, gas_price=1, gas_limit=21_000)]
    result = apply_transactions(view_with(alice=10**9), txs, ctx(params), drop_invalid=True)
    assert result.transactions == txs[:1]  # 30k + 21k > 50k, although only 42k would be used
    with pytest.raises(InvalidBlock):
        apply_transactions(view_with(alice=10**9), txs, ctx(params), drop_invalid=False)
    fits = [tx(nonce=0, gas_price=1, gas_limit=29_000), tx(nonce=1, gas_price=1, gas_limit=21_000)]
    assert len(apply_transactions(view_with(alice=10**9), fits, ctx(params), drop_invalid=False).transactions) == 2


def test_a_view_reads_through_and_keeps_writes_to_itself() -> None:
    state = DictState({ALICE.address: Account(10**9)})
    before = dict(state.data)
    view = StateView(state)
    apply_transaction(view, tx(), ctx())
    assert state.data == before
    state.apply(view.changes())
    assert Account.decode(state.data[account_key(BOB.address)]).balance == 100


# --- property: supply is conserved ----------------------------------------------------------------

ACTORS = [key(i) for i in range(1, 5)]
STRANGER = key(20).address

tx_plans = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=len(ACTORS) - 1),  # sender
        st.one_of(st.integers(min_value=0, max_value=len(ACTORS) - 1), st.sampled_from([-1, -2])),  # recipient
        st.one_of(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=U64_MAX)),  # value
        st.sampled_from([0, 0, 0, 0, 0, -1, 1]),  # nonce offset
        st.integers(min_value=0, max_value=5),  # gas price (min is 1)
        st.sampled_from([0, 20_000, 21_000, 21_000, 30_000, 100_000, 2_000_000]),  # gas limit
        st.binary(max_size=8),
        st.sampled_from([CHAIN, CHAIN, CHAIN, CHAIN + 1]),
    ),
    max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=U64_MAX // 8), min_size=len(ACTORS), max_size=len(ACTORS)),
    st.lists(st.integers(min_value=0, max_value=10**8), min_size=len(ACTORS), max_size=len(ACTORS)),
    tx_plans,
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=len(ACTORS)),
)
def test_supply_is_conserved_and_balances_stay_in_range(
    big: list[int], small: list[int], plans: list[tuple[Any, ...]], reward: int, proposer_index: int
) -> None:
    balances = [b if i % 2 else s for i, (b, s) in enumerate(zip(big, small, strict=True))]
    state = DictState({k.address: Account(b) for k, b in zip(ACTORS, balances, strict=True)})
    genesis_supply = sum(balances)
    params = ChainParams(min_gas_price=1, block_gas_limit=5_000_000, max_block_txs=20, block_reward=reward)
    proposer = ACTORS[proposer_index].address if proposer_index < len(ACTORS) else key(30).address
    context = BlockContext(CHAIN, 1, 1_000, proposer, params)

    next_nonce = [0] * len(ACTORS)
    txs = []
    for sender, recipient, value, offset, price, limit, data, chain_id in plans:
        to = ACTORS[recipient].address if recipient >= 0 else (STRANGER if recipient == -1 else b"")
        nonce = max(0, next_nonce[sender] + offset)
        if offset == 0:
            next_nonce[sender] += 1
        t = Transaction(chain_id, b"", nonce, limit, price, int(TxKind.TRANSFER), to, value, data)
        txs.append(t.signed_by(ACTORS[sender]))

    view = StateView(state)
    result = apply_transactions(view, txs, context, drop_invalid=True)
    finalize_block(view, context, result)
    changes = view.changes()
    state.apply(changes)

    after = state.balances()
    assert sum(after.values()) == genesis_supply + reward
    assert all(0 <= b <= U64_MAX for b in after.values())
    assert all(isinstance(e, InvalidTransaction) for _, e in result.dropped)
    assert len(result.transactions) + len(result.dropped) <= len(txs)
    assert result.fees == sum(
        r.gas_used * t.gas_price for r, t in zip(result.receipts, result.transactions, strict=True)
    )

    # a verifier executing the included transactions reaches exactly the same state
    replay = StateView(DictState({k.address: Account(b) for k, b in zip(ACTORS, balances, strict=True)}))
    again = apply_transactions(replay, result.transactions, context, drop_invalid=False)
    finalize_block(replay, context, again)
    assert replay.changes() == changes
    assert again.receipts == result.receipts
