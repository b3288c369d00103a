"""The single-validator engine: with one validator, a proposal is final at once.

It decides when the next block is due and signs the precommit that finalises it. The
BFT engine replaces it with the same two duties (when to propose, how a block becomes
committed) spread over rounds and votes.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.block import Commit, CommitSig, Header, Vote, VoteType
from core.errors import ConfigError
from core.genesis import ChainParams
from core.keys import PrivateKey
from core.validators import ValidatorSet


@dataclass
class SingleValidatorEngine:
    key: PrivateKey
    validators: ValidatorSet
    chain_id: int
    params: ChainParams

    def __post_init__(self) -> None:
        if len(self.validators) != 1 or self.key.address not in self.validators.by_address:
            raise ConfigError(
                "the single-validator engine needs a genesis with exactly one validator whose key this node holds"
            )

    def next_block_due_ms(self, last_block_ms: int, has_pending_txs: bool) -> int:
        """When to propose: one block time after the last block if transactions wait, else after the idle interval."""
        if has_pending_txs:
            return last_block_ms + self.params.block_time_ms
        return last_block_ms + max(self.params.block_time_ms, self.params.empty_block_interval_ms)

    def commit(self, header: Header) -> Commit:
        """Precommit `header` with our key; our power is the whole set's, so this is its commit."""
        vote = Vote(VoteType.PRECOMMIT, header.height, 0, header.hash, self.key.address).signed_by(
            self.key, self.chain_id
        )
        return Commit(header.height, 0, header.hash, (CommitSig(self.key.address, vote.signature),))
