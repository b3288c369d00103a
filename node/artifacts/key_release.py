"""Key release: the node that holds a private model's content key gives it to each buyer, on chain.

When a block records a licence (`Licensed`, licensing contract) for a version whose artifact
this node stores encrypted *with its content key*, and the model's owners named this node's
releaser account (`keys.set_releaser`), the node seals the content key to the buyer's
published X25519 key and posts the envelope (`keys.post_envelope`), signed with its node key.
A buyer who had not published a key yet is served when its `KeyPublished` event arrives.

The rule it follows is the contracts' own: an envelope is posted only while the buyer
`is_licensed`, only once per (model, version, buyer) and key, and only by an account the
owners named. The node checks each of these at the head before it sends anything, once it has
caught up with its peers (a licence it reads while syncing may have been served meanwhile, by
the owners themselves), and never sends a post again: the contract would refuse it. One more
rule is the node's own: it seals a key only for versions published by the account that uploaded
the bytes (`node.artifacts.access.PublisherBindings`), because anyone can register a model naming
a public artifact id and name this node its releaser. The owners' own keys never sit on the
node. `[models] release_keys = false` turns it off; `node_status` then shows no releaser.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from core.account_encryption import seal_for
from core.artifact import format_id
from core.contract_values import encode_call
from core.errors import AichainError
from core.keys import PrivateKey, address_hex
from core.receipt import Event, EventValue
from core.system_addresses import KEYS, LICENSING, MODELS
from core.transaction import Transaction, TxKind
from node.artifacts.head_view import HeadView

if TYPE_CHECKING:
    from node.chain import Chain

log = logging.getLogger("aichain.keyrelease")

POST_GAS = 2_000_000  # a post_envelope with its licence check uses a few hundred thousand
MAX_QUEUED = 4_096  # blocks' worth of licences waiting to be looked at
MAX_WAITING = 10_000  # licences waiting for their buyer to publish an encryption key
SYNC_POLL_S = 0.5
SYNC_WAIT_S = 60.0  # longest releases wait for the node to catch up, in all, while it keeps syncing
FRESH_HEAD_S = 2.0  # a head this recent (two block times by default) is the tip, whatever a peer claims
Licence = tuple[str, int, bytes]  # (model, version, licensee)


class KeyRelease:
    """Watches committed blocks for licences to models whose keys this node holds; posts their envelopes.

    Ports: the chain (head state and accounts); `content_key(artifact)`, the key this node keeps for
    an artifact, if it does; `publisher_of(artifact)`, who uploaded its bytes here; `syncing()`,
    whether peers announce heads well ahead; `pending_nonce(address)`, its next nonce in the mempool;
    `submit(tx)`, admission (raises why a transaction is refused)."""

    def __init__(
        self,
        key: PrivateKey,
        *,
        chain: Chain,
        content_key: Callable[[bytes], bytes | None],
        publisher_of: Callable[[bytes], bytes | None],
        syncing: Callable[[], bool],
        pending_nonce: Callable[[bytes], int | None],
        submit: Callable[[Transaction], Awaitable[bytes]],
    ) -> None:
        self.key = key
        self.address = key.address
        self.chain = chain
        self.content_key = content_key
        self.publisher_of = publisher_of
        self.syncing = syncing
        self.pending_nonce = pending_nonce
        self.submit = submit
        self.waiting_for_key: dict[bytes, set[Licence]] = {}  # buyer -> licences waiting for its X25519 key
        self._view = HeadView(chain, chain.chain_id, self.address)
        self._sent: dict[Licence, bytes] = {}  # licences this node sent an envelope for -> the key it sealed to
        self._queue: asyncio.Queue[list[Licence]] = asyncio.Queue(MAX_QUEUED)
        self._task: asyncio.Task[None] | None = None
        self._next_nonce: int | None = None
        self._gave_up = False  # releases stopped waiting for a sync that has gone on since

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
                found.append((str(fields["model"]), int(fields["version"]), _address(fields["licensee"])))
            elif event.emitter == KEYS and event.name == "KeyPublished":
                found.extend(self.waiting_for_key.pop(_address(fields["account"]), ()))
        if found:
            try:
                self._queue.put_nowait(found)
            except asyncio.QueueFull:
                log.error(
                    "key release is %d blocks behind: %d licence(s) not looked at (the owners can release "
                    "them with `aichain-node model release`)",
                    MAX_QUEUED,
                    len(found),
                )

    async def _run(self) -> None:
        while True:
            licences = await self._queue.get()
            for licence in licences:
                try:
                    await self._release(licence)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a failure to release one key must not stop the others
                    log.exception(
                        "releasing the content key of %s@%d to %s failed",
                        licence[0],
                        licence[1],
                        address_hex(licence[2]),
                    )

    async def _caught_up(self) -> None:
        """Wait while the node syncs: the head it has may lack the envelope the owners posted meanwhile.

        Not while its head is recent (`FRESH_HEAD_S`): it is at the tip, whatever head a peer
        claims; and at most `SYNC_WAIT_S` for one stretch of syncing, not for each licence. A peer
        that claims a head nobody has kept the node "syncing" for as long as it stayed connected,
        and made each licence wait the whole time: one envelope a minute. (If the owners did post
        one meanwhile, the contract refuses the second: one transaction fails, nothing worse.)"""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while self.syncing() and not self._head_is_fresh():
            if self._gave_up or loop.time() - started >= SYNC_WAIT_S:
                self._gave_up = True
                return
            await asyncio.sleep(SYNC_POLL_S)
        self._gave_up = False

    def _head_is_fresh(self) -> bool:
        return time.time() * 1000 - self.chain.head.timestamp_ms < FRESH_HEAD_S * 1000

    async def _release(self, licence: Licence) -> None:
        await self._caught_up()
        sealing = self._sealing(licence)
        if sealing is None:
            return  # served already, lapsed, or not this node's to serve
        model, version, buyer = licence
        artifact, content_key, public = sealing
        envelope = seal_for(content_key, artifact, public)
        if await self._post(encode_call("post_envelope", [model, version, buyer, envelope])):
            self._sent[licence] = public
            while len(self._sent) > MAX_WAITING:
                del self._sent[next(iter(self._sent))]
            log.info(
                "released the content key of %s@%d (%s) to %s",
                model,
                version,
                format_id(artifact)[:19],
                address_hex(buyer),
            )

    def _sealing(self, licence: Licence) -> tuple[bytes, bytes, bytes] | None:
        """(artifact, content key, buyer's X25519 key) if the contract would take this node's envelope for
        `licence` now and it is this node's to post; else None (and why is logged where it is news)."""
        model, version, buyer = licence
        ref = f"{model}@{version}"
        if self._view(KEYS, "releaser_of", model) != self.address:
            return None  # the owners did not name this node: not ours to post
        info = self._view(MODELS, "version_info", model, version)
        artifact, publisher = bytes(info[0]), bytes(info[3])
        content_key = self.content_key(artifact)
        if content_key is None:
            return None  # another node holds this model's key
        bound = self.publisher_of(artifact)
        if bound != publisher:
            log.warning(
                "not releasing the key of %s to %s: %s was published by %s, but this node keeps the key of %s for %s",
                ref,
                address_hex(buyer),
                ref,
                address_hex(publisher),
                format_id(artifact),
                "no publisher" if bound is None else f"versions published by {address_hex(bound)}",
            )
            return None
        if not self._view(LICENSING, "is_licensed", buyer, model, version):
            return None  # lapsed (or ended) before its turn came
        public = bytes(self._view(KEYS, "key_of", buyer) or b"")
        if not public:
            log.info(
                "%s bought a licence to %s but has published no encryption key yet; its envelope is posted "
                "when it does",
                address_hex(buyer),
                ref,
            )
            if len(self.waiting_for_key) < MAX_WAITING or buyer in self.waiting_for_key:
                self.waiting_for_key.setdefault(buyer, set()).add(licence)
            return None
        if self._sent.get(licence) == public:
            return None  # this node sent it already (it may not be in a block yet)
        if bytes(self._view(KEYS, "sealed_key_of", model, version, buyer) or b"") == public:
            return None  # posted already, for the key the buyer has now (by this node or by the owners)
        return artifact, content_key, public

    async def _post(self, data: bytes) -> bool:
        """Send a post_envelope call; True if the node admitted it."""
        account = self.chain.account(self.address)
        committed_nonce, balance = account.nonce, account.balance
        pending = self.pending_nonce(self.address)
        nonce = max(committed_nonce, pending or 0, self._next_nonce or 0)
        price = self.chain.params.min_gas_price
        if balance < POST_GAS * price:
            log.warning(
                "cannot post a content-key envelope: the releaser %s holds %d units, a post needs up to %d "
                "(send it some AIC)",
                address_hex(self.address),
                balance,
                POST_GAS * price,
            )
            return False
        tx = Transaction(
            self.chain.chain_id, self.key.public_key, nonce, POST_GAS, price, TxKind.CALL, KEYS, 0, data
        ).signed_by(self.key)
        try:
            await self.submit(tx)
        except AichainError as exc:
            self._next_nonce = None
            log.warning("the node refused its own envelope transaction: %s", exc)
            return False
        self._next_nonce = nonce + 1
        return True


def events_of(receipts: list[Any]) -> list[Event]:
    return [event for receipt in receipts if receipt.succeeded for event in receipt.events]


__all__ = ["KeyRelease", "events_of"]


def _address(value: EventValue) -> bytes:
    """An account field of a system contract's event (declared an address there, so bytes)."""
    if not isinstance(value, bytes):
        raise TypeError(f"an event field holds {type(value).__name__} where the contract declares an address")
    return value
