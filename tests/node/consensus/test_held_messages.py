"""Messages for the next height: kept once, bounded per peer and in bytes, released at their height."""

from __future__ import annotations

from typing import Any, cast

from node.consensus.held_messages import HeldForNextHeight
from node.p2p.peer import Peer

PROPOSAL, VOTE = 17, 18


def peer(name: str) -> Peer:
    return cast(Peer, name)  # only its identity matters here


def test_released_at_their_height_in_arrival_order_and_older_ones_dropped() -> None:
    held = HeldForNextHeight()
    a, b = peer("a"), peer("b")
    assert held.hold(a, PROPOSAL, 12, b"p12", "proposal 12", 1000)
    assert held.hold(b, VOTE, 12, b"v12", "vote 12", 256)
    assert held.hold(a, VOTE, 13, b"v13", "vote 13", 256)
    assert held.hold(b, VOTE, 11, b"v11", "vote 11", 256)
    assert not held.hold(b, VOTE, 12, b"v12", "the same vote again", 256)

    ready: list[tuple[Any, int, Any]] = held.release(11)  # head 11: height 12 is next
    assert ready == [(a, PROPOSAL, "proposal 12"), (b, VOTE, "vote 12")]
    assert len(held) == 1  # height 11 is past: dropped; 13 still waits
    assert held.release(12) == [(a, VOTE, "vote 13")]
    assert len(held) == 0


def test_bounded_per_peer_and_in_bytes() -> None:
    held = HeldForNextHeight(per_peer=3, max_bytes=10_000)
    flooder, honest = peer("flooder"), peer("honest")
    kept = [held.hold(flooder, VOTE, 5, b"f%d" % i, i, 100) for i in range(10)]
    assert kept == [True] * 3 + [False] * 7
    assert held.hold(honest, PROPOSAL, 5, b"h", "block", 9_000)
    assert not held.hold(honest, VOTE, 5, b"h2", "over the byte bound", 1_000)
    assert len(held.release(4)) == 4
    # Released messages free their room.
    assert held.hold(flooder, VOTE, 6, b"later", "again", 100)
    assert held.hold(honest, PROPOSAL, 6, b"h3", "block", 9_000)
