"""The mempool's admission rules, bounds, eviction, expiry and block selection (node/txpool/mempool.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import (
    AlreadyKnown,
    FeeTooLow,
    GasLimitTooHigh,
    GasLimitTooLow,
    InsufficientBalance,
    InvalidSignature,
    InvalidTransaction,
    MempoolFull,
    NonceTooHigh,
    NonceTooLow,
    WrongChainId,
)
from core.genesis import ChainParams
from core.keys import PrivateKey
from core.transaction import MAX_TX_BYTES, MAX_TX_DATA, Transaction, TxKind
from node.txpool.mempool import Mempool, MempoolLimits

CHAIN = 7777
PARAMS = ChainParams(min_gas_price=1, block_gas_limit=10_000_000)
RICH = 10**15


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


A, B, C, D = key(1), key(2), key(3), key(4)
TO = key(40).address


class Accounts:
    """A dict-backed account reader: address -> (nonce, balance)."""

    def __init__(self, **initial: tuple[int, int]) -> None:
        self.data: dict[bytes, tuple[int, int]] = {}
        for name, value in initial.items():
            self.data[globals()[name].address] = value

    def __call__(self, address: bytes) -> tuple[int, int]:
        return self.data.get(address, (0, 0))

    def set(self, k: PrivateKey, nonce: int, balance: int = RICH) -> None:
        self.data[k.address] = (nonce, balance)


def tx(
    sender: PrivateKey = A,
    nonce: int = 0,
    price: int = 1,
    *,
    value: int = 1,
    gas_limit: int = 21_000,
    data: bytes = b"",
    chain_id: int = CHAIN,
    kind: int = int(TxKind.TRANSFER),
) -> Transaction:
    return Transaction(chain_id, b"", nonce, gas_limit, price, kind, TO, value, data).signed_by(sender)


def pool(accounts: Accounts | None = None, **limits: Any) -> tuple[Mempool, Accounts]:
    if accounts is None:
        accounts = Accounts(A=(0, RICH), B=(0, RICH), C=(0, RICH), D=(0, RICH))
    return Mempool(CHAIN, PARAMS, accounts, MempoolLimits(**limits)), accounts


# --- basic admission ------------------------------------------------------------------------------


def test_admit_and_read_back() -> None:
    mp, _ = pool()
    t = tx()
    assert mp.add(t, now_ms=0) == t.hash
    assert len(mp) == 1
    assert t.hash in mp
    assert mp.get(t.hash) == t
    assert mp.get(b"\x00" * 32) is None
    assert mp.size_bytes == len(t.encoded)
    assert mp.pending_nonce(A.address) == 1
    assert mp.pending_nonce(B.address) is None
    assert mp.is_verified(t.hash)


def test_duplicate_is_already_known() -> None:
    mp, _ = pool()
    t = tx()
    mp.add(t, 0)
    with pytest.raises(AlreadyKnown):
        mp.add(t, 0)
    with pytest.raises(AlreadyKnown):
        mp.admit(t, 0)
    assert len(mp) == 1


# --- stateless rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "error"),
    [
        (tx(chain_id=CHAIN + 1), WrongChainId),
        (tx(kind=9), InvalidTransaction),
        (tx(price=0), FeeTooLow),
        (tx(gas_limit=20_999), GasLimitTooLow),
        (tx(gas_limit=21_000 + 16 * 3 - 1, data=b"abc"), GasLimitTooLow),
        (tx(gas_limit=PARAMS.block_gas_limit + 1), GasLimitTooHigh),
    ],
)
def test_stateless_rules(t: Transaction, error: type[Exception]) -> None:
    mp, _ = pool()
    with pytest.raises(error) as info:
        mp.add(t, 0)
    assert type(info.value) is error
    assert len(mp) == 0
    assert not mp.is_verified(t.hash)


def test_oversized_transaction_is_rejected() -> None:
    mp, _ = pool()
    huge = tx(data=b"d" * (MAX_TX_DATA + 1), gas_limit=5_000_000)
    assert len(huge.encoded) <= MAX_TX_BYTES  # only its data is over the limit
    with pytest.raises(InvalidTransaction):
        mp.add(huge, 0)
    assert len(mp) == 0
    at_limit = tx(data=b"d" * MAX_TX_DATA, gas_limit=5_000_000)
    mp.add(at_limit, 0)
    assert at_limit.hash in mp


def test_bad_signature_is_rejected_and_not_cached() -> None:
    mp, _ = pool()
    good = tx()
    forged = dataclasses.replace(good, value=good.value + 1)  # keeps the old signature
    with pytest.raises(InvalidSignature):
        mp.add(forged, 0)
    assert len(mp) == 0
    assert not mp.is_verified(forged.hash)
    # a signature by another key than the sender's
    other = dataclasses.replace(good, sender=B.public_key)
    with pytest.raises(InvalidSignature):
        mp.add(other, 0)
    # a signature for another chain
    wrong_chain = dataclasses.replace(tx(chain_id=1), chain_id=CHAIN)
    with pytest.raises(InvalidSignature):
        mp.add(wrong_chain, 0)


def test_signature_checked_by_the_caller_is_not_verified_again() -> None:
    mp, _ = pool()
    forged = dataclasses.replace(tx(), value=5)
    mp.add(forged, 0, signature_checked=True)  # the caller vouches for it
    assert forged.hash in mp and mp.is_verified(forged.hash)


def test_verified_cache_is_bounded_oldest_first() -> None:
    mp, _ = pool(verified_cache=2)
    txs = [tx(A, n) for n in range(3)]
    for t in txs:
        mp.add(t, 0)
    assert not mp.is_verified(txs[0].hash)
    assert mp.is_verified(txs[1].hash) and mp.is_verified(txs[2].hash)
    assert mp.verified_hashes() == {txs[1].hash, txs[2].hash}
    mp.mark_verified(b"\x01" * 32)
    assert mp.verified_hashes() == {txs[2].hash, b"\x01" * 32}


# --- nonces ---------------------------------------------------------------------------------------


def test_nonce_too_low() -> None:
    mp, accounts = pool()
    accounts.set(A, 3)
    with pytest.raises(NonceTooLow):
        mp.add(tx(A, 2), 0)


def test_nonce_gap_is_too_high() -> None:
    mp, accounts = pool()
    accounts.set(A, 3)
    with pytest.raises(NonceTooHigh):
        mp.add(tx(A, 4), 0)
    mp.add(tx(A, 3), 0)
    mp.add(tx(A, 4), 0)
    with pytest.raises(NonceTooHigh):
        mp.add(tx(A, 6), 0)
    mp.add(tx(A, 5), 0)
    assert mp.pending_nonce(A.address) == 6


# --- replacement ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "too_low", "enough"), [(100, 109, 110), (1, 1, 2), (9, 9, 10), (1000, 1099, 1100)])
def test_replacement_needs_ten_percent_more(old: int, too_low: int, enough: int) -> None:
    mp, _ = pool()
    mp.add(tx(A, 0, old), 0)
    mp.add(tx(A, 1, old), 0)
    with pytest.raises(FeeTooLow):
        mp.add(tx(A, 1, too_low, value=2), 0)
    replacement = tx(A, 1, enough, value=2)
    mp.add(replacement, 0)
    assert len(mp) == 2
    assert [t.hash for t in mp.select(10, 10**9)] == [tx(A, 0, old).hash, replacement.hash]
    assert tx(A, 1, old).hash not in mp


def test_replacing_the_only_pending_transaction() -> None:
    mp, _ = pool()
    old = tx(A, 0, 10)
    mp.add(old, 0)
    new = tx(A, 0, 11)
    mp.add(new, 0)
    assert len(mp) == 1
    assert old.hash not in mp and new.hash in mp
    assert mp.get(new.hash) == new
    assert mp.pending_nonce(A.address) == 1
    assert mp.select(10, 10**9) == [new]
    assert mp.size_bytes == len(new.encoded)
    # and the queue keeps working afterwards
    mp.add(tx(A, 1, 10), 0)
    assert [t.nonce for t in mp.select(10, 10**9)] == [0, 1]
    mp.remove_from(A.address, 0)
    assert len(mp) == 0 and mp.size_bytes == 0


def test_replacement_frees_the_cost_of_the_replaced_transaction() -> None:
    fee = 21_000
    accounts = Accounts(A=(0, 1_000 + fee * 2))
    mp, _ = pool(accounts)
    mp.add(tx(A, 0, 1, value=1_000), 0)
    # replacing it at twice the price costs 1000 + 2*fee: affordable, since the old one no longer counts
    mp.add(tx(A, 0, 2, value=1_000), 0)
    assert len(mp) == 1


def test_replacement_at_the_per_sender_bound_is_allowed() -> None:
    mp, _ = pool(max_per_sender=2)
    mp.add(tx(A, 0), 0)
    mp.add(tx(A, 1), 0)
    mp.add(tx(A, 1, 2), 0)
    assert len(mp) == 2


# --- balance --------------------------------------------------------------------------------------


def test_balance_must_cover_all_pending_transactions() -> None:
    fee = 21_000 * 2
    accounts = Accounts(A=(0, 2 * (500 + fee)))
    mp, _ = pool(accounts)
    mp.add(tx(A, 0, 2, value=500), 0)
    mp.add(tx(A, 1, 2, value=500), 0)
    with pytest.raises(InsufficientBalance):
        mp.add(tx(A, 2, 2, value=0), 0)
    with pytest.raises(InsufficientBalance):
        mp.add(tx(A, 0, 3, value=500), 0)  # a costlier replacement no longer fits
    assert len(mp) == 2


def test_balance_of_a_single_transaction() -> None:
    accounts = Accounts(A=(0, 21_000 + 99))
    mp, _ = pool(accounts)
    with pytest.raises(InsufficientBalance):
        mp.add(tx(A, 0, value=100), 0)
    mp.add(tx(A, 0, value=99), 0)


# --- bounds and eviction --------------------------------------------------------------------------


def test_per_sender_bound() -> None:
    mp, _ = pool(max_per_sender=2)
    mp.add(tx(A, 0), 0)
    mp.add(tx(A, 1), 0)
    with pytest.raises(MempoolFull):
        mp.add(tx(A, 2, 100), 0)
    mp.add(tx(B, 0), 0)  # other senders are not affected
    assert len(mp) == 3


def test_total_count_bound_evicts_the_cheapest_tail_of_another_sender() -> None:
    mp, _ = pool(max_txs=4)
    a0, a1 = tx(A, 0, 50), tx(A, 1, 2)  # A's tail pays 2
    b0 = tx(B, 0, 3)
    c0 = tx(C, 0, 4)
    for t in (a0, a1, b0, c0):
        mp.add(t, 0)
    assert len(mp) == 4
    # not better than the cheapest tail (2): refused
    with pytest.raises(MempoolFull):
        mp.add(tx(D, 0, 2), 0)
    d0 = tx(D, 0, 3)
    mp.add(d0, 0)
    assert len(mp) == 4
    assert a1.hash not in mp  # A's tail went, not A's well-paying head
    assert all(t.hash in mp for t in (a0, b0, c0, d0))
    assert mp.pending_nonce(A.address) == 1


def test_eviction_never_evicts_the_newcomers_own_transactions() -> None:
    mp, _ = pool(max_txs=2)
    mp.add(tx(A, 0, 1), 0)
    mp.add(tx(A, 1, 1), 0)
    with pytest.raises(MempoolFull):
        mp.add(tx(A, 2, 100), 0)
    assert len(mp) == 2


def test_eviction_can_empty_a_sender() -> None:
    mp, _ = pool(max_txs=2)
    b0 = tx(B, 0, 1)
    mp.add(tx(A, 0, 5), 0)
    mp.add(b0, 0)
    mp.add(tx(C, 0, 2), 0)
    assert b0.hash not in mp
    assert mp.pending_nonce(B.address) is None
    assert len(mp) == 2
    assert mp.size_bytes == sum(len(t.encoded) for t in mp.select(10, 10**9))


def test_total_bytes_bound() -> None:
    size = len(tx(A, 0).encoded)
    mp, _ = pool(max_bytes=2 * size)
    mp.add(tx(A, 0, 1), 0)
    mp.add(tx(B, 0, 1), 0)
    with pytest.raises(MempoolFull):
        mp.add(tx(C, 0, 1), 0)
    mp.add(tx(C, 0, 5), 0)
    assert len(mp) == 2
    assert mp.size_bytes <= 2 * size


# --- expiry ---------------------------------------------------------------------------------------


def test_expiry_by_ttl_drops_later_nonces_of_the_sender_too() -> None:
    mp, _ = pool(ttl_ms=1_000)
    a0, a1, b0 = tx(A, 0), tx(A, 1), tx(B, 0)
    mp.add(a0, now_ms=0)
    mp.add(a1, now_ms=900)
    mp.add(b0, now_ms=500)
    assert mp.expire(now_ms=1_000) == 0  # exactly ttl old: still fresh
    assert mp.expire(now_ms=1_001) == 2  # a0 expired, a1 would be a gap
    assert a0.hash not in mp and a1.hash not in mp and b0.hash in mp
    assert mp.expire(now_ms=1_501) == 1
    assert len(mp) == 0 and mp.size_bytes == 0
    assert mp.expire(now_ms=10**9) == 0


def test_expiry_keeps_lower_nonces() -> None:
    mp, _ = pool(ttl_ms=1_000)
    mp.add(tx(A, 0), now_ms=0)
    mp.add(tx(A, 1), now_ms=0)
    mp.add(tx(A, 0, 5), now_ms=800)  # replacing nonce 0 renews it
    assert mp.expire(now_ms=1_500) == 1
    assert [t.nonce for t in mp.select(10, 10**9)] == [0]


# --- selection ------------------------------------------------------------------------------------


def test_select_orders_by_price_but_keeps_each_senders_nonce_order() -> None:
    mp, _ = pool()
    a0, a1, a2 = tx(A, 0, 1), tx(A, 1, 10), tx(A, 2, 3)
    b0, b1 = tx(B, 0, 5), tx(B, 1, 4)
    c0 = tx(C, 0, 2)
    for t in (a0, a1, a2, b0, b1, c0):
        mp.add(t, 0)
    chosen = mp.select(max_txs=10, max_gas=10**9)
    # B0 (5) and B1 (4) beat A's head (1) and C's (2); once A0 is in, A1 (10) is next, then A2 (3)
    assert chosen == [b0, b1, c0, a0, a1, a2]


def test_select_ties_go_to_the_earlier_arrival() -> None:
    mp, _ = pool()
    b0, a0 = tx(B, 0, 5), tx(A, 0, 5)
    mp.add(b0, 0)
    mp.add(a0, 0)
    assert mp.select(10, 10**9) == [b0, a0]


def test_select_respects_max_txs_and_max_gas() -> None:
    mp, _ = pool()
    a0 = tx(A, 0, 9, gas_limit=50_000)
    a1 = tx(A, 1, 9)
    b0 = tx(B, 0, 5)
    c0 = tx(C, 0, 1)
    for t in (a0, a1, b0, c0):
        mp.add(t, 0)
    assert mp.select(max_txs=2, max_gas=10**9) == [a0, a1]
    assert mp.select(max_txs=0, max_gas=10**9) == []
    # a0 does not fit: A is skipped entirely (a1 must not jump ahead of it), the others still fit
    assert mp.select(max_txs=10, max_gas=42_000) == [b0, c0]
    assert mp.select(max_txs=10, max_gas=71_000) == [a0, a1]
    assert mp.select(max_txs=10, max_gas=20_999) == []
    # selection does not remove anything
    assert len(mp) == 4


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3),
            st.integers(min_value=1, max_value=20),
            st.sampled_from([21_000, 30_000, 60_000]),
        ),
        max_size=30,
    ),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=0, max_value=600_000),
)
def test_select_property(plan: list[tuple[int, int, int]], max_txs: int, max_gas: int) -> None:
    mp, _ = pool()
    senders = [A, B, C, D]
    next_nonce = [0, 0, 0, 0]
    for who, price, gas in plan:
        mp.add(tx(senders[who], next_nonce[who], price, gas_limit=gas), 0)
        next_nonce[who] += 1
    chosen = mp.select(max_txs, max_gas)
    assert len(chosen) <= max_txs
    assert sum(t.gas_limit for t in chosen) <= max_gas
    assert len({t.hash for t in chosen}) == len(chosen)
    for k in senders:
        nonces = [t.nonce for t in chosen if t.sender == k.public_key]
        assert nonces == list(range(len(nonces)))  # each sender: consecutive from its first
    # the first pick is the best-paying head among those that fit
    everything = mp.select(10**6, 10**12)
    heads = [
        next(t for t in everything if t.sender == k.public_key and t.nonce == 0)
        for k in senders
        if any(t.sender == k.public_key for t in everything)
    ]
    fitting = [h for h in heads if h.gas_limit <= max_gas]
    if max_txs and fitting:
        assert chosen[0].gas_price == max(h.gas_price for h in fitting)
    else:
        assert chosen == []


# --- upkeep ---------------------------------------------------------------------------------------


def test_remove_committed() -> None:
    mp, accounts = pool()
    a = [tx(A, n) for n in range(4)]
    b0 = tx(B, 0)
    for t in (*a, b0):
        mp.add(t, 0)
    accounts.set(A, 2)
    mp.remove_committed([A.address, A.address, C.address])
    assert [t.hash in mp for t in a] == [False, False, True, True]
    assert b0.hash in mp  # B was not named
    assert mp.pending_nonce(A.address) == 4
    assert mp.size_bytes == sum(len(t.encoded) for t in (a[2], a[3], b0))
    accounts.set(A, 10)
    mp.remove_committed([A.address])
    assert mp.pending_nonce(A.address) is None
    assert len(mp) == 1
    # the sender can start again at its account nonce
    mp.add(tx(A, 10), 0)


def test_remove_from() -> None:
    mp, _ = pool()
    a = [tx(A, n) for n in range(4)]
    for t in a:
        mp.add(t, 0)
    mp.remove_from(A.address, 2)
    assert [t.hash in mp for t in a] == [True, True, False, False]
    assert mp.pending_nonce(A.address) == 2
    mp.remove_from(B.address, 0)  # unknown sender: nothing happens
    mp.remove_from(A.address, 0)
    assert len(mp) == 0 and mp.size_bytes == 0
    assert mp.pending_nonce(A.address) is None
    # balance accounting was released too
    accounts = Accounts(A=(0, 2 * (21_000 + 1)))
    mp2, _ = pool(accounts)
    mp2.add(tx(A, 0), 0)
    mp2.add(tx(A, 1), 0)
    mp2.remove_from(A.address, 1)
    mp2.add(tx(A, 1, value=1), 0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "add", "add", "replace", "commit", "expire", "remove_from"]),
            st.integers(min_value=0, max_value=3),
            st.integers(min_value=1, max_value=30),
        ),
        max_size=40,
    )
)
def test_bookkeeping_stays_consistent(ops: list[tuple[str, int, int]]) -> None:
    """Whatever happens, len / size_bytes / get / select agree with each other."""
    mp, accounts = pool(max_txs=8, max_per_sender=4, ttl_ms=50)
    senders = [A, B, C, D]
    now = 0
    for op, who, price in ops:
        now += 7
        k = senders[who]
        account_nonce = accounts(k.address)[0]
        pending = mp.pending_nonce(k.address)
        try:
            if op == "add":
                mp.add(tx(k, pending if pending is not None else account_nonce, price), now)
            elif op == "replace" and pending is not None:
                mp.add(tx(k, pending - 1, price * 100, value=price), now)
            elif op == "commit" and pending is not None:
                accounts.set(k, account_nonce + 1)
                mp.remove_committed([k.address])
            elif op == "expire":
                mp.expire(now)
                assert all(e.arrival_ms >= now - 50 for q in mp._senders.values() for e in q.entries.values())
            elif op == "remove_from" and pending is not None:
                mp.remove_from(k.address, max(account_nonce, pending - 1))
        except (MempoolFull, FeeTooLow, NonceTooLow, NonceTooHigh, AlreadyKnown):  # an identical replacement
            pass
        everything = mp.select(10**6, 10**12)
        assert len(everything) == len(mp)
        assert mp.size_bytes == sum(len(t.encoded) for t in everything)
        assert all(mp.get(t.hash) == t for t in everything)
        assert mp._encodings == {t.encoded for t in everything}  # a copy is known by its bytes as by its hash
        assert len(mp) <= 8
        for s in senders:
            mine = [t.nonce for t in everything if t.sender == s.public_key]
            if mine:
                assert mine == list(range(mine[0], mine[0] + len(mine)))
                assert mp.pending_nonce(s.address) == mine[-1] + 1
                assert len(mine) <= 4
            else:
                assert mp.pending_nonce(s.address) is None


def test_a_refused_newcomer_evicts_nothing() -> None:
    small = len(tx(B, 0).encoded)
    mp, _ = pool(max_bytes=3 * small + 100)
    b0, c0, d0 = tx(B, 0, 1), tx(C, 0, 10), tx(D, 0, 1)
    for t in (b0, c0, d0):
        mp.add(t, 0)
    # a large transaction at price 5 would need B's, D's *and* C's slots, but C pays more: refused...
    big = tx(A, 0, 5, data=b"x" * (2 * small), gas_limit=200_000)
    with pytest.raises(MempoolFull):
        mp.add(big, 0)
    # ...and nobody was evicted on its behalf
    assert all(t.hash in mp for t in (b0, c0, d0))
    assert len(mp) == 3
    # one that needs only the two cheap slots gets in and evicts exactly those
    fits = tx(A, 0, 5, data=b"x" * small, gas_limit=200_000)
    mp.add(fits, 0)
    assert fits.hash in mp and c0.hash in mp
    assert b0.hash not in mp and d0.hash not in mp


# --- invariant under random operations ------------------------------------------------------------

_OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "replace", "commit", "drop_from", "select"]),
        st.integers(0, 1),  # sender: few senders, so operations meet in the same queue
        st.integers(0, 6),  # nonce offset / count
        st.integers(1, 40),  # gas price
    ),
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(_OPS)
def test_queues_stay_consecutive_and_accounting_matches(ops: list[tuple[str, int, int, int]]) -> None:
    """Whatever happens, each sender's pending nonces are consecutive and the pool's counts add up."""
    senders = [A, B, C, D]
    mempool, accounts = pool(max_txs=12)
    for op, who, n, price in ops:
        sender = senders[who]
        nonce, balance = accounts(sender.address)
        pending = mempool.pending_nonce(sender.address)
        try:
            if op == "add":
                mempool.add(tx(sender, pending if pending is not None else nonce, price), 0)
            elif op == "replace" and pending is not None:
                mempool.add(tx(sender, max(nonce, pending - 1 - n % 2), price, value=2), 0)
            elif op == "commit":
                accounts.set(sender, nonce + n % 3, balance)
                mempool.remove_committed([sender.address])
            elif op == "drop_from":
                mempool.remove_from(sender.address, nonce + n)
            elif op == "select":
                chosen = mempool.select(n + 1, 10**9)
                seen: dict[bytes, int] = {}
                for t in chosen:  # each sender's transactions come out in nonce order, without gaps
                    if t.sender_address in seen:
                        assert t.nonce == seen[t.sender_address] + 1
                    seen[t.sender_address] = t.nonce
        except Exception as exc:  # admission refusals are expected; anything else is a bug
            assert type(exc).__module__ == "core.errors", exc
        total = 0
        size = 0
        for queue in mempool._senders.values():
            nonces = sorted(queue.entries)
            assert nonces == list(range(queue.lowest(), queue.highest() + 1))
            assert queue.cost == sum(e.tx.value + e.tx.max_fee for e in queue.entries.values())
            total += len(nonces)
            size += sum(len(e.tx.encoded) for e in queue.entries.values())
        assert total == len(mempool) <= 12
        assert size == mempool.size_bytes
        pending = [e.tx for queue in mempool._senders.values() for e in queue.entries.values()]
        assert all(mempool.holds_encoding(t.encoded) for t in pending)
        assert len(mempool._encodings) == len(pending)


def test_expiry_finds_a_transaction_admitted_with_an_earlier_arrival_than_the_others() -> None:
    """Readmission from the journal admits with the first arrival time: older than what came since."""
    mp, _ = pool(ttl_ms=100)
    a0, b0, b1 = tx(A, 0), tx(B, 0), tx(B, 1)
    mp.add(a0, 1_000)
    assert mp.expire(1_050) == 0
    mp.add(b0, 900)  # arrived before a0
    mp.add(b1, 1_060)
    assert mp.expire(1_000) == 0  # cutoff 900: nothing arrived before it
    assert mp.expire(1_001) == 2  # cutoff 901: b0 goes, and b1 with it (its later nonce)
    assert b0.hash not in mp and b1.hash not in mp and a0.hash in mp
    assert mp.expire(1_100) == 0  # cutoff 1000: a0 arrived at it
    assert mp.expire(1_101) == 1
    assert len(mp) == 0
    mp.add(tx(C, 0), 5_000)
    assert mp.expire(5_100) == 0 and mp.expire(5_101) == 1
