"""The mempool: transactions waiting for a block.

Rules:
- a transaction is checked statelessly (chain, price, gas, size), then its signature is
  verified once; the verified hash is remembered so block validation need not verify it
  again;
- each sender has a queue of consecutive nonces starting at its account nonce: a nonce
  already used is `NonceTooLow`, one that leaves a gap is `NonceTooHigh`;
- the same sender and nonce again replaces the pending transaction only for a gas price at
  least 10% higher;
- the sender's balance must cover every pending transaction's value plus maximum fee;
- the pool is bounded in count and bytes, overall and per sender; when full, a better-paying
  transaction evicts the lowest-paying last transaction of another sender;
- transactions older than the time-to-live expire;
- blocks take transactions by gas price, each sender's in nonce order; a sender whose
  transaction does not fit a block has none of its later nonces in that block (they stay);
- a pending transaction leaves either committed or evicted, and every eviction is recorded
  with its reason (node/txpool/evictions.py): replaced, pool full, expired, invalid when executed,
  nonce used by another committed transaction, or an earlier nonce of its sender evicted
  (the later ones could never be next). Nothing leaves the pool unrecorded.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass

from core.clock import now_ms
from core.errors import (
    AlreadyKnown,
    FeeTooLow,
    InsufficientBalance,
    InvalidSignature,
    MempoolFull,
    NonceTooHigh,
    NonceTooLow,
)
from core.genesis import ChainParams
from core.transaction import Transaction
from node.txpool.evictions import Eviction, EvictionLog, EvictionReason
from node.txpool.sender_queues import PendingEntry, SenderQueue, cheapest_tails, select_for_block
from vm.execution import check_stateless

AccountReader = Callable[[bytes], tuple[int, int]]  # address -> (nonce, balance)
CommittedReader = Callable[[bytes], bool]  # tx hash -> whether a committed block holds it


_NO_ARRIVAL = 1 << 63  # the arrival floor of an empty pool: later than any arrival in ms


def _never_committed(tx_hash: bytes) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class MempoolLimits:
    max_txs: int = 200_000
    max_bytes: int = 128 * 1024 * 1024
    max_per_sender: int = 1_000
    ttl_ms: int = 10 * 60 * 1000
    replace_bump_percent: int = 10
    verified_cache: int = 500_000
    evictions_kept: int = 50_000  # the last evictions `tx_get` can explain (about 620 bytes each)


class Mempool:
    def __init__(
        self,
        chain_id: int,
        params: ChainParams,
        accounts: AccountReader,
        limits: MempoolLimits | None = None,
        *,
        is_committed: CommittedReader = _never_committed,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.chain_id = chain_id
        self.params = params
        self.limits = limits or MempoolLimits()
        self._accounts = accounts
        self._is_committed = is_committed
        self._clock = clock
        self.evictions = EvictionLog(self.limits.evictions_kept)
        self._eviction_listeners: list[Callable[[Eviction], None]] = []
        self._by_hash: dict[bytes, Transaction] = {}  # tx hash -> the pending transaction (`get` is hot)
        # The encodings of the pending transactions: a copy from a peer is known by its bytes
        # alone, without hashing it (one set lookup instead of a SHA-256 and a dict lookup).
        self._encodings: set[bytes] = set()
        self._senders: dict[bytes, SenderQueue] = {}
        self._bytes = 0
        self._seq = itertools.count()
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        # No pending transaction arrived before this (a lower bound): `expire`, run after every
        # block, passes over the whole pool only when something may have expired.
        self._arrival_floor = _NO_ARRIVAL

    def subscribe_evictions(self, listener: Callable[[Eviction], None]) -> None:
        """`listener(eviction)` is told of each eviction, after it is recorded (metrics, the journal)."""
        self._eviction_listeners.append(listener)

    # --- admission ----------------------------------------------------------------------------

    def precheck(self, tx: Transaction) -> None:
        """Stateless rules (those of execution, and not pending already), checked before the signature."""
        check_stateless(tx, self.chain_id, self.params)
        if tx.hash in self._by_hash:
            raise AlreadyKnown(f"transaction 0x{tx.hash.hex()} is already pending")

    def mark_verified(self, tx_hash: bytes) -> None:
        self._verified[tx_hash] = None
        if len(self._verified) > self.limits.verified_cache:
            self._verified.popitem(last=False)

    def is_verified(self, tx_hash: bytes) -> bool:
        return tx_hash in self._verified

    def verified_hashes(self) -> Container[bytes]:
        """The hashes whose signatures verified (a live view: membership tests only)."""
        return self._verified.keys()

    def add(self, tx: Transaction, now_ms: int, *, signature_checked: bool = False) -> bytes:
        """Admit `tx` or raise why not. Verifies the signature unless the caller already did."""
        self.precheck(tx)
        if not signature_checked and not tx.signature_valid():
            raise InvalidSignature(
                f"signature of 0x{tx.hash.hex()} does not verify for its sender on chain {tx.chain_id}"
            )
        self.mark_verified(tx.hash)
        return self.admit(tx, now_ms)

    def admit(self, tx: Transaction, now_ms: int) -> bytes:
        """Stateful admission rules for a transaction whose signature verified."""
        if tx.hash in self._by_hash:
            raise AlreadyKnown(f"transaction 0x{tx.hash.hex()} is already pending")
        sender = tx.sender_address
        account_nonce, balance = self._accounts(sender)
        if tx.nonce < account_nonce:
            raise NonceTooLow(f"nonce {tx.nonce} already used; the sender's next nonce is {account_nonce}")
        queue = self._senders.get(sender)
        if queue is not None and queue.lowest() < account_nonce:
            self.remove_committed((sender,))  # stale entries a block already took
            queue = self._senders.get(sender)
        next_nonce = account_nonce if queue is None else queue.highest() + 1
        if tx.nonce > next_nonce:
            raise NonceTooHigh(f"nonce {tx.nonce} leaves a gap; the sender's next nonce is {next_nonce}")
        cost = tx.value + tx.max_fee
        replaced = queue.entries.get(tx.nonce) if queue is not None else None
        if replaced is not None:
            old = replaced.tx.gas_price
            needed = old + max(1, old * self.limits.replace_bump_percent // 100)
            if tx.gas_price < needed:
                raise FeeTooLow(
                    f"nonce {tx.nonce} is pending at gas price {old}; a replacement needs at least {needed}"
                )
        pending_cost = 0 if queue is None else queue.cost
        if replaced is not None:
            pending_cost -= replaced.tx.value + replaced.tx.max_fee
        if pending_cost + cost > balance:
            raise InsufficientBalance(
                f"balance {balance} cannot pay this transaction ({cost}) on top of pending ones ({pending_cost})"
            )
        if replaced is None:
            if queue is not None and len(queue.entries) >= self.limits.max_per_sender:
                raise MempoolFull(f"this sender already has {self.limits.max_per_sender} pending transactions")
            self._make_room(tx, sender)
        if queue is None:
            queue = self._senders[sender] = SenderQueue(tx.nonce)
        if replaced is not None:
            del queue.entries[tx.nonce]
            queue.cost -= replaced.tx.value + replaced.tx.max_fee
            self._by_hash.pop(replaced.tx.hash, None)
            self._encodings.discard(replaced.tx.encoded)
            self._bytes -= len(replaced.tx.encoded)
            self._record(
                replaced.tx,
                EvictionReason.REPLACED,
                tx.hash,
                f"replaced by 0x{tx.hash.hex()} (the same nonce {tx.nonce} at gas price {tx.gas_price}, "
                f"up from {replaced.tx.gas_price})",
            )
        queue.entries[tx.nonce] = PendingEntry(tx, now_ms, next(self._seq))
        if now_ms < self._arrival_floor:
            self._arrival_floor = now_ms
        queue.cost += cost
        self._by_hash[tx.hash] = tx
        self._encodings.add(tx.encoded)
        self._bytes += len(tx.encoded)
        self.evictions.forget(tx.hash)
        return tx.hash

    def _make_room(self, tx: Transaction, sender: bytes) -> None:
        """Evict the cheapest tails of other senders until `tx` fits; evict nothing if it cannot fit."""
        count, used, limits = len(self._by_hash), self._bytes, self.limits
        if count < limits.max_txs and used + len(tx.encoded) <= limits.max_bytes:
            return
        victims = cheapest_tails(self._senders, tx, sender, count, used, limits.max_txs, limits.max_bytes)
        if victims is None:
            raise MempoolFull(
                f"the mempool is full ({len(self._by_hash)} transactions); retry later or pay a higher gas price"
            )
        for victim_sender, victim_nonce in victims:
            victim = self._remove_entry(victim_sender, self._senders[victim_sender], victim_nonce)
            self._record(
                victim,
                EvictionReason.POOL_FULL,
                tx.hash,
                f"the mempool was full and 0x{tx.hash.hex()} pays a higher gas price "
                f"({tx.gas_price} > {victim.gas_price}); send it again at a higher price",
            )

    def _remove_entry(self, sender: bytes, queue: SenderQueue, nonce: int) -> Transaction:
        entry = queue.entries.pop(nonce)
        if nonce == queue.low:
            queue.low += 1
        queue.cost -= entry.tx.value + entry.tx.max_fee
        self._by_hash.pop(entry.tx.hash, None)
        self._encodings.discard(entry.tx.encoded)
        self._bytes -= len(entry.tx.encoded)
        if not queue.entries:
            del self._senders[sender]
        return entry.tx

    def _record(self, tx: Transaction, reason: EvictionReason, by: bytes | None, message: str) -> None:
        eviction = Eviction(tx.hash, tx.sender_address, tx.nonce, reason, message, self._clock(), by)
        self.evictions.record(eviction)
        for listener in self._eviction_listeners:
            listener(eviction)

    # --- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_hash)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def holds_encoding(self, raw: bytes) -> bool:
        """Whether the transaction encoded as `raw` is pending (as `sha256(raw) in mempool`)."""
        return raw in self._encodings

    def get(self, tx_hash: bytes) -> Transaction | None:
        return self._by_hash.get(tx_hash)

    def records(self) -> list[tuple[int, bytes]]:
        """Every pending transaction as (arrival ms, encoded bytes): what the journal keeps."""
        return [
            (entry.arrival_ms, entry.tx.encoded) for queue in self._senders.values() for entry in queue.entries.values()
        ]

    def eviction(self, tx_hash: bytes) -> Eviction | None:
        """Why this node evicted a transaction it had admitted (None if it did not, or forgot it)."""
        return self.evictions.get(tx_hash)

    def pending_nonce(self, sender: bytes) -> int | None:
        queue = self._senders.get(sender)
        return None if queue is None else queue.highest() + 1

    def select(self, max_txs: int, max_gas: int, max_bytes: int | None = None) -> list[Transaction]:
        """Up to `max_txs` transactions for a block: best gas price first, each sender in nonce order.

        A transaction that does not fit the gas (or encoded bytes) left is skipped with its
        sender's later nonces (they would leave a gap); they stay pending for a later block."""
        byte_limit = self.limits.max_bytes if max_bytes is None else max_bytes
        return select_for_block(self._senders, max_txs, max_gas, byte_limit)

    # --- upkeep ------------------------------------------------------------------------------

    def remove_committed(self, senders: Iterable[bytes], used: Mapping[tuple[bytes, int], bytes] | None = None) -> None:
        """Drop what the new head made stale: nonces below each sender's account nonce.

        `used` maps the (sender, nonce) of the transactions just committed to their hashes. A
        stale entry that is not the transaction that used its nonce (one this node never saw
        committed) was evicted: recorded as `nonce_used`."""
        for tx_hash in (used or {}).values():
            self.evictions.forget(tx_hash)  # e.g. replaced here, but the original was in the block
        for sender in set(senders):
            self._remove_stale(sender, used or {})

    def _remove_stale(self, sender: bytes, used: Mapping[tuple[bytes, int], bytes]) -> None:
        queue = self._senders.get(sender)
        if queue is None:
            return
        account_nonce, balance = self._accounts(sender)
        # Bottom first. The queue holds consecutive nonces from `low`: the stale ones are a range,
        # found without a pass over the sender's other pending nonces (up to `max_per_sender`).
        for nonce in range(queue.low, min(account_nonce, queue.highest() + 1)):
            tx = self._remove_entry(sender, queue, nonce)
            user = used.get((sender, nonce))
            if user != tx.hash and (user is not None or not self._is_committed(tx.hash)):
                by = f"0x{user.hex()}" if user is not None else "another transaction"
                self._record(
                    tx,
                    EvictionReason.NONCE_USED,
                    user,
                    f"nonce {nonce} was used by {by}, committed: this one can never be included",
                )
            if sender not in self._senders:
                return
        # What the sender committed may have cost more than what this node had pending for those
        # nonces (another node's transaction used one): the rest must still be payable, else the
        # latest nonces go, so that no node keeps a transaction no block can include.
        while queue.cost > balance:
            top = queue.highest()
            cost = queue.cost
            tx = self._remove_entry(sender, queue, top)
            self._record(
                tx,
                EvictionReason.INVALID,
                None,
                f"the sender's balance ({balance}) no longer pays for its pending transactions up to "
                f"nonce {top} ({cost}); send it again once the account can pay",
            )
            if sender not in self._senders:
                return

    def remove_from(
        self,
        sender: bytes,
        nonce: int,
        reason: EvictionReason = EvictionReason.INVALID,
        message: str = "",
        by: bytes | None = None,
    ) -> None:
        """Evict `sender`'s transactions from `nonce` upwards (that one for `reason`; the later ones
        because they would wait on a gap for ever), recording each."""
        queue = self._senders.get(sender)
        if queue is None:
            return
        first: Transaction | None = None
        for n in sorted(k for k in queue.entries if k >= nonce):
            tx = self._remove_entry(sender, queue, n)
            if first is None:
                first = tx
                self._record(tx, reason, by, message or f"evicted ({reason})")
            else:
                self._record(
                    tx,
                    EvictionReason.EARLIER_EVICTED,
                    first.hash,
                    f"nonce {first.nonce} of the sender (0x{first.hash.hex()}) was evicted ({reason}), "
                    f"so nonce {n} could never be next; send both again",
                )
            if sender not in self._senders:
                return

    def evict_invalid(self, dropped: Iterable[tuple[Transaction, Exception]], height: int) -> None:
        """Evict transactions that failed an inclusion rule when executed for block `height`.

        Only the very transaction is evicted (a replacement admitted meanwhile is judged on its
        own), with its sender's later nonces; one whose nonce the chain has used meanwhile is
        stale, and its later nonces stay."""
        for tx, error in dropped:
            sender = tx.sender_address
            if tx.hash not in self._by_hash:
                continue  # gone already (committed, replaced or evicted meanwhile)
            if tx.nonce < self._accounts(sender)[0]:
                self._remove_stale(sender, {})
                continue
            self.remove_from(
                sender,
                tx.nonce,
                EvictionReason.INVALID,
                f"invalid when executed for block {height}: {type(error).__name__}: {error}",
            )

    def expire(self, now_ms: int) -> int:
        """Drop transactions older than the time-to-live (and the later nonces of their sender)."""
        cutoff = now_ms - self.limits.ttl_ms
        if cutoff <= self._arrival_floor:
            return 0  # every pending transaction arrived at the cutoff or later
        oldest: dict[bytes, int] = {}  # sender -> its lowest expired nonce
        floor = _NO_ARRIVAL  # of those that stay: every expired one goes, with its later nonces
        for sender, queue in self._senders.items():
            for nonce, entry in queue.entries.items():
                arrival = entry.arrival_ms
                if arrival < cutoff:
                    if nonce < oldest.get(sender, nonce + 1):
                        oldest[sender] = nonce
                elif arrival < floor:
                    floor = arrival
        self._arrival_floor = floor
        before = len(self._by_hash)
        ttl_s = self.limits.ttl_ms / 1000
        for sender, nonce in oldest.items():
            self.remove_from(
                sender,
                nonce,
                EvictionReason.EXPIRED,
                f"pending longer than this node's mempool keeps transactions ({ttl_s:g} s)",
            )
        return before - len(self._by_hash)
