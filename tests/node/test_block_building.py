"""No admitted transaction is forgotten by block building (node/chain.py BlockBuilder, node/txpool/mempool.py).

The proposer executes transactions as they arrive (node/consensus/prebuild.py), or all at once when the
block is due (ConsensusDriver._build): a transaction that does not fit the block must leave its
sender's later nonces pending, not make them fail with a nonce gap. `Proposer` below does what
those two do, on a real chain over LevelDB, without the event loop.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from consensus.single import single_validator_commit
from core.errors import AichainError, InsufficientBalance
from core.genesis import ChainParams, Genesis
from core.keys import PrivateKey
from core.transaction import MAX_TX_DATA, Transaction, TxKind
from core.validators import Validator, ValidatorSet
from node.chain import BlockBuilder, Chain, PendingBlock
from node.txpool.evictions import Eviction, EvictionReason
from node.txpool.mempool import Mempool, MempoolLimits
from storage.kv import KeyValueStore
from vm.gas import intrinsic_gas

CHAIN = 4343
T0 = 1_767_225_600_000
BLOCK_GAS = 1_000_000
TRANSFER_GAS = 21_000
RICH = 10**12


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


VALIDATOR = key(200)
S, OTHER, THIRD = key(11), key(12), key(13)
TO = key(99).address


def genesis(max_block_txs: int = 100, balances: dict[bytes, int] | None = None, block_gas: int = BLOCK_GAS) -> Genesis:
    funded = balances or {S.address: RICH, OTHER.address: RICH, THIRD.address: RICH}
    return Genesis(
        chain_id=CHAIN,
        chain_name="building",
        timestamp_ms=T0,
        validators=ValidatorSet((Validator(VALIDATOR.public_key, 1),)),
        allocations=tuple(sorted(funded.items())),
        params=ChainParams(min_gas_price=1, block_gas_limit=block_gas, max_block_txs=max_block_txs, block_reward=0),
    )


@contextmanager
def open_chain(path: Path, gen: Genesis) -> Iterator[Chain]:
    kv = KeyValueStore(path)
    try:
        yield Chain(kv, gen)
    finally:
        kv.close()


def transfer(
    sender: PrivateKey, nonce: int, *, gas: int = TRANSFER_GAS, price: int = 1, value: int = 1, data: bytes = b""
) -> Transaction:
    return Transaction(CHAIN, b"", nonce, gas, price, int(TxKind.TRANSFER), TO, value, data).signed_by(sender)


class Proposer:
    """A validator proposing every block: admission, the prebuilding builder, commit and upkeep."""

    def __init__(self, chain: Chain, limits: MempoolLimits | None = None) -> None:
        self.chain = chain
        self.now_ms = T0
        self.mempool = Mempool(
            chain.chain_id,
            chain.params,
            self._account,
            limits or MempoolLimits(),
            is_committed=lambda h: chain.blocks.tx_location(h) is not None,
            clock=lambda: self.now_ms,
        )
        self.evicted: list[Eviction] = []
        self.mempool.subscribe_evictions(self.evicted.append)
        self.builder: BlockBuilder | None = None

    def _account(self, address: bytes) -> tuple[int, int]:
        account = self.chain.account(address)
        return account.nonce, account.balance

    def send(self, tx: Transaction) -> bytes:
        """tx_send: admit, then (as the prebuilder's next step does) execute it in the block being built."""
        tx_hash = self.mempool.add(tx, self.now_ms)
        if self.builder is not None:
            self._add([tx])
        return tx_hash

    def start(self) -> None:
        """The prebuilder's first step: a builder on the head with the mempool's selection."""
        params = self.chain.params
        self.builder = self.chain.start_block(VALIDATOR.address, self.chain.head.timestamp_ms + 1_000)
        self._add(self.mempool.select(params.max_block_txs, params.block_gas_limit))

    def _add(self, txs: list[Transaction]) -> None:
        assert self.builder is not None
        self.mempool.evict_invalid(self.builder.add(txs), self.builder.height)

    def propose(self, *, fresh: bool = False) -> PendingBlock:
        """The block when due: the prebuilt one, or (`fresh`, or nothing prebuilt) one built from the mempool now."""
        builder, self.builder = self.builder, None
        if fresh or builder is None or builder.stale:
            params = self.chain.params
            candidates = self.mempool.select(params.max_block_txs, params.block_gas_limit)
            pending = self.chain.build(candidates, VALIDATOR.address, self.chain.head.timestamp_ms + 1_000)
        else:
            pending = builder.finish()
        self.mempool.evict_invalid(pending.dropped, pending.block.height)
        return pending

    def commit(self, pending: PendingBlock) -> None:
        """Commit a block (ours or another proposer's) and do the node's upkeep after it."""
        gen = self.chain.genesis
        commit = single_validator_commit(VALIDATOR, gen.validators, gen.chain_id, pending.block.header)
        self.chain.commit(pending, commit)
        used = {(tx.sender_address, tx.nonce): tx.hash for tx in pending.block.transactions}
        self.mempool.remove_committed({sender for sender, _ in used}, used)
        self.now_ms += 1_000
        self.mempool.expire(self.now_ms)

    def block(self, *, fresh: bool = False) -> list[Transaction]:
        pending = self.propose(fresh=fresh)
        self.commit(pending)
        return list(pending.block.transactions)


# --- the reproducer ------------------------------------------------------------------------------


def test_a_nonce_whose_predecessor_did_not_fit_is_skipped_not_dropped(tmp_path: Path) -> None:
    """Issue 18 finding 4: any transaction; S nonce 0 with the whole block's gas; S nonce 1."""
    with open_chain(tmp_path / "db", genesis()) as chain:
        builder = chain.start_block(VALIDATOR.address, T0 + 1_000)
        first, big, after = transfer(OTHER, 0), transfer(S, 0, gas=BLOCK_GAS), transfer(S, 1)
        assert builder.add([first]) == []
        assert builder.add([big]) == []  # does not fit after `first`: skipped
        assert builder.add([after]) == []  # nonce 1 waits on nonce 0: skipped, not NonceTooHigh
        small = transfer(THIRD, 0)
        assert builder.add([small]) == []  # another sender's transaction still fits
        assert list(builder.finish().block.transactions) == [first, small]


def test_a_fresh_build_skips_what_does_not_fit_and_keeps_packing(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db", genesis()) as chain:
        first, big, after, small = transfer(OTHER, 0), transfer(S, 0, gas=BLOCK_GAS), transfer(S, 1), transfer(THIRD, 0)
        pending = chain.build([first, big, after, small], VALIDATOR.address, T0 + 1_000)
        assert list(pending.block.transactions) == [first, small]
        assert pending.dropped == []


def test_a_nonce_after_one_skipped_for_the_count_limit_stays_pending(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db", genesis(max_block_txs=1)) as chain:
        builder = chain.start_block(VALIDATOR.address, T0 + 1_000)
        assert builder.add([transfer(OTHER, 0), transfer(S, 0)]) == []
        assert builder.add([transfer(S, 1)]) == []
        assert len(builder.finish().block.transactions) == 1


def test_the_reproducer_commits_every_transaction_exactly_once(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db", genesis()) as chain:
        proposer = Proposer(chain)
        proposer.start()
        first, big, after = transfer(OTHER, 0), transfer(S, 0, gas=BLOCK_GAS), transfer(S, 1)
        for tx in (first, big, after):
            proposer.send(tx)
        assert proposer.mempool.pending_nonce(S.address) == 2
        assert proposer.block() == [first]
        assert big.hash in proposer.mempool and after.hash in proposer.mempool  # still pending, none forgotten
        assert proposer.mempool.pending_nonce(S.address) == 2
        assert proposer.block() == [big]  # the whole block's gas: alone
        assert proposer.block() == [after]
        assert proposer.evicted == [] and len(proposer.mempool) == 0
        assert chain.account(S.address).nonce == 2


def test_a_block_fits_one_p2p_frame_and_what_does_not_fit_stays_pending(tmp_path: Path) -> None:
    """130 transactions of the largest size (17 MB) fit the block's gas but not one 16 MiB P2P
    frame: a proposal that large could not be sent. They go in several blocks, none dropped."""
    frame = 16 * 1024 * 1024
    data = bytes(MAX_TX_DATA)
    with open_chain(tmp_path / "db", genesis(block_gas=10**9)) as chain:
        proposer = Proposer(chain)
        proposer.start()
        txs = [transfer(S, n, gas=intrinsic_gas(data), data=data) for n in range(130)]
        for tx in txs[:60]:
            proposer.send(tx)
        proposer.send(transfer(OTHER, 0))
        for tx in txs[60:]:
            proposer.send(tx)
        committed: list[Transaction] = []
        for fresh in (False, True, False):
            pending = proposer.propose(fresh=fresh)
            assert len(pending.block.encode()) < frame // 2 + 64 * 1024, len(pending.block.encode())
            proposer.commit(pending)
            committed += pending.block.transactions
        assert [tx for tx in committed if tx.sender == S.public_key] == txs
        assert len(committed) == 131 and proposer.evicted == [] and len(proposer.mempool) == 0


# --- evictions are recorded with their reason ----------------------------------------------------


def test_a_replacement_that_arrives_after_the_original_was_built_in_is_evicted_as_nonce_used(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db", genesis()) as chain:
        proposer = Proposer(chain)
        proposer.start()
        original = transfer(S, 0, price=1)
        proposer.send(original)
        replacement = transfer(S, 0, price=2, value=7)
        proposer.send(replacement)
        assert proposer.mempool.eviction(original.hash).reason == EvictionReason.REPLACED  # type: ignore[union-attr]
        assert proposer.block() == [original]  # the builder had it already: the replacement does not displace it
        assert proposer.mempool.eviction(original.hash) is None  # committed: no eviction to report
        record = proposer.mempool.eviction(replacement.hash)
        assert record is not None and record.reason == EvictionReason.NONCE_USED and record.by == original.hash
        assert f"0x{original.hash.hex()}" in record.message


def test_an_invalid_transaction_is_evicted_with_its_error_and_takes_its_later_nonces(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db", genesis()) as chain:
        proposer = Proposer(chain)
        mempool = proposer.mempool
        txs = [transfer(S, n) for n in range(3)]
        for tx in txs:
            proposer.send(tx)
        mempool.evict_invalid([(txs[1], InsufficientBalance("balance 3 cannot pay"))], 5)
        assert mempool.pending_nonce(S.address) == 1
        first = mempool.eviction(txs[1].hash)
        assert first is not None and first.reason == EvictionReason.INVALID
        assert "block 5" in first.message and "InsufficientBalance: balance 3 cannot pay" in first.message
        later = mempool.eviction(txs[2].hash)
        assert later is not None and later.reason == EvictionReason.EARLIER_EVICTED and later.by == txs[1].hash
        assert mempool.eviction(txs[0].hash) is None and txs[0].hash in mempool


def test_a_drop_of_a_transaction_replaced_meanwhile_evicts_nothing(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db", genesis()) as chain:
        proposer = Proposer(chain)
        old, new = transfer(S, 0, price=1), transfer(S, 0, price=5)
        proposer.send(old)
        proposer.send(new)
        proposer.mempool.evict_invalid([(old, InsufficientBalance("x"))], 1)
        assert new.hash in proposer.mempool
        assert proposer.mempool.eviction(old.hash).reason == EvictionReason.REPLACED  # type: ignore[union-attr]


def test_a_nonce_another_proposer_used_evicts_ours_and_what_the_sender_can_no_longer_pay(tmp_path: Path) -> None:
    """Multi-node: another validator's block used S's nonce 0 with a transaction this node never
    saw, spending nearly all of S's balance; S's nonce 1 here can no longer be paid."""
    balance = 1_000_000
    gen = genesis(balances={S.address: balance, OTHER.address: RICH})
    with open_chain(tmp_path / "a", gen) as ours, open_chain(tmp_path / "b", gen) as theirs:
        proposer = Proposer(ours)
        mine = [transfer(S, 0, value=10), transfer(S, 1, value=10), transfer(OTHER, 0)]
        for tx in mine:
            proposer.send(tx)
        proposer.start()
        spender = transfer(S, 0, value=balance - TRANSFER_GAS - 5)
        elsewhere = theirs.build([spender], VALIDATOR.address, T0 + 1_000)
        assert list(elsewhere.block.transactions) == [spender]
        assert proposer.builder is not None
        proposer.commit(ours.execute(elsewhere.block))
        assert proposer.builder.stale  # our prebuilt block is discarded, as node/consensus/prebuild.py does
        used = proposer.mempool.eviction(mine[0].hash)
        assert used is not None and used.reason == EvictionReason.NONCE_USED and used.by == spender.hash
        unpayable = proposer.mempool.eviction(mine[1].hash)
        assert unpayable is not None and unpayable.reason == EvictionReason.INVALID
        assert "no longer pays" in unpayable.message
        assert proposer.block() == [mine[2]]


def test_the_eviction_record_is_bounded_and_forgets_a_transaction_sent_again(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db", genesis()) as chain:
        proposer = Proposer(chain, MempoolLimits(evictions_kept=2))
        txs = [transfer(S, n) for n in range(4)]
        for tx in txs:
            proposer.send(tx)
        proposer.mempool.remove_from(S.address, 0, EvictionReason.EXPIRED, "old")
        assert [proposer.mempool.eviction(t.hash) is not None for t in txs] == [False, False, True, True]
        assert len(proposer.mempool.evictions) == 2
        assert proposer.mempool.evictions.counts[EvictionReason.EARLIER_EVICTED] == 3
        proposer.send(txs[0])
        proposer.send(txs[1])
        proposer.send(txs[2])
        assert proposer.mempool.eviction(txs[2].hash) is None  # pending again
        assert proposer.mempool.eviction(txs[3].hash) is not None


def test_a_full_pool_and_expiry_record_who_and_why(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db", genesis()) as chain:
        proposer = Proposer(chain, MempoolLimits(max_txs=2, ttl_ms=1_500))
        cheap, other = transfer(S, 0, price=1), transfer(OTHER, 0, price=3)
        proposer.send(cheap)
        proposer.send(other)
        rich = transfer(THIRD, 0, price=2)
        proposer.send(rich)
        full = proposer.mempool.eviction(cheap.hash)
        assert full is not None and full.reason == EvictionReason.POOL_FULL and full.by == rich.hash
        proposer.mempool.expire(proposer.now_ms + 1_501)
        for tx in (other, rich):
            record = proposer.mempool.eviction(tx.hash)
            assert record is not None and record.reason == EvictionReason.EXPIRED and "1.5 s" in record.message


# --- random traffic ------------------------------------------------------------------------------


def run_random_traffic(tmp_path: Path, seed: int, blocks: int) -> Counter[str]:
    """Random senders, nonces, replacements, fees and gas limits (many too large to share a block),
    prebuilt and fresh blocks, and blocks of another proposer that use some nonces differently.

    Holds throughout: a sender's pending nonce never falls back unless one of its transactions was
    evicted (with a reason) meanwhile. Holds at the end: every admitted transaction was committed
    exactly once or is recorded as evicted with a reason, never both."""
    rng = random.Random(seed)
    senders = [key(30 + i) for i in range(6)]
    balances = {k.address: rng.choice([3_000_000, 50_000_000, RICH]) for k in senders}
    gen = genesis(max_block_txs=rng.choice([3, 8, 50]), balances=balances)
    outcome: Counter[str] = Counter()
    with open_chain(tmp_path / f"a{seed}", gen) as chain, open_chain(tmp_path / f"b{seed}", gen) as other:
        limits = MempoolLimits(max_txs=16, max_per_sender=6, ttl_ms=rng.choice([4_000, 60_000]), evictions_kept=10**6)
        proposer = Proposer(chain, limits)
        admitted: dict[bytes, Transaction] = {}
        last_pending = {k.address: 0 for k in senders}
        evicted_senders: set[bytes] = set()
        proposer.mempool.subscribe_evictions(lambda e: evicted_senders.add(e.sender))  # besides `evicted`

        def pending_nonce(address: bytes) -> int:
            pending = proposer.mempool.pending_nonce(address)
            return chain.account(address).nonce if pending is None else pending

        def check_no_fall_back() -> None:
            for address, before in last_pending.items():
                now = pending_nonce(address)
                assert now >= before or address in evicted_senders, f"pending nonce fell back {before} -> {now}"
                last_pending[address] = now
            evicted_senders.clear()

        def random_tx(sender: PrivateKey, nonce: int, price: int) -> Transaction:
            gas = rng.choice([TRANSFER_GAS, TRANSFER_GAS, 200_000, BLOCK_GAS // 2 + 1, BLOCK_GAS])
            return transfer(sender, nonce, gas=gas, price=price, value=rng.randrange(1, 1_000))

        for _ in range(blocks):
            if rng.random() < 0.7:
                proposer.start()
            for _ in range(rng.randrange(0, 12)):
                sender = rng.choice(senders)
                nonce = pending_nonce(sender.address)
                if rng.random() < 0.2 and nonce > chain.account(sender.address).nonce:
                    nonce = rng.randrange(chain.account(sender.address).nonce, nonce)  # a replacement
                elif rng.random() < 0.05:
                    nonce += 1  # a gap: refused
                tx = random_tx(sender, nonce, rng.randrange(1, 6))
                try:
                    admitted[proposer.send(tx)] = tx
                except AichainError as exc:
                    outcome[f"refused {type(exc).__name__}"] += 1
                check_no_fall_back()
            if rng.random() < 0.15:  # another proposer's block: a nonce used by a transaction we never saw
                sender = rng.choice(senders)
                account = chain.account(sender.address)
                share = rng.choice([1, 2, 1_000])  # 1: it spends nearly all, the sender's later nonces go unpaid
                spend = transfer(sender, account.nonce, value=max(1, account.balance // share - TRANSFER_GAS * 5))
                foreign = other.build([spend], VALIDATOR.address, chain.head.timestamp_ms + 1_000)
                proposer.builder = None
                pending = chain.execute(foreign.block)
            else:
                pending = proposer.propose(fresh=rng.random() < 0.3)
            other_commit = single_validator_commit(VALIDATOR, gen.validators, CHAIN, pending.block.header)
            other.commit(other.execute(pending.block), other_commit)
            proposer.commit(pending)
            check_no_fall_back()
        for _ in range(200):  # no more traffic: what is pending gets committed (or expires)
            if not len(proposer.mempool):
                break
            proposer.block()
            check_no_fall_back()
        assert len(proposer.mempool) == 0

        included = Counter(
            tx.hash for h in range(1, chain.head.height + 1) for tx in chain.blocks.block(h).transactions
        )  # type: ignore[union-attr]
        for tx_hash in admitted:
            eviction = proposer.mempool.eviction(tx_hash)
            committed = included[tx_hash]
            assert committed in (0, 1), f"0x{tx_hash.hex()} committed {committed} times"
            assert (committed == 1) != (eviction is not None), f"0x{tx_hash.hex()}: committed {committed}, {eviction}"
            if eviction is not None:
                assert eviction.reason in EvictionReason and eviction.message
                outcome[f"evicted {eviction.reason}"] += 1
            else:
                outcome["committed"] += 1
    return outcome


def test_random_traffic_commits_or_explains_every_admitted_transaction(tmp_path: Path) -> None:
    """Six seeded runs; together they skip, replace, fill the pool, expire, find transactions
    invalid and see nonces used by another proposer (so the assertions are not vacuous)."""
    total: Counter[str] = Counter()
    for seed in range(6):
        total += run_random_traffic(tmp_path, seed, blocks=40)
    for what in (
        "committed",
        "evicted replaced",
        "evicted nonce_used",
        "evicted pool_full",
        "evicted invalid",
        "evicted expired",
        "evicted earlier_evicted",
    ):
        assert total[what] > 0, total


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(100, 160))
def test_random_traffic_soak(tmp_path: Path, seed: int) -> None:
    run_random_traffic(tmp_path, seed, blocks=300)
