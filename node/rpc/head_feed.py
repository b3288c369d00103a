"""What committed blocks bring, told to whoever subscribed: the WebSocket endpoint's subscriptions.

- heads: each block's header in Ethereum's shape (`eth_subscribe("newHeads")`), rendered once
  for every subscriber;
- an account's transactions (`aichain_transactions`): each committed transaction it sent or
  received, with its outcome;
- a contract's events (`aichain_events`), all or those of one name, in the shape of
  `contract_getEvents`.

The node publishes each committed block once (`publish`, on the event loop, after the commit).
With no account or event subscriber the block's transactions are not even looked at. A subscriber
is a callback that must not block: the WebSocket connection queues what it is told, and drops
itself if it falls too far behind, so one slow reader never holds the others up.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Sequence

from core.block import Block
from core.contract_json import value_to_json
from core.keys import address_hex
from core.receipt import Receipt
from node.rpc.eth import eth_header

log = logging.getLogger("aichain.rpc")

Subscriber = Callable[[str], None]  # told the JSON text of each item


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class HeadFeed:
    def __init__(self, gas_limit: int) -> None:
        self._gas_limit = gas_limit
        self._heads: dict[int, Subscriber] = {}
        self._accounts: dict[bytes, dict[int, Subscriber]] = {}
        self._events: dict[bytes, dict[int, tuple[str | None, Subscriber]]] = {}
        self._where: dict[int, tuple[str, bytes]] = {}  # number -> (kind, key) for unsubscribe
        self._ids = itertools.count(1)
        self.published = 0

    # --- subscribing ------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> int:
        """Tell `subscriber` every head published from now on; the number to `unsubscribe` with."""
        number = next(self._ids)
        self._heads[number] = subscriber
        self._where[number] = ("heads", b"")
        return number

    def subscribe_account(self, account: bytes, subscriber: Subscriber) -> int:
        """Tell `subscriber` each committed transaction `account` sent or received."""
        number = next(self._ids)
        self._accounts.setdefault(account, {})[number] = subscriber
        self._where[number] = ("account", account)
        return number

    def subscribe_events(self, contract: bytes, name: str | None, subscriber: Subscriber) -> int:
        """Tell `subscriber` each event `contract` emits (only those called `name`, if given)."""
        number = next(self._ids)
        self._events.setdefault(contract, {})[number] = (name, subscriber)
        self._where[number] = ("events", contract)
        return number

    def unsubscribe(self, number: int) -> bool:
        where = self._where.pop(number, None)
        if where is None:
            return False
        kind, key = where
        if kind == "heads":
            del self._heads[number]
        else:
            table: dict[bytes, dict[int, object]] = self._accounts if kind == "account" else self._events  # type: ignore[assignment]
            del table[key][number]
            if not table[key]:  # an account or contract nobody follows is not looked up per transaction
                del table[key]
        return True

    def __len__(self) -> int:
        return len(self._where)

    # --- publishing -------------------------------------------------------------------------

    def publish(self, block: Block, receipts: Sequence[Receipt] = ()) -> None:
        """Tell the subscribers what `block` brings (its header; the transactions and events they follow)."""
        self.published += 1
        if self._heads:
            self.publish_text(_dumps(eth_header(block, self._gas_limit)))
        if self._accounts:
            self._tell_accounts(block, receipts)
        if self._events:
            self._tell_events(block, receipts)

    def publish_text(self, text: str) -> None:
        """Tell every head subscriber of a head already rendered as JSON text."""
        for subscriber in list(self._heads.values()):
            _tell(subscriber, text)

    def _tell_accounts(self, block: Block, receipts: Sequence[Receipt]) -> None:
        accounts = self._accounts
        for index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=False)):
            parties = {tx.sender_address, tx.to} & accounts.keys()
            if not parties:
                continue
            text = _dumps(
                {
                    "hash": "0x" + tx.hash.hex(),
                    "from": address_hex(tx.sender_address),
                    "to": address_hex(tx.to) if tx.to else None,
                    "value": str(tx.value),
                    "nonce": tx.nonce,
                    "block_height": block.height,
                    "index": index,
                    "status": "success" if receipt.succeeded else "failed",
                    "gas_used": receipt.gas_used,
                }
            )
            for party in parties:
                for subscriber in list(accounts.get(party, {}).values()):
                    _tell(subscriber, text)

    def _tell_events(self, block: Block, receipts: Sequence[Receipt]) -> None:
        followed = self._events
        for tx, receipt in zip(block.transactions, receipts, strict=False):
            for event in receipt.events:
                wanting = followed.get(event.emitter)
                if not wanting:
                    continue
                text = _dumps(
                    {
                        "height": block.height,
                        "tx_hash": "0x" + tx.hash.hex(),
                        "name": event.name,
                        "fields": {k: value_to_json(v) for k, v in event.fields},
                    }
                )
                for name, subscriber in list(wanting.values()):
                    if name is None or name == event.name:
                        _tell(subscriber, text)


def _tell(subscriber: Subscriber, text: str) -> None:
    try:
        subscriber(text)
    except Exception:  # a subscriber's own failure must not stop the others
        log.exception("a subscriber failed")


__all__ = ["HeadFeed", "Subscriber"]
