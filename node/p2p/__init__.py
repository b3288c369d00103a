"""The P2P transport and peer layer (docs/network.md), independent of what the messages mean.

Stack, bottom up: TLS 1.3 with a self-signed Ed25519 certificate per node (tls.py); a
signed Hello exchange bound to the TLS channel that proves the peer's node key, chain and
genesis (handshake.py); length-prefixed canonical-msgpack frames (framing.py); one `Peer`
per connection with a bounded send queue, keepalive, rate limits and a score (peer.py);
the `PeerManager` that listens, dials, deduplicates, exchanges addresses and bans
(manager.py). `gossip.py` helps upper layers flood messages once. Wire formats:
PROTOCOL.md in this folder.

Upper layers use message types FIRST_APP_TYPE (16) .. 255:

    manager = PeerManager(P2PConfig(chain_id=..., genesis_hash=..., port=30303), node_key)
    manager.register(MY_TYPE, handler)          # async def handler(peer, payload) -> None
    await manager.start()
    await manager.broadcast(MY_TYPE, [MY_TYPE, ...], exclude=peer.node_key)
    await peer.send(MY_TYPE, [...])
    await manager.stop()
"""

from node.p2p.config import Bootnode, P2PConfig
from node.p2p.errors import (
    FrameTooLarge,
    HandshakeError,
    HandshakeRefused,
    HandshakeTimeout,
    MalformedFrame,
    P2PError,
    PeerClosed,
    ProtocolViolation,
    ReadTimeout,
    Reason,
    SendQueueFull,
    UnknownMessageType,
    UnsolicitedMessage,
)
from node.p2p.gossip import Gossip, SeenSet, message_id
from node.p2p.manager import PeerManager
from node.p2p.messages import FIRST_APP_TYPE, MsgType
from node.p2p.metrics import P2PMetrics
from node.p2p.peer import Peer, PeerInfo

__all__ = [
    "FIRST_APP_TYPE",
    "Bootnode",
    "FrameTooLarge",
    "Gossip",
    "HandshakeError",
    "HandshakeRefused",
    "HandshakeTimeout",
    "MalformedFrame",
    "MsgType",
    "P2PConfig",
    "P2PError",
    "P2PMetrics",
    "Peer",
    "PeerClosed",
    "PeerInfo",
    "PeerManager",
    "ProtocolViolation",
    "ReadTimeout",
    "Reason",
    "SeenSet",
    "SendQueueFull",
    "UnknownMessageType",
    "UnsolicitedMessage",
    "message_id",
]
