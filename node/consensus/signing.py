"""A validator's signatures, as the consensus driver asks for them.

Rules:
- every signature goes through the `Signer`, which fsyncs what it signs before the signature
  is returned; that runs on a thread of its own (on a busy disk it took up to 1.1 s, all of it
  with the event loop held: P2P, RPC, timers), one signature at a time and in order, as the
  signer's record requires;
- a signature the signer refuses (it would contradict what it signed before) is not made, and
  the refusal is logged;
- while the double-sign guard (`node.consensus.double_sign_guard`) holds, the machine's requests
  to sign are kept (`Withheld`) and carried out when it lets go, if the machine is still in that
  round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from consensus.events import SignProposal, SignVote
from core.block import Vote
from core.proposal import Proposal
from core.validators import ValidatorSet
from node.consensus.double_sign_guard import DoubleSignGuard, Withheld
from node.consensus.signer import DoubleSignRefused, Signer

log = logging.getLogger("aichain.consensus")

T = TypeVar("T")


class Signing:
    """Signs for the driver; a node that is not a validator (no `signer`) signs nothing."""

    def __init__(self, signer: Signer | None, guard: DoubleSignGuard | None, retry: Callable[[], None]) -> None:
        self.signer = signer
        self.guard = guard  # may this validator sign yet?
        self._withheld = None if guard is None else Withheld(guard, retry)  # `retry` once the guard may let go
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="signer")

    async def proposal(self, action: SignProposal, head: int, validators: ValidatorSet | None) -> Proposal | None:
        """The proposal signed, or None if it is not signed (now)."""
        if self.signer is None or self._withhold(action, head, validators):
            return None
        return await self._sign(self.signer.sign_proposal, action.proposal)

    async def vote(self, action: SignVote, head: int, validators: ValidatorSet | None) -> Vote | None:
        """The vote signed, or None if it is not signed (now)."""
        if self.signer is None or self._withhold(action, head, validators):
            return None
        return await self._sign(self.signer.sign_vote, action.vote)

    def release(
        self, head: int, validators: ValidatorSet | None, height: int, round_: int
    ) -> list[SignProposal | SignVote]:
        """The kept requests of (height, round_) to carry out now, if the guard lets go."""
        if self._withheld is None or validators is None:
            return []
        return self._withheld.release(head, validators, height, round_)

    def new_height(self) -> None:
        """What was kept is for a height gone."""
        if self._withheld is not None:
            self._withheld.clear()

    def status(self) -> str | None:
        """Whether this validator signs ("yes", or why it is held); None for a node that is not one."""
        return None if self.signer is None else "yes" if self.guard is None else self.guard.status()

    async def close(self) -> None:
        """Wait for a signature being recorded: it is recorded whole."""
        await asyncio.to_thread(self._thread.shutdown)

    def _withhold(self, action: SignProposal | SignVote, head: int, validators: ValidatorSet | None) -> bool:
        return self._withheld is not None and validators is not None and self._withheld.hold(action, head, validators)

    async def _sign(self, sign: Callable[[T], T], unsigned: T) -> T | None:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, sign, unsigned)
        except DoubleSignRefused as exc:
            log.error("%s", exc)
            return None
