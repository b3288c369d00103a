"""New heads, told to whoever subscribed: the WebSocket endpoint's `eth_subscribe("newHeads")`.

The node publishes each committed block once (`publish`, on the event loop, after the commit);
the feed renders its Ethereum-shaped header once and hands the same text to every subscriber.
A subscriber is a callback that must not block: the WebSocket connection queues what it is told,
and drops itself if it falls too far behind, so one slow reader never holds the others up.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable

from core.block import Block
from node.rpc.eth import eth_header

log = logging.getLogger("aichain.rpc")

Subscriber = Callable[[str], None]  # told the JSON text of each new head


class HeadFeed:
    def __init__(self, gas_limit: int) -> None:
        self._gas_limit = gas_limit
        self._subscribers: dict[int, Subscriber] = {}
        self._ids = itertools.count(1)
        self.published = 0

    def subscribe(self, subscriber: Subscriber) -> int:
        """Tell `subscriber` every head published from now on; the number to `unsubscribe` with."""
        number = next(self._ids)
        self._subscribers[number] = subscriber
        return number

    def unsubscribe(self, number: int) -> bool:
        return self._subscribers.pop(number, None) is not None

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, block: Block) -> None:
        """Tell every subscriber of `block`'s header (rendered once)."""
        self.published += 1
        if self._subscribers:
            self.publish_text(json.dumps(eth_header(block, self._gas_limit), separators=(",", ":")))

    def publish_text(self, text: str) -> None:
        """Tell every subscriber of a head already rendered as JSON text."""
        for subscriber in list(self._subscribers.values()):
            try:
                subscriber(text)
            except Exception:  # a subscriber's own failure must not stop the others
                log.exception("a newHeads subscriber failed")


__all__ = ["HeadFeed", "Subscriber"]
