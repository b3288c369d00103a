"""Double-sign protection: what this validator signed last, persisted before the signature leaves.

Signing steps are ordered (height, round, step) with proposal < prevote < precommit. The
signer refuses anything below the last signed position, and at the same position returns
the signature it already made for the same bytes and refuses different bytes. The state is
written to `<datadir>/sign_state.json` and fsynced before a signature is returned, so after
a crash — even kill -9 between signing and broadcasting — a restarted validator can never
sign a conflicting vote or proposal.

It guards only while the file survives: a validator whose data directory was wiped (keys
kept) or restored from an old backup has no record of what it signed since. The node then
relies on `node.consensus.double_sign_guard`, which reads the chain for signatures of its key that
this signer cannot have made (`could_have_signed`).

The same write records the validator's lock: a precommit for a block locks the validator on
it (Tendermint's lockedValue/lockedRound). A restarted validator restores that lock, or it
could prevote another block in a later round and help decide a conflicting block.

It also records the validator's votes of the height it signs at (the latest `KEPT_VOTES`):
Tendermint is live only if every vote of a correct validator reaches the others in the end,
and a restarted validator must send them again. Its last vote alone is not enough: the
prevote before its last precommit may never have left, and validators still in that round
can wait for exactly it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import codec
from core.block import Vote, VoteType
from core.errors import AichainError, DecodeError
from core.keys import PrivateKey
from core.proposal import Proposal

STEP_PROPOSAL = 1
STEP_PREVOTE = 2
STEP_PRECOMMIT = 3
KEPT_VOTES = 64  # the votes of the latest 32 rounds of a height: a bound on the record, not a rule


class DoubleSignRefused(AichainError):
    """The signer was asked to sign something that would conflict with what it signed before."""

    rpc_code = -32080


@dataclass(frozen=True)
class _Signed:
    height: int
    round: int
    step: int
    payload: bytes
    signature: bytes
    lock: tuple[int, int, bytes] | None = None  # (height, round, block hash) of the last precommit for a block
    votes: tuple[tuple[bytes, bytes], ...] = ()  # (payload, signature) of the votes signed at `height`, oldest first


class Signer:
    def __init__(self, key: PrivateKey, chain_id: int, path: Path) -> None:
        self.key = key
        self.chain_id = chain_id
        self.path = path
        self._last = self._load()
        self.started_without_state = self._last is None  # a first start, or its record was lost

    @property
    def address(self) -> bytes:
        return self.key.address

    def sign_vote(self, vote: Vote) -> Vote:
        step = STEP_PREVOTE if vote.vote_type == VoteType.PREVOTE else STEP_PRECOMMIT
        lock = (vote.height, vote.round, vote.block_hash) if step == STEP_PRECOMMIT and vote.block_hash else None
        signature = self._sign(
            vote.height,
            vote.round,
            step,
            vote.signing_payload(),
            lambda: vote.signed_by(self.key, self.chain_id).signature,
            lock,
            is_vote=True,
        )
        return Vote(vote.vote_type, vote.height, vote.round, vote.block_hash, vote.validator, signature)

    def sign_proposal(self, proposal: Proposal) -> Proposal:
        payload = proposal.signing_payload()
        signature = self._sign(
            proposal.height,
            proposal.round,
            STEP_PROPOSAL,
            payload,
            lambda: proposal.signed_by(self.key, self.chain_id).signature,
        )
        return Proposal(
            proposal.height, proposal.round, proposal.pol_round, proposal.block_hash, proposal.proposer, signature
        )

    def _sign(
        self,
        height: int,
        round_: int,
        step: int,
        payload: bytes,
        make: Callable[[], bytes],
        lock: tuple[int, int, bytes] | None = None,
        *,
        is_vote: bool = False,
    ) -> bytes:
        last = self._last
        position = (height, round_, step)
        if last is not None:
            last_position = (last.height, last.round, last.step)
            if position < last_position:
                raise DoubleSignRefused(f"refusing to sign {position}: already signed at {last_position}")
            if position == last_position:
                if payload == last.payload:
                    return last.signature
                raise DoubleSignRefused(f"refusing to sign different bytes at {position}: that would equivocate")
        signature = make()
        if lock is None and last is not None and last.lock is not None and last.lock[0] == height:
            lock = last.lock  # the lock holds for the rest of the height
        votes = last.votes if last is not None and last.height == height else ()
        if is_vote:
            votes = (*votes, (payload, signature))[-KEPT_VOTES:]
        self._store(_Signed(height, round_, step, payload, signature, lock, votes))
        return signature

    def lock_for(self, height: int) -> tuple[int, bytes] | None:
        """(round, block hash) this validator is locked on at `height`, if any."""
        lock = None if self._last is None else self._last.lock
        return (lock[1], lock[2]) if lock is not None and lock[0] == height else None

    def _store(self, signed: _Signed) -> None:
        lock = None if signed.lock is None else [signed.lock[0], signed.lock[1], signed.lock[2].hex()]
        doc = {
            "height": signed.height,
            "round": signed.round,
            "step": signed.step,
            "payload": signed.payload.hex(),
            "signature": signed.signature.hex(),
            "lock": lock,
            "votes": [[p.hex(), sig.hex()] for p, sig in signed.votes],
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(doc))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._last = signed

    def _load(self) -> _Signed | None:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise AichainError(
                f"cannot read {self.path} ({exc}); it guards against double-signing, so the node will not sign "
                "without it. Restore it, or delete it only if you are sure this key signed nothing at later heights"
            ) from exc
        lock = doc.get("lock")
        payload, signature = bytes.fromhex(doc["payload"]), bytes.fromhex(doc["signature"])
        kept = doc.get("votes")
        votes: tuple[tuple[bytes, bytes], ...]
        if kept is None:  # written before votes were kept: its last signature, if a vote, is all there is
            votes = ((payload, signature),) if doc["step"] in (STEP_PREVOTE, STEP_PRECOMMIT) else ()
        else:
            votes = tuple((bytes.fromhex(p), bytes.fromhex(sig)) for p, sig in kept)
        return _Signed(
            doc["height"],
            doc["round"],
            doc["step"],
            payload,
            signature,
            None if lock is None else (lock[0], lock[1], bytes.fromhex(lock[2])),
            votes,
        )

    def votes_at(self, height: int) -> list[Vote]:
        """The votes signed at `height` that the record keeps, oldest first (rebuilt from their bytes
        and signatures; bytes that are no vote are left out)."""
        last = self._last
        if last is None or last.height != height:
            return []
        votes = (_rebuild(payload, signature) for payload, signature in last.votes)
        return [vote for vote in votes if vote is not None and vote.height == height]

    def last_signed(self) -> tuple[int, int, int] | None:
        return None if self._last is None else (self._last.height, self._last.round, self._last.step)

    def could_have_signed(self, height: int, round_: int, step: int, payload: bytes) -> bool:
        """Whether a signature of this key over `payload` at (height, round_, step) may be this
        signer's: it signed there (the same bytes) or later. Only the last position is recorded, so an
        earlier one cannot be checked; a later one, or other bytes at the last, cannot be ours."""
        last = self._last
        if last is None:
            return False
        position, last_position = (height, round_, step), (last.height, last.round, last.step)
        return position < last_position or (position == last_position and payload == last.payload)

    def could_have_signed_vote(self, vote: Vote) -> bool:
        step = STEP_PREVOTE if vote.vote_type == VoteType.PREVOTE else STEP_PRECOMMIT
        return self.could_have_signed(vote.height, vote.round, step, vote.signing_payload())


def _rebuild(payload: bytes, signature: bytes) -> Vote | None:
    try:
        fields = codec.decode(payload)
        vote = Vote.from_wire([*fields, signature]) if isinstance(fields, list) else None
    except DecodeError:
        return None
    return vote if vote is not None and vote.signing_payload() == payload else None
