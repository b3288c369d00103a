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
        wal = ConsensusWal(kv)
        wal.save(kept.proposal, kept.block)  # the prevote: no polka yet
        assert ConsensusWal(kv).load(5) == Kept(kept.proposal, kept.block)
        wal.save(kept.proposal, kept.block, kept.polka)  # the precommit rests on the round's polka
        assert ConsensusWal(kv).load(5) == kept
        assert ConsensusWal(kv).load(6) is None
        ConsensusWal(kv).save(kept.proposal, kept.block)  # restarted, a vote for it on no polka: it stays
        assert ConsensusWal(kv).load(5) == kept
    finally:
        kv.close()


def test_the_block_is_written_once_and_the_polka_only_when_it_changes(tmp_path: Path) -> None:
    """A block of megabytes is not written again for the precommit after the prevote."""
    kv = KeyValueStore(tmp_path / "db")
    writes: list[bytes] = []
    put = kv.put
    kv.put = lambda key, value: (writes.append(key), put(key, value))[1]  # type: ignore[method-assign]
    try:
        kept = kept_at(5)
        wal = ConsensusWal(kv)
        wal.save(kept.proposal, kept.block)
        wal.save(kept.proposal, kept.block, kept.polka)
        wal.save(kept.proposal, kept.block, kept.polka)
        assert writes == [keys.CONSENSUS_WAL, keys.CONSENSUS_WAL_POLKA]
    finally:
        kv.close()


def test_a_polka_of_another_block_is_left_out(tmp_path: Path) -> None:
    """Killed between the two writes: the polka entry still backs the previous block."""
    kv = KeyValueStore(tmp_path / "db")
    try:
        old, new = kept_at(4), kept_at(5)
        ConsensusWal(kv).save(old.proposal, old.block, old.polka)
        kv.put(keys.CONSENSUS_WAL, codec.encode([new.proposal.to_wire(), new.block.encode()]))
        assert ConsensusWal(kv).load(5) == Kept(new.proposal, new.block)
    finally:
        kv.close()


def test_an_entry_that_is_not_intact_restores_nothing(tmp_path: Path) -> None:
    kv = KeyValueStore(tmp_path / "db")
    try:
        kept = kept_at(5)
        kv.put(keys.CONSENSUS_WAL, codec.encode([kept.proposal.to_wire(), kept.block.encode(), 7]))
        assert ConsensusWal(kv).load(5) is None
        kv.put(keys.CONSENSUS_WAL, codec.encode([kept.proposal.to_wire(), kept.block.encode()]))
        kv.put(keys.CONSENSUS_WAL_POLKA, b"\xff\x00")
        assert ConsensusWal(kv).load(5) == Kept(kept.proposal, kept.block)  # the block still, without a polka
    finally:
        kv.close()
