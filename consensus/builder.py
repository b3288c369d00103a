"""Assembling a block from the result of executing its transactions."""

from __future__ import annotations

from consensus.validation import receipts_root
from core.block import Block, Commit, Header, commit_hash, evidence_root, transactions_root
from core.validators import ValidatorSet
from vm.execution import BlockContext, BlockResult


def assemble_block(
    ctx: BlockContext,
    parent: Header,
    result: BlockResult,
    state_root: bytes,
    last_commit: Commit | None,
    validators: ValidatorSet,
    next_validators: ValidatorSet,
    evidence: tuple[bytes, ...] = (),
) -> Block:
    txs = tuple(result.transactions)
    header = Header(
        chain_id=ctx.chain_id,
        height=ctx.height,
        timestamp_ms=ctx.timestamp_ms,
        parent_hash=parent.hash,
        proposer=ctx.proposer,
        tx_root=transactions_root(txs),
        state_root=state_root,
        receipts_root=receipts_root(result.receipts),
        validators_hash=validators.hash(),
        next_validators_hash=next_validators.hash(),
        last_commit_hash=commit_hash(last_commit),
        evidence_hash=evidence_root(evidence),
        gas_used=result.gas_used,
        tx_count=len(txs),
    )
    return Block(header, txs, last_commit, evidence)


def next_timestamp(parent: Header, now_ms: int) -> int:
    """Block time: the clock, but always after the parent's."""
    return max(now_ms, parent.timestamp_ms + 1)
