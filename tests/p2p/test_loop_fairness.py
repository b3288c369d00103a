"""What a peer sends is handled in bounded slices of the event loop: a frame's decoding is bounded by its
number of values, and a dispatcher gives the loop a turn while it works through a backlog."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from core.codec import encode
from node.p2p import Peer
from node.p2p.errors import MalformedFrame
from node.p2p.framing import MAX_FRAME_VALUES, decode_body, encode_frame, limits_for
from tests.p2p.support import APP, Cluster, RawClient, wait_until

LIMITS = limits_for(16 * 1024 * 1024)


@pytest.mark.parametrize(
    "payload",
    [[APP, [[None] * 199_999] * 80], [APP, [[]] * 199_999, [[[]] * 50_000] * 60], [APP, list(range(199_999))]],
    ids=["16M nils", "empty arrays", "200k ints"],
)
def test_a_frame_of_too_many_values_is_refused_in_milliseconds(payload: Any) -> None:
    """A 16 MiB frame of 16 million nils decoded for 1.8 s on the event loop."""
    body = encode(payload)
    started = time.perf_counter()
    with pytest.raises(MalformedFrame, match=f"more than {MAX_FRAME_VALUES} values"):
        decode_body(body, LIMITS)
    assert time.perf_counter() - started < 0.1


def test_frames_at_the_value_bound_decode() -> None:
    exactly = [APP, [None] * (MAX_FRAME_VALUES - 4)]  # the two arrays count their elements and 1 each
    assert decode_body(encode(exactly), LIMITS) == exactly
    with pytest.raises(MalformedFrame):
        decode_body(encode([APP, [None] * (MAX_FRAME_VALUES - 3)]), LIMITS)
    txs = [APP, [bytes(130_000)] * 127]  # a batch of the largest transactions: few values, many bytes
    assert decode_body(encode(txs), LIMITS) == txs


async def test_a_backlog_of_messages_leaves_the_loop_turns(cluster: Cluster) -> None:
    """1,000 messages whose handler never waits (0.1 ms of work each): the dispatcher ran them all in one
    turn of the loop (100 ms); now the loop runs every few milliseconds meanwhile."""
    a = await cluster.start()
    handled = 0

    async def handler(peer: Peer, payload: object) -> None:
        nonlocal handled
        until = time.perf_counter() + 0.0001
        while time.perf_counter() < until:
            pass
        handled += 1

    a.register(APP, handler)
    raw = await RawClient.connect(a.listen_port)
    await wait_until(lambda: a.peer(raw.key.public_key) is not None, what="raw peer")
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while handled < 1000:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await raw.send_raw(b"".join(encode_frame(APP, [APP, i]) for i in range(1000)))
    await asyncio.wait_for(ticking, 10)
    raw.close()
    assert max(gaps) < 0.05, max(gaps)
