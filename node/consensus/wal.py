"""The block this validator voted for and the polka behind that vote, kept so that a restart does
not forget them; and where a restarted validator takes up the height (`resume_point`), with the
votes it sends again.

`node/consensus/signer.py` persists what the validator signed last, but not the block behind a vote:
after a crash between a prevote for block X and the decision, the restarted validator knows
it prevoted X and may not prevote anything else in that round, yet cannot precommit X or
propose it again, because X was only in memory. A lone validator then waits out timeouts
(seconds) before a new round; in a network it may leave others waiting for its precommit.

Nor the prevotes of the polka it locked on: others' votes, which it may have been the only
honest validator to receive (the signer of one withheld it from the rest). Restarted with its
lock and without them, it can convince nobody: it prevotes nil on every other block, and the
others, unlocked, never see a polka for its own. Tendermint assumes that what a correct
validator received reaches every correct validator in the end; CometBFT's WAL keeps it so.

Rule: before signing a vote for a block, the node stores that block, its proposal and the
prevotes the vote rests on (`Tendermint.polka_behind`: the polka of a precommit, the POL of a
re-proposal) here (the latest only; the block is written once, not again for the precommit).
After a restart at the same height it executes the block again and hands the proposal and the
prevotes to its machine, which can then go on where it stopped (a lone validator decides at
once), and propose its locked block with its POL. The entries are written without fsync: they
survive kill -9, and after a power loss the node falls back to the timeouts (safety never
depends on them; the signer's state does that).
"""

from __future__ import annotations

from dataclasses import dataclass

from core import codec
from core.block import MAX_BLOCK_BYTES, Block, Vote
from core.errors import DecodeError
from core.proposal import Proposal
from node.consensus.signer import STEP_PRECOMMIT, Signer
from storage import keys
from storage.kv import KeyValueStore

MAX_KEPT_PREVOTES = 16_384  # a polka of a validator set this large at most
WAL_LIMITS = codec.Limits(max_bytes=MAX_BLOCK_BYTES + 4096, max_bin_len=MAX_BLOCK_BYTES, max_array_len=8, max_depth=3)
POLKA_LIMITS = codec.Limits(
    max_bytes=4096 + MAX_KEPT_PREVOTES * 256, max_bin_len=4096, max_array_len=MAX_KEPT_PREVOTES, max_depth=3
)


@dataclass(frozen=True)
class Kept:
    """The block last voted for at a height, its proposal, and the prevotes that vote rests on."""

    proposal: Proposal
    block: Block
    polka: tuple[Vote, ...] = ()


class ConsensusWal:
    """Two entries: the block with its proposal, written once per block voted for, and the polka
    with the hash of the block it backs, written when it grows (a precommit after the prevote).
    Each write is atomic on its own; a polka whose hash is not the kept block's is left out."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv
        self._saved_block: bytes | None = None  # hash of the block entry written by this process
        self._saved_polka: frozenset[bytes] = frozenset()  # signatures of the polka entry written for it

    def save(self, proposal: Proposal, block: Block, polka: tuple[Vote, ...] = ()) -> None:
        """Keep `block`, its proposal and the prevotes a vote for it rests on (called before signing it)."""
        if self._saved_block != block.hash:
            self.kv.put(keys.CONSENSUS_WAL, codec.encode([proposal.to_wire(), block.encode()]))
            self._saved_block, self._saved_polka = block.hash, frozenset()
        polka = polka[:MAX_KEPT_PREVOTES]
        signatures = frozenset(v.signature for v in polka)
        if polka and signatures != self._saved_polka:
            self.kv.put(keys.CONSENSUS_WAL_POLKA, codec.encode([block.hash, [v.to_wire() for v in polka]]))
            self._saved_polka = signatures

    def load(self, height: int) -> Kept | None:
        """What was kept, if it is for `height` (and intact), else None."""
        raw = self.kv.get(keys.CONSENSUS_WAL)
        if raw is None:
            return None
        try:
            items = codec.decode(raw, limits=WAL_LIMITS)
            if not isinstance(items, list) or len(items) != 2:
                return None
            proposal = Proposal.from_wire(items[0])
            block = Block.decode(codec.expect_bytes(items[1], "kept block"))
        except DecodeError:
            return None
        if proposal.height != height or block.hash != proposal.block_hash:
            return None
        polka = tuple(v for v in self._load_polka(block.hash) if v.height == height)
        return Kept(proposal, block, polka)

    def _load_polka(self, block_hash: bytes) -> tuple[Vote, ...]:
        raw = self.kv.get(keys.CONSENSUS_WAL_POLKA)
        if raw is None:
            return ()
        try:
            items = codec.decode(raw, limits=POLKA_LIMITS)
            if not isinstance(items, list) or len(items) != 2 or items[0] != block_hash:
                return ()
            votes = items[1]
            if not isinstance(votes, list):
                return ()
            return tuple(Vote.from_wire(v) for v in votes)
        except DecodeError:
            return ()


@dataclass(frozen=True)
class ResumePoint:
    """Where a validator takes up a height: round, lock, and what it had signed and voted for."""

    first_round: int = 0
    locked: tuple[int, bytes] | None = None
    votes: tuple[Vote, ...] = ()  # signed at this height before the restart, oldest first: send again, count
    kept: Kept | None = None  # the block last voted for, with its proposal and polka


def resume_point(signer: Signer | None, wal: ConsensusWal, height: int) -> ResumePoint:
    """The round is the last one signed in, or the next if the validator precommitted there
    (nothing is left to sign in it); see `Tendermint.start_height`. Every vote of the height the
    signer kept goes out again: any of them may never have left, and peers still in its round
    may wait for exactly it."""
    if signer is None:
        return ResumePoint()
    last = signer.last_signed()
    if last is None or last[0] != height:
        return ResumePoint(locked=signer.lock_for(height))
    _, round_, step = last
    return ResumePoint(
        first_round=round_ + 1 if step == STEP_PRECOMMIT else round_,
        locked=signer.lock_for(height),
        votes=tuple(signer.votes_at(height)),
        kept=wal.load(height),
    )
