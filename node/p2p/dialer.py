"""The outbound side of the peer manager: dialing the addresses of the address book.

Rules:
- a dial loop keeps up to `max_outbound` outbound peers (dials in flight count) from the address
  book (bootnodes, peer exchange, `add_address`), with the book's backoff;
- an address whose key is our own, already connected or banned, or whose IP is banned, is looked
  at again after `RECHECK_S`, not at once;
- a failed dial backs its address off in the book (for good after a refusal that will not change,
  such as another chain); a dial that reached ourselves marks the address as our own;
- the loop sleeps until an address is due, a peer leaves (`wake`), or 1 s; with no free slot,
  due addresses wait for a wake-up: it never spins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from node.p2p.addrbook import AddressBook, AddressEntry
from node.p2p.config import P2PConfig
from node.p2p.connector import Connector
from node.p2p.errors import HandshakeError, Reason
from node.p2p.metrics import P2PMetrics
from node.p2p.peer import Peer
from node.p2p.peer_set import PeerSet
from node.p2p.scoring import BanList

log = logging.getLogger("node.p2p")

RECHECK_S = 5.0
MIN_DIAL_WAIT_S = 0.05
_LASTING = {
    Reason.WRONG_CHAIN,
    Reason.WRONG_GENESIS,
    Reason.BANNED,
    Reason.NOT_ALLOWED,
    Reason.UNEXPECTED_KEY,
    Reason.PROTOCOL_VERSION,
}

Ready = asyncio.Future[Peer]
Serve = Callable[[Peer, AddressEntry | None, Ready | None], Awaitable[None]]  # runs a peer until it ends
Spawn = Callable[[Coroutine[Any, Any, None], str], Any]  # runs a task the manager stops


class Dialer:
    def __init__(
        self,
        config: P2PConfig,
        book: AddressBook,
        bans: BanList,
        peers: PeerSet,
        connector: Connector,
        metrics: P2PMetrics,
        spawn: Spawn,
        serve: Serve,
    ) -> None:
        self.config = config
        self.book = book
        self.bans = bans
        self.peers = peers
        self.connector = connector
        self.metrics = metrics
        self._spawn = spawn
        self._serve = serve
        self._dialing = 0
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Let the dial loop look at the address book now."""
        self._wakeup.set()

    async def dial(self, entry: AddressEntry, ready: Ready | None = None) -> None:
        """Dial `entry` (marked started in the book) and serve the peer it gives until it ends;
        `ready` gets the peer once it is admitted, or the error."""
        self.metrics.dials += 1
        self._dialing += 1
        label = f"{entry.host}:{entry.port}"
        try:
            deadline = time.monotonic() + self.config.handshake_timeout
            writer = None
            try:
                async with asyncio.timeout(self.config.handshake_timeout):
                    reader, writer = await asyncio.open_connection(
                        entry.host,
                        entry.port,
                        ssl=self.connector.identity.client_context,
                        server_hostname="",
                        limit=256 * 1024,
                    )
                peer = await self.connector.handshake(reader, writer, "client", entry.host, entry.port, entry, deadline)
            except (HandshakeError, OSError, TimeoutError) as exc:
                self.metrics.dial_failures += 1
                code = getattr(exc, "code", "")
                if code == Reason.SELF:
                    self.book.mark_self(entry)
                else:
                    self.book.dial_failed(entry, str(exc) or type(exc).__name__, lasting=code in _LASTING)
                log.debug("dial %s failed: %s", label, exc)
                self._wakeup.set()  # the dial loop re-plans with this entry's new backoff
                if writer is not None:
                    await self.connector.close_stream(writer)
                if ready is not None and not ready.done():
                    ready.set_exception(exc if isinstance(exc, HandshakeError | OSError) else HandshakeError(str(exc)))
                return
            except asyncio.CancelledError:
                if writer is not None:
                    writer.transport.abort()
                if ready is not None and not ready.done():
                    ready.set_exception(HandshakeError(f"dial {label} cancelled: the manager is stopping"))
                raise
        finally:
            self._dialing -= 1
        self.book.dial_succeeded(entry, peer.node_key)
        await self._serve(peer, entry, ready)

    async def run(self) -> None:
        """The dial loop (see the module docstring); runs until cancelled."""
        while True:
            self._wakeup.clear()
            now = time.monotonic()
            slots = self.config.max_outbound - self.peers.count("outbound") - self._dialing
            for entry in self.book.due(now):
                if slots <= 0:
                    break
                key = entry.node_key
                if key is not None and (key == self.peers.node_id or key in self.peers or self.bans.key_banned(key)):
                    entry.next_attempt = now + RECHECK_S  # connected or banned: look again later, not at once
                    continue
                if self.config.ban_ip and self.bans.ip_banned(entry.host):
                    entry.next_attempt = now + RECHECK_S
                    continue
                slots -= 1
                self.book.dial_started(entry)
                self._spawn(self.dial(entry), f"p2p-dial-{entry}")
            # Sleep until an address is due, a peer leaves (wake), or 1 s; never spin: with no
            # free slot, due addresses wait for a wake-up.
            delay = self.book.next_due(time.monotonic()) if slots > 0 else None
            wait = 1.0 if delay is None else min(1.0, max(MIN_DIAL_WAIT_S, delay))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
