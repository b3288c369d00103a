"""The ledger as the node holds it: committed blocks and state on disk, extended one block at a time.

`Chain` wires storage (blocks, flat state, state tree), execution (vm) and the validity
rules (consensus) together. A block moves through two steps:
`build` / `execute` produce a `PendingBlock` without touching the disk; `commit` writes
the block, its commit, receipts, state and new head in one atomic, fsynced batch.
"""

from __future__ import annotations

import threading
from collections.abc import Container
from dataclasses import dataclass
from enum import Enum
from typing import Final

from consensus.builder import assemble_block, next_timestamp
from consensus.validation import check_body, check_execution, check_header, verify_commit
from core.block import Block, Commit, Header
from core.errors import AichainError, ConfigError, DecodeError, InvalidBlock, InvalidSignature, StorageError
from core.evidence import DuplicateVote
from core.genesis import Genesis
from core.hashing import EMPTY_MERKLE_ROOT, ZERO_HASH
from core.receipt import Receipt
from core.transaction import Transaction
from core.validators import ValidatorSet
from node.p2p.framing import DEFAULT_MAX_FRAME_SIZE
from storage import keys
from storage.blockstore import BlockStore
from storage.kv import KeyValueStore, Snapshot
from storage.state_tree import Proof, StateTree, TreeUpdate
from vm.account import ACCOUNT_PREFIX, Account, account_key
from vm.execution import BlockContext, BlockResult, apply_transactions, finalize_block
from vm.gas import TX_BASE
from vm.genesis import genesis_state
from vm.state import StateView
from vm.validators import PREVIOUS, USED_EVIDENCE, validator_set

ZERO_ADDRESS = bytes(20)
# The encoded transactions of a block this node proposes, at most. The proposal carries the block
# in one P2P frame (peers refuse a larger frame, and this node could not even send it): half a
# frame leaves room for the header, the last commit and evidence. Not a validity rule.
BLOCK_TX_BYTES = DEFAULT_MAX_FRAME_SIZE // 2
NONCE_BALANCES_KEPT = 100_000  # decoded account values `nonce_and_balance` keeps (~20 MB at most)


@dataclass(frozen=True, slots=True)
class PendingBlock:
    """A block executed against the committed head, with everything needed to commit it."""

    block: Block
    receipts: list[Receipt]
    changes: dict[bytes, bytes | None]
    tree_update: TreeUpdate
    dropped: list[tuple[Transaction, Exception]]


class _Absent(Enum):
    ABSENT = 0  # not in the cache (None in it: absent from the state)


_ABSENT: Final = _Absent.ABSENT


class CommittedState:
    """Reads of the committed flat state (the tree's leaves, stored flat for speed).

    Recently read and written entries are kept in memory. Besides the lookup itself this
    saves a GIL hand-off: LevelDB reads release the GIL, and a thread that releases it while
    the block thread executes waits out a whole switch interval (5 ms) to get it back, so an
    admission reading accounts from LevelDB would crawl exactly while a block executes.
    """

    CACHE_ENTRIES = 200_000  # ~40 MB at most; dropped whole when full (cheaper than LRU upkeep)

    def __init__(self, kv: KeyValueStore) -> None:
        self._kv = kv
        self._cache: dict[bytes, bytes | None] = {}
        # A read from LevelDB may predate a commit that lands while it runs: it is remembered
        # only if no commit came in between (else the cache would keep the old value).
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> bytes | None:
        value = self._cache.get(key, _ABSENT)
        if value is not _ABSENT:
            return value
        generation = self._generation
        value = self._kv.get(keys.STATE + key)
        with self._lock:
            if generation == self._generation:
                if len(self._cache) >= self.CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[key] = value
        return value

    def committed(self, changes: dict[bytes, bytes | None]) -> None:
        """Take the values a committed block wrote (after its batch is durable)."""
        with self._lock:
            if len(self._cache) + len(changes) > self.CACHE_ENTRIES:
                self._cache.clear()
            self._cache.update(changes)
            self._generation += 1


class StateSnapshot:
    """Committed flat state as of one head (`Chain.state_snapshot`); reads bypass the shared cache."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def get(self, key: bytes) -> bytes | None:
        return self._snapshot.get(keys.STATE + key)

    def close(self) -> None:
        self._snapshot.close()


class Chain:
    def __init__(self, kv: KeyValueStore, genesis: Genesis) -> None:
        self.kv = kv
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.params = genesis.params
        self.blocks = BlockStore(kv)
        self.tree = StateTree(kv, prefix=keys.TREE)
        self.state = CommittedState(kv)
        self._nonce_balances: dict[bytes, tuple[int, int]] = {}  # stored account value -> (nonce, balance)
        self._commit_lock = threading.Lock()
        stored = kv.get(keys.GENESIS)
        if stored is None:
            self._write_genesis()
        elif stored != genesis.hash():
            raise ConfigError(
                "this data directory holds another network's chain (its genesis hash differs); "
                "use another --datadir or the genesis it was created with"
            )
        head = self.blocks.head()
        if head is None:
            raise StorageError("the database has a genesis but no head block; it is corrupt")
        block = self.blocks.block(head[0])
        if block is None or block.hash != head[1]:
            raise StorageError(f"head block {head[0]} is missing or does not match the head pointer")
        if block.header.state_root != self.tree.root:
            raise StorageError("the state tree root does not match the head block's state root")
        self.head: Header = block.header
        self.last_commit: Commit | None = self.blocks.commit(self.head.height)
        self._load_validators()

    def _load_validators(self) -> None:
        self.validators: ValidatorSet = validator_set(self.state)  # signs the next block
        self.last_validators: ValidatorSet = validator_set(self.state, PREVIOUS)  # signed the head

    # --- genesis -----------------------------------------------------------------------------

    def _write_genesis(self) -> None:
        state = genesis_state(self.genesis)
        update = self.tree.prepare(state)
        vhash = self.genesis.validators.hash()
        header = Header(
            self.chain_id,
            0,
            self.genesis.timestamp_ms,
            ZERO_HASH,
            ZERO_ADDRESS,
            EMPTY_MERKLE_ROOT,
            update.root,
            EMPTY_MERKLE_ROOT,
            vhash,
            vhash,
            ZERO_HASH,
            EMPTY_MERKLE_ROOT,
            0,
            0,
        )
        block = Block(header, (), None, ())
        with self.kv.batch(sync=True) as batch:
            self.blocks.stage_block(batch, block, [], Commit(0, 0, header.hash, ()))
            for key, value in state.items():
                batch.put(keys.STATE + key, value)
            self.tree.write(update, batch)
            batch.put(keys.SCHEMA, keys.SCHEMA_VERSION)
            batch.put(keys.GENESIS, self.genesis.hash())
        self.tree.committed(update)

    # --- reads -------------------------------------------------------------------------------

    def account(self, address: bytes) -> Account:
        raw = self.state.get(account_key(address))
        return Account() if raw is None else Account.decode(raw)

    def nonce_and_balance(self, address: bytes) -> tuple[int, int]:
        """An account's nonce and balance at the head: what the mempool holds its sender to."""
        raw = self.state.get(ACCOUNT_PREFIX + address)
        if raw is None:
            return 0, 0
        # Admission asks for the same senders over and over, and an account's stored value stays
        # the same bytes object until a block changes it: each value is decoded once (a pure
        # function of the bytes, so nothing goes stale).
        known = self._nonce_balances.get(raw)
        if known is None:
            account = Account.decode(raw)
            known = (account.nonce, account.balance)
            if len(self._nonce_balances) >= NONCE_BALANCES_KEPT:
                self._nonce_balances.clear()  # dropped whole when full: cheaper than LRU upkeep
            self._nonce_balances[raw] = known
        return known

    def state_snapshot(self) -> tuple[Header, StateSnapshot]:
        """The head and its committed state, read from a LevelDB snapshot: one consistent state however
        many blocks commit while the reader runs (read-only contract calls, off the block thread). The
        reader closes it when done."""
        with self._commit_lock:
            return self.head, StateSnapshot(self.kv.snapshot())

    def prove_key(self, key: bytes) -> tuple[Header, bytes | None, Proof]:
        """(head header, value or None, proof against the head's state root) of any state key."""
        with self._commit_lock:
            return self.head, self.state.get(key), self.tree.prove(key)

    def prove_account(self, address: bytes) -> tuple[Header, bytes | None, Proof]:
        """(head header, account value or None, proof against the head's state root), read consistently."""
        with self._commit_lock:
            key = account_key(address)
            return self.head, self.state.get(key), self.tree.prove(key)

    # --- extending ---------------------------------------------------------------------------

    def context(self, proposer: bytes, timestamp_ms: int) -> BlockContext:
        return BlockContext(self.chain_id, self.head.height + 1, timestamp_ms, proposer, self.params)

    def build(
        self, txs: list[Transaction], proposer: bytes, now_ms: int, evidence: tuple[bytes, ...] = ()
    ) -> PendingBlock:
        """Execute candidate transactions on the head (dropping invalid ones) and assemble a block."""
        builder = self.start_block(proposer, next_timestamp(self.head, now_ms))
        builder.add(txs)
        return builder.finish(evidence)

    def start_block(self, proposer: bytes, timestamp_ms: int) -> BlockBuilder:
        """Begin a block on the head that transactions can be added to over time (see `BlockBuilder`)."""
        return BlockBuilder(self, self.context(proposer, next_timestamp(self.head, timestamp_ms)))

    def usable_evidence(self, evidence: tuple[bytes, ...]) -> tuple[bytes, ...]:
        """The evidence items that are valid against the current set and not yet acted on."""
        usable = []
        for raw in evidence:
            try:
                item = DuplicateVote.decode(raw)
                item.check(self.validators, self.chain_id)
            except AichainError:
                continue
            if self.state.get(USED_EVIDENCE + item.hash()) is None and raw not in usable:
                usable.append(raw)
        return tuple(usable)

    def execute(
        self, block: Block, now_ms: int | None = None, verified: Container[bytes] | None = None
    ) -> PendingBlock:
        """Check and execute a block someone else proposed; raise `InvalidBlock` if any rule fails."""
        header = block.header
        check_header(header, self.head, self.validators, self.chain_id, now_ms)
        check_body(block)
        if block.last_commit is not None and header.height > 1:
            verify_commit(block.last_commit, self.last_validators, self.chain_id, self.head.height, self.head.hash)
        for index, tx in enumerate(block.transactions):
            if (verified is None or tx.hash not in verified) and not tx.signature_valid():
                raise InvalidBlock(f"transaction {index} of block {header.height}: {InvalidSignature.__name__}")
        ctx = BlockContext(self.chain_id, header.height, header.timestamp_ms, header.proposer, self.params)
        view = StateView(self.state)
        result: BlockResult = apply_transactions(view, list(block.transactions), ctx, drop_invalid=False)
        try:
            evidence = tuple(DuplicateVote.decode(e) for e in block.evidence)
        except DecodeError as exc:
            raise InvalidBlock(f"block {header.height} evidence is malformed: {exc}") from exc
        finalize_block(view, ctx, result, evidence)
        changes = view.changes()
        update = self.tree.prepare(changes)
        check_execution(header, update.root, result.receipts, result.gas_used, validator_set(view).hash())
        return PendingBlock(block, result.receipts, changes, update, [])

    def commit(self, pending: PendingBlock, commit: Commit) -> None:
        """Write the block and everything it changed in one durable batch; then it is the head."""
        block = pending.block
        if block.header.parent_hash != self.head.hash:
            raise InvalidBlock(f"block {block.height} no longer builds on the head {self.head.height}")
        with self._commit_lock:
            with self.kv.batch(sync=True) as batch:
                self.blocks.stage_block(batch, block, pending.receipts, commit)
                for key, value in pending.changes.items():
                    if value is None:
                        batch.delete(keys.STATE + key)
                    else:
                        batch.put(keys.STATE + key, value)
                self.tree.write(pending.tree_update, batch)
            self.state.committed(pending.changes)
            self.tree.committed(pending.tree_update)
            self.blocks.remember(block)
            self.head = block.header
            self.last_commit = commit
            self._load_validators()


class BlockBuilder:
    """A block being built on one head: execute candidates as they arrive, assemble it at the end.

    The next proposer starts one while it waits out the block time, so when its turn comes the
    transactions are already executed and proposing costs only the state root. Not thread-safe:
    use it from one thread (the block worker). Candidates are applied in the order added, except:

    - one whose nonce is not its sender's next in this block is skipped, never dropped: a lower
      nonce is included already (a replacement that arrived later does not displace it) or used
      at the head (the mempool evicts it when it learns of that commit); a higher one waits on an
      earlier nonce that is not in this block;
    - one that does not fit the gas, transaction count or bytes (`BLOCK_TX_BYTES`) left is
      skipped; its sender's later nonces then leave a gap in this block, so they are skipped too,
      and all stay pending;
    - only one that fails an inclusion rule when applied (e.g. its sender cannot pay) is dropped,
      and returned to the caller, which evicts it from the mempool with the error as its reason.
    """

    def __init__(self, chain: Chain, ctx: BlockContext) -> None:
        self.chain = chain
        self.ctx = ctx
        self.parent = chain.head
        self.view = StateView(chain.state)
        self.result = BlockResult()
        self.tx_bytes = 0  # encoded bytes of the included transactions

    @property
    def height(self) -> int:
        return self.ctx.height

    @property
    def stale(self) -> bool:
        """The head moved on (a block was committed meanwhile): this block can no longer be proposed."""
        return self.chain.head.hash != self.parent.hash

    def add(self, txs: list[Transaction]) -> list[tuple[Transaction, AichainError]]:
        """Execute the candidates that can go in now (see the class); return the ones dropped as invalid."""
        if self.stale:
            return []  # the head moved: the view no longer reads one state, and the block is discarded
        result, view, ctx = self.result, self.view, self.ctx
        max_txs, max_gas = ctx.params.max_block_txs, ctx.params.block_gas_limit
        dropped_before = len(result.dropped)
        for tx in txs:
            if len(result.transactions) >= max_txs or result.gas_reserved + TX_BASE > max_gas:
                break  # full: nothing else fits
            size = len(tx.encoded)
            if tx.nonce != view.account(tx.sender_address).nonce or self.tx_bytes + size > BLOCK_TX_BYTES:
                continue
            # One at a time: a candidate that does not fit is skipped, not the end of the list.
            included = len(result.transactions)
            apply_transactions(view, [tx], ctx, drop_invalid=True, into=result)
            if len(result.transactions) > included:
                self.tx_bytes += size
        return result.dropped[dropped_before:]

    def finish(self, evidence: tuple[bytes, ...] = ()) -> PendingBlock:
        """Act on evidence, pay the proposer, compute the state root and assemble the block."""
        if self.stale:
            raise InvalidBlock(f"block {self.height} was being built on a head that is no longer the head")
        chain, ctx, view, result = self.chain, self.ctx, self.view, self.result
        usable = chain.usable_evidence(evidence)
        finalize_block(view, ctx, result, tuple(DuplicateVote.decode(e) for e in usable))
        changes = view.changes()
        update = chain.tree.prepare(changes)
        last_commit = chain.last_commit if self.parent.height > 0 else None  # genesis has no commit to carry
        block = assemble_block(
            ctx, self.parent, result, update.root, last_commit, chain.validators, validator_set(view), usable
        )
        return PendingBlock(block, result.receipts, changes, update, list(result.dropped))
