"""Evidence of equivocation this node holds, to be put in the blocks it proposes.

The consensus machine reports a validator that signed two different votes for one (height,
round, type); the network reports evidence from peers and late precommits that contradict a
stored commit. Each item is kept once (at most `MAX_EVIDENCE`), offered to every block this
node proposes, and dropped once a committed block includes it or it is no longer usable (its
validator left the set, or it was acted on already). New evidence this node found is told to
its listeners (the network floods it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.block import Vote
from core.evidence import DuplicateVote

log = logging.getLogger("aichain.node")

MAX_EVIDENCE = 1000
Usable = Callable[[tuple[bytes, ...]], tuple[bytes, ...]]  # the items still valid against the chain


class EvidencePool:
    def __init__(self, usable: Usable, on_found: Callable[[], None] = lambda: None) -> None:
        self._usable = usable
        self._on_found = on_found  # counts what this node found (a metric)
        self._evidence: dict[bytes, bytes] = {}  # evidence hash -> its encoding
        self._listeners: list[Callable[[bytes], None]] = []

    def subscribe(self, listener: Callable[[bytes], None]) -> None:
        """`listener(encoded)` is told of each piece of evidence this node found itself."""
        self._listeners.append(listener)

    def take(self) -> tuple[bytes, ...]:
        """Evidence to include in the next block we propose."""
        return tuple(self._evidence.values())

    def pending(self) -> bool:
        return bool(self._evidence)

    def found(self, first: Vote, second: Vote) -> None:
        """A validator signed two different votes for one (height, round, type)."""
        evidence = DuplicateVote.of(first, second)
        self._on_found()
        log.warning(
            "validator 0x%s equivocated at height %d round %d: evidence %s",
            evidence.validator.hex(),
            evidence.height,
            first.round,
            evidence.hash().hex()[:16],
        )
        if self.add(evidence):
            for listener in self._listeners:
                listener(evidence.encode())

    def add(self, evidence: DuplicateVote) -> bool:
        """Keep `evidence` (checked by the caller); False if it is kept already or there is no room."""
        key = evidence.hash()
        if key in self._evidence or len(self._evidence) >= MAX_EVIDENCE:
            return False
        self._evidence[key] = evidence.encode()
        return True

    def block_committed(self, included: tuple[bytes, ...]) -> None:
        """Drop what a committed block included, and what is no longer usable after it."""
        for raw in included:
            self._evidence.pop(DuplicateVote.decode(raw).hash(), None)
        if self._evidence:
            usable = set(self._usable(tuple(self._evidence.values())))
            self._evidence = {k: v for k, v in self._evidence.items() if v in usable}
