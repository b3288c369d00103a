"""Block validity rules, in three layers.

1. `check_header`: stateless and parent-relative header rules (chain, height, parent,
   time, proposer, validator set).
2. `check_body`: the header's commitments to the body (transactions, commit, evidence).
3. `check_execution`: after executing the block, the header's commitments to its results
   (state root, receipts root, gas used).
`verify_commit` checks that more than 2/3 of the voting power precommitted a block.
"""

from __future__ import annotations

import threading

from core.block import Block, Commit, Header, commit_hash, evidence_root, transactions_root
from core.errors import InvalidBlock, InvalidCommit, InvalidHeader, StateRootMismatch
from core.hashing import merkle_root
from core.receipt import Receipt
from core.validators import ValidatorSet

MAX_FUTURE_DRIFT_MS = 5_000
BODIES_KEPT = 4  # blocks whose body passed `check_body`, remembered by identity


class _CheckedBodies:
    """The last few `Block` objects whose body passed `check_body`.

    A block is immutable and the rule reads only the block, so the same object passes again:
    a proposal rebuilt (or received whole) is checked where it arrives, then executed without
    hashing its transactions a second time. Held by identity, with a reference (an id is never
    reused while the object lives); an equal block built anew is checked anew.
    """

    def __init__(self) -> None:
        self._blocks: tuple[Block, ...] = ()  # replaced whole: a reader on another thread sees one tuple
        self._lock = threading.Lock()

    def __contains__(self, block: Block) -> bool:
        return any(kept is block for kept in self._blocks)

    def add(self, block: Block) -> None:
        commit = block.last_commit
        if type(block.transactions) is not tuple or type(block.evidence) is not tuple:
            return  # built with a list, which could change under the check: not remembered
        if commit is not None and type(commit.signatures) is not tuple:
            return
        with self._lock:
            self._blocks = (*self._blocks[-(BODIES_KEPT - 1) :], block)


_checked_bodies = _CheckedBodies()


def check_header(
    header: Header, parent: Header, validators: ValidatorSet, chain_id: int, now_ms: int | None = None
) -> None:
    if header.chain_id != chain_id:
        raise InvalidHeader(f"block is for chain {header.chain_id}, this is chain {chain_id}")
    if header.height != parent.height + 1:
        raise InvalidHeader(f"block height {header.height} does not follow {parent.height}")
    if header.parent_hash != parent.hash:
        raise InvalidHeader(f"block {header.height} does not build on our block {parent.height}")
    if header.timestamp_ms <= parent.timestamp_ms:
        raise InvalidHeader(f"block {header.height} time {header.timestamp_ms} is not after its parent's")
    if now_ms is not None and header.timestamp_ms > now_ms + MAX_FUTURE_DRIFT_MS:
        raise InvalidHeader(f"block {header.height} time is more than {MAX_FUTURE_DRIFT_MS} ms in the future")
    if header.proposer not in validators.by_address:
        raise InvalidHeader(f"block {header.height} proposer 0x{header.proposer.hex()} is not a validator")
    if header.validators_hash != validators.hash():
        raise InvalidHeader(f"block {header.height} names another validator set")


def check_body(block: Block) -> None:
    if block in _checked_bodies:
        return
    header = block.header
    if header.tx_count != len(block.transactions):
        raise InvalidBlock(f"block {header.height} says {header.tx_count} txs but has {len(block.transactions)}")
    if header.tx_root != transactions_root(block.transactions):
        raise InvalidBlock(f"block {header.height} transactions do not match its tx_root")
    if header.last_commit_hash != commit_hash(block.last_commit):
        raise InvalidBlock(f"block {header.height} last commit does not match its last_commit_hash")
    if header.evidence_hash != evidence_root(block.evidence):
        raise InvalidBlock(f"block {header.height} evidence does not match its evidence_hash")
    if header.height > 1 and block.last_commit is None:
        raise InvalidBlock(f"block {header.height} lacks the commit of block {header.height - 1}")
    if header.height == 1 and block.last_commit is not None:
        raise InvalidBlock("block 1 carries a last commit, but genesis has none")
    _checked_bodies.add(block)


def receipts_root(receipts: list[Receipt]) -> bytes:
    return merkle_root([r.encode() for r in receipts])


def check_execution(
    header: Header, state_root: bytes, receipts: list[Receipt], gas_used: int, next_validators_hash: bytes
) -> None:
    if header.state_root != state_root:
        raise StateRootMismatch(
            f"block {header.height} claims state root {header.state_root.hex()} but executes to {state_root.hex()}"
        )
    if header.receipts_root != receipts_root(receipts):
        raise InvalidBlock(f"block {header.height} receipts do not match its receipts_root")
    if header.gas_used != gas_used:
        raise InvalidBlock(f"block {header.height} claims gas used {header.gas_used}, execution used {gas_used}")
    if header.next_validators_hash != next_validators_hash:
        raise InvalidBlock(f"block {header.height} names another next validator set than execution gives")


def verify_commit(commit: Commit, validators: ValidatorSet, chain_id: int, height: int, block_hash: bytes) -> None:
    """Raise `InvalidCommit` unless distinct validators with > 2/3 of the power signed this block."""
    if commit.height != height or commit.block_hash != block_hash:
        raise InvalidCommit(f"commit is for height {commit.height}, not for block {height}")
    power = 0
    seen: set[bytes] = set()
    for sig in commit.signatures:
        validator = validators.by_address.get(sig.validator)
        if validator is None:
            raise InvalidCommit(f"commit signature from 0x{sig.validator.hex()}, which is not a validator")
        if sig.validator in seen:
            raise InvalidCommit(f"commit lists validator 0x{sig.validator.hex()} twice")
        seen.add(sig.validator)
        if not commit.precommit_of(sig).verify(validator.public_key, chain_id):
            raise InvalidCommit(f"commit signature of 0x{sig.validator.hex()} does not verify")
        power += validator.power
    if power < validators.quorum():
        raise InvalidCommit(f"commit holds {power} of {validators.total_power} power; more than 2/3 is needed")
