"""Peer exchange: learn listen addresses from peers, share ours.

Rules: a GetPeers goes to every new peer, and every `pex_interval` to one random peer while
outbound slots are free. The answer (Peers) lists the listen addresses of our other
connected peers: the dialed address of outbound ones, the observed IP plus the announced
listen port of inbound ones (never the asker itself, at most 64, shuffled). A Peers that
was not asked for is unsolicited (penalty). Learned addresses go into the address book
(never our own key or a banned one); the dial loop takes them up to the outbound limit.
With `peer_exchange` off, nothing is asked and the answer is empty.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any, Protocol

from node.p2p.addrbook import AddressBook
from node.p2p.config import P2PConfig
from node.p2p.errors import UnsolicitedMessage
from node.p2p.messages import MsgType, get_peers_frame, parse_get_peers, parse_peers, peers_frame
from node.p2p.metrics import P2PMetrics
from node.p2p.scoring import BanList

if TYPE_CHECKING:
    from node.p2p.peer import Handler, Peer


class Peers(Protocol):
    """The peer manager as peer exchange uses it (`node.p2p.manager.PeerManager`)."""

    config: P2PConfig
    metrics: P2PMetrics
    bans: BanList
    book: AddressBook

    @property
    def node_id(self) -> bytes: ...

    def connected_peers(self) -> list[Peer]: ...

    def wake_dialer(self) -> None: ...


class PeerExchange:
    def __init__(self, manager: Peers) -> None:
        self.manager = manager
        self.enabled = manager.config.peer_exchange

    def handlers(self) -> dict[int, Handler]:
        return {MsgType.GET_PEERS: self.on_get_peers, MsgType.PEERS: self.on_peers}

    def ask(self, peer: Peer) -> None:
        if self.enabled and not peer.pex_requested:
            peer.pex_requested = True
            peer.offer(get_peers_frame())

    async def run(self) -> None:
        config = self.manager.config
        while True:
            await asyncio.sleep(config.pex_interval)
            candidates = [p for p in self.manager.connected_peers() if not p.pex_requested]
            if candidates and self.manager.metrics.peers_outbound < config.max_outbound:
                self.ask(random.choice(candidates))

    async def on_get_peers(self, peer: Peer, payload: Any) -> None:
        parse_get_peers(payload)
        entries: list[tuple[bytes, str, int]] = []
        if self.enabled:
            for other in self.manager.connected_peers():
                if other is not peer and (address := other.listen_address) is not None:
                    entries.append((other.node_key, *address))
        random.shuffle(entries)
        peer.offer(peers_frame(entries))

    async def on_peers(self, peer: Peer, payload: Any) -> None:
        if not peer.pex_requested:
            raise UnsolicitedMessage("peers without get_peers")
        peer.pex_requested = False
        manager = self.manager
        for key, host, port in parse_peers(payload):
            if key != manager.node_id and not manager.bans.key_banned(key):
                manager.book.add(host, port, key)
        manager.wake_dialer()
