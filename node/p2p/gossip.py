"""Gossip de-duplication: remember what was seen so a message is not forwarded in circles.

Rules: a message is identified by SHA-256 of its type byte and canonical payload
(`message_id`); `SeenSet` remembers the last `capacity` ids (least recently seen evicted
first). `Gossip.publish` forwards a message only the first time it is seen, to every
peer but the one it came from.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from core.codec import Value, encode
from core.hashing import sha256

if TYPE_CHECKING:
    from node.p2p.manager import PeerManager
    from node.p2p.peer import Peer


def message_id(msg_type: int, payload: Value) -> bytes:
    """The gossip identity of a message: SHA-256(type byte || canonical payload)."""
    return sha256(bytes((msg_type,)) + encode(payload))


class SeenSet:
    """A bounded LRU set of message ids."""

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._ids: OrderedDict[bytes, None] = OrderedDict()

    def add(self, msg_id: bytes) -> bool:
        """Record `msg_id`; True if it was new, False if already seen (and refresh it)."""
        if msg_id in self._ids:
            self._ids.move_to_end(msg_id)
            return False
        self._ids[msg_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class Gossip:
    """Flood messages through a `PeerManager` once each."""

    def __init__(self, manager: PeerManager, capacity: int = 100_000) -> None:
        self.manager = manager
        self.seen = SeenSet(capacity)

    async def publish(self, msg_type: int, payload: Value, *, origin: Peer | None = None) -> bool:
        """Forward `payload` to all peers except `origin` unless it was seen before.

        Call it for messages created here (origin None) and from a handler for messages
        received (origin = the sending peer). Returns True if the message was new.
        """
        if not self.seen.add(message_id(msg_type, payload)):
            return False
        await self.manager.broadcast(msg_type, payload, exclude=origin.node_key if origin else None)
        return True
