"""Consensus messages that arrived one height early, held until this node reaches their height."""

from __future__ import annotations

from collections import Counter
from typing import Any

from node.p2p.peer import Peer

HELD_PER_PEER = 64  # messages one peer may have held: a round's proposal and votes, and then some
HELD_MAX_BYTES = 64 * 1024 * 1024
VOTE_SIZE = 256  # what a held vote counts as, in bytes


class HeldForNextHeight:
    """Proposals and votes for the height after the one this node decides, kept until it gets there.

    A validator a little slower than the others (still executing or writing height h when they
    already propose and vote at h+1) would otherwise drop everything sent for h+1, and could take
    part again only after block sync brought it h+1, seconds later; when it is the next proposer,
    the whole network waits for it. Signatures are checked when the messages are handled at their
    height (only then is its validator set known). Bounded per peer and in bytes; the excess is
    dropped (vote gossip sends each peer what it lacks once it gets there; see node.consensus.vote_gossip).
    """

    def __init__(self, per_peer: int = HELD_PER_PEER, max_bytes: int = HELD_MAX_BYTES) -> None:
        self.per_peer, self.max_bytes = per_peer, max_bytes
        # signature -> (height, peer, message type, payload, size)
        self._held: dict[bytes, tuple[int, Peer, int, Any, int]] = {}
        self._per_peer: Counter[Peer] = Counter()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, peer: Peer, msg_type: int, height: int, signature: bytes, payload: Any, size: int) -> bool:
        """Keep a message; False if it is held already or there is no room for it."""
        if signature in self._held or self._bytes + size > self.max_bytes:
            return False
        if self._per_peer[peer] >= self.per_peer:
            return False
        self._held[signature] = (height, peer, msg_type, payload, size)
        self._per_peer[peer] += 1
        self._bytes += size
        return True

    def release(self, head_height: int) -> list[tuple[Peer, int, Any]]:
        """The messages for the height after `head_height`, in arrival order; older ones are dropped."""
        ready: list[tuple[Peer, int, Any]] = []
        for signature, (height, peer, msg_type, payload, size) in list(self._held.items()):
            if height <= head_height + 1:
                del self._held[signature]
                self._bytes -= size
                self._per_peer[peer] -= 1
                if not self._per_peer[peer]:
                    del self._per_peer[peer]
                if height == head_height + 1:
                    ready.append((peer, msg_type, payload))
        return ready


__all__ = ["HELD_MAX_BYTES", "HELD_PER_PEER", "VOTE_SIZE", "HeldForNextHeight"]
