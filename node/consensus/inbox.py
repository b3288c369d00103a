"""The consensus driver's inbox: what it handles, one at a time and in arrival order.

Peers' proposals and votes (checked by the network) come in as `SignedProposal` and `SignedVote`
through `receive`, which refuses anything else with `UnknownConsensusMessage`; a proposal
waits there as an `UnvalidatedProposal` until the driver has executed its block. Besides them:
the machine's timeouts, the driver's own follow-ups, and `wake` (the head moved: a block was
committed here or by sync). The inbox is made before the driver and the network, which each
hold one end of it.
"""

from __future__ import annotations

import asyncio
import time
from enum import Enum
from typing import Final

from consensus.events import Event, VoteReceived
from core.block import Block
from core.proposal import Proposal
from node.consensus.messages import SignedProposal, SignedVote, UnknownConsensusMessage


class UnvalidatedProposal:
    """A proposal from a peer whose block we have not executed yet."""

    __slots__ = ("arrived_at", "block", "proposal")

    def __init__(self, proposal: Proposal, block: Block) -> None:
        self.proposal = proposal
        self.block = block
        self.arrived_at = time.monotonic()


class Retry(Enum):
    """Look again at the requests to sign the double-sign guard held back."""

    RETRY = "retry"


RETRY: Final = Retry.RETRY
Entry = Event | UnvalidatedProposal | Retry | None  # None: the head moved


class Inbox:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Entry] = asyncio.Queue()

    def receive(self, message: object) -> None:
        """A checked proposal or vote from a peer; anything else raises `UnknownConsensusMessage`."""
        match message:
            case SignedProposal(proposal=proposal, block=block):
                self._queue.put_nowait(UnvalidatedProposal(proposal, block))
            case SignedVote(vote=vote):
                self._queue.put_nowait(VoteReceived(vote))
            case _:
                raise UnknownConsensusMessage(message)

    def wake(self) -> None:
        """The head moved (a block was committed, perhaps by sync): the driver re-checks the height."""
        self._queue.put_nowait(None)

    def put(self, entry: Entry) -> None:
        """An event of the driver's own (a timeout, a replayed message, a retry)."""
        self._queue.put_nowait(entry)

    async def get(self) -> Entry:
        return await self._queue.get()
