"""The consensus WAL: the block last voted for, its proposal and the polka behind the vote."""

from __future__ import annotations

from pathlib import Path

from core import codec
from core.block import Block, Header, Vote, VoteType
from core.hashing import ZERO_HASH
from core.keys import PrivateKey
from core.proposal import Proposal
from node.consensus.wal import ConsensusWal, Kept
from storage import keys
from storage.kv import KeyValueStore

CHAIN = 9
KEYS = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(3)]


def kept_at(height: int) -> Kept:
    header = Header(CHAIN, height, 1, ZERO_HASH, KEYS[0].address, ZERO_HASH, ZERO_HASH, ZERO_HASH, ZERO_HASH,
                    ZERO_HASH, ZERO_HASH, ZERO_HASH, 0, 0)  # fmt: skip
    block = Block(header, (), None)
    proposal = Proposal(height, 1, -1, block.hash, KEYS[0].address).signed_by(KEYS[0], CHAIN)
    polka = tuple(Vote(VoteType.PREVOTE, height, 1, block.hash, k.address).signed_by(k, CHAIN) for k in KEYS)
    return Kept(proposal, block, polka)


def test_the_block_comes_back_with_the_polka_behind_the_vote(tmp_path: Path) -> None:
    kv = KeyValueStore(tmp_path / "db")
    try:
        kept = kept_at(5)
        ConsensusWal(kv).save(kept.proposal, kept.block, kept.polka)
        assert ConsensusWal(kv).load(5) == kept
        assert ConsensusWal(kv).load(6) is None
        ConsensusWal(kv).save(kept.proposal, kept.block)  # a vote that rests on no polka
        assert ConsensusWal(kv).load(5) == Kept(kept.proposal, kept.block)
    finally:
        kv.close()


def test_an_entry_written_before_polkas_were_kept_still_loads(tmp_path: Path) -> None:
    kv = KeyValueStore(tmp_path / "db")
    try:
        kept = kept_at(5)
        kv.put(keys.CONSENSUS_WAL, codec.encode([kept.proposal.to_wire(), kept.block.encode()]))
        assert ConsensusWal(kv).load(5) == Kept(kept.proposal, kept.block)
        kv.put(keys.CONSENSUS_WAL, codec.encode([kept.proposal.to_wire(), kept.block.encode(), 7]))
        assert ConsensusWal(kv).load(5) is None  # not intact: nothing to restore
    finally:
        kv.close()
