"""Faults a validator can be switched into for tests (config keys `test_*`); never for production.

- `test_double_sign`: after each vote, also sign and send a conflicting one (a Byzantine
  validator, to test evidence);
- `[consensus] test_exit_after_prevote_at = H`: at the first height from H on whose round 0
  this validator proposes, die as kill -9 would, right after its round-0 prevote went out (the
  others can lock on its block; its precommit never comes).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from consensus.proposer import proposer_for
from core.block import Vote
from core.validators import ValidatorSet
from node.consensus.messages import SignedVote
from node.consensus.signer import Signer

log = logging.getLogger("aichain.consensus")

Send = Callable[[SignedVote], Awaitable[None]]


async def equivocate(signer: Signer, vote: Vote, send: Send) -> None:
    """Sign and send a vote that conflicts with `vote` (past the signer's protection)."""
    other = b"" if vote.block_hash else b"\xee" * 32
    conflicting = Vote(vote.vote_type, vote.height, vote.round, other, vote.validator)
    await send(SignedVote(conflicting.signed_by(signer.key, signer.chain_id)))


async def exit_after_prevote(vote: Vote, validators: ValidatorSet, from_height: int) -> None:
    """Exit the process (as kill -9 would) if `vote` is the round-0 prevote of a height from
    `from_height` on whose round 0 its signer proposes; the frames queued go out first."""
    if vote.round != 0 or vote.height < from_height:
        return
    if proposer_for(validators, vote.height, 0).address != vote.validator:
        return
    log.warning("test_exit_after_prevote_at: exiting after the round-0 prevote at height %d", vote.height)
    await asyncio.sleep(0.5)  # the frames go out meanwhile; the consensus task handles nothing more
    os._exit(137)
