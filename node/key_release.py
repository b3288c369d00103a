"""Key release: the node that holds a private model's content key gives it to each buyer, on chain.

When a block records a licence (`Licensed`, licensing contract) for a version whose artifact
this node stores encrypted *with its content key*, and the model's owners named this node's
releaser account (`keys.set_releaser`), the node seals the content key to the buyer's
published X25519 key and posts the envelope (`keys.post_envelope`), signed with its node key.
A buyer who had not published a key yet is served when its `KeyPublished` event arrives.

The rule it follows is the contracts' own: an envelope is posted only while the buyer
`is_licensed`, only once per (model, version, buyer), and only by an account the owners
named. The owners' own keys never sit on the node. `[models] release_keys = false` turns it
off; `node_status` then shows no releaser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.account_encryption import seal_for
from core.artifact import format_id
from core.errors import AichainError
from core.keys import PrivateKey, address_hex
from core.receipt import Event
from core.transaction import Transaction, TxKind
from vm.contract_tx import encode_call
from vm.contracts import CallContext, run_call
from vm.state import StateView
from vm.system import KEYS, LICENSING, MODELS

if TYPE_CHECKING:
    from node.node import Node

log = logging.getLogger("aichain.keyrelease")

READ_GAS = 10_000_000
POST_GAS = 1_000_000
Licence = tuple[str, int, bytes]  # (model, version, licensee)


class KeyRelease:
    """Watches committed blocks for licences to models whose keys this node holds; posts their envelopes."""

    def __init__(self, node: Node, key: PrivateKey) -> None:
        self.node = node
        self.key = key
        self.address = key.address
        self.waiting_for_key: dict[bytes, set[Licence]] = {}  # buyer -> licences waiting for its X25519 key
        self.posted = 0
        self._queue: asyncio.Queue[list[Licence]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._next_nonce: int | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="key-release")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def block_committed(self, events: list[Event]) -> None:
        """Called with the events of each committed block; cheap, the work happens on the task."""
        found: list[Licence] = []
        for event in events:
            fields = dict(event.fields)
            if event.emitter == LICENSING and event.name == "Licensed":
                found.append((str(fields["model"]), int(fields["version"]), bytes(fields["licensee"])))  # type: ignore[call-overload]
            elif event.emitter == KEYS and event.name == "KeyPublished":
                found.extend(self.waiting_for_key.pop(bytes(fields["account"]), ()))  # type: ignore[arg-type]
        if found:
            self._queue.put_nowait(found)

    async def _run(self) -> None:
        while True:
            licences = await self._queue.get()
            for licence in licences:
                try:
                    await self._release(licence)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a failure to release one key must not stop the others
                    log.exception("releasing the content key of %s@%d to %s failed", licence[0], licence[1],
                                  address_hex(licence[2]))  # fmt: skip

    def _view(self, contract: bytes, function: str, *args: Any) -> Any:
        chain = self.node.chain
        head = chain.head
        ctx = CallContext(self.address, head.height + 1, head.timestamp_ms, read_only=True,
                          chain_id=self.node.genesis.chain_id)  # fmt: skip
        return run_call(StateView(chain.state), ctx, self.address, contract, function, list(args), 0, READ_GAS)[0]

    async def _release(self, licence: Licence) -> None:
        model, version, buyer = licence
        if self._view(KEYS, "releaser_of", model) != self.address:
            return  # the owners did not name this node: not ours to post
        artifact = bytes(self._view(MODELS, "version_info", model, version)[0])
        content_key = self.node.artifacts.content_key(artifact)
        if content_key is None:
            return  # another node holds this model's key
        if self._view(KEYS, "envelope_for", model, version, buyer):
            return  # posted already
        if not self._view(LICENSING, "is_licensed", buyer, model, version):
            return
        public = bytes(self._view(KEYS, "key_of", buyer) or b"")
        if not public:
            log.info("%s bought a licence to %s@%d but has published no encryption key yet; its envelope is posted "
                     "when it does", address_hex(buyer), model, version)  # fmt: skip
            self.waiting_for_key.setdefault(buyer, set()).add(licence)
            return
        envelope = seal_for(content_key, artifact, public)
        await self._post(encode_call("post_envelope", [model, version, buyer, envelope]))
        self.posted += 1
        log.info("released the content key of %s@%d (%s) to %s", model, version, format_id(artifact)[:19],
                 address_hex(buyer))  # fmt: skip

    async def _post(self, data: bytes) -> None:
        node = self.node
        committed_nonce, balance = node._account_nonce_balance(self.address)
        pending = node.mempool.pending_nonce(self.address)
        nonce = max(committed_nonce, pending or 0, self._next_nonce or 0)
        price = node.genesis.params.min_gas_price
        if balance < POST_GAS * price:
            log.warning("cannot post a content-key envelope: the releaser %s holds %d units, a post needs up to %d "
                        "(send it some AIC)", address_hex(self.address), balance, POST_GAS * price)  # fmt: skip
            return
        tx = Transaction(node.genesis.chain_id, self.key.public_key, nonce, POST_GAS, price, TxKind.CALL, KEYS, 0,
                         data).signed_by(self.key)  # fmt: skip
        try:
            await node.submit(tx)
        except AichainError as exc:
            self._next_nonce = None
            log.warning("the node refused its own envelope transaction: %s", exc)
            return
        self._next_nonce = nonce + 1


def events_of(receipts: list[Any]) -> list[Event]:
    return [event for receipt in receipts if receipt.succeeded for event in receipt.events]


Hook = Callable[[list[Event]], None]
__all__ = ["KeyRelease", "events_of"]
