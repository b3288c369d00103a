"""Settings of the P2P layer and the bootnode address syntax.

A bootnode is `host:port` or `nodekeyhex@host:port` (64 hex digits, optional `0x`); IPv6
hosts are bracketed: `[::1]:30303`. With a key, a peer at that address presenting another
key is refused (`unexpected_key`).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError
from node.p2p.framing import DEFAULT_MAX_FRAME_SIZE
from node.p2p.handshake import ROLES

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Bootnode:
    host: str
    port: int
    node_key: bytes | None = None

    @classmethod
    def parse(cls, text: str) -> Bootnode:
        key: bytes | None = None
        rest = text.strip()
        if "@" in rest:
            key_hex, rest = rest.split("@", 1)
            key_hex = key_hex.removeprefix("0x")
            try:
                key = bytes.fromhex(key_hex)
            except ValueError:
                key = None
            if key is None or len(key) != 32:
                raise ConfigError(f"bootnode {text!r}: the node key must be 64 hex digits")
        if rest.startswith("["):
            host, sep, port_text = rest[1:].partition("]:")
        else:
            host, sep, port_text = rest.rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"bootnode {text!r}: expected [nodekeyhex@]host:port")
        return cls(host, int(port_text), key)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (f"{self.node_key.hex()}@" if self.node_key else "") + f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class P2PConfig:
    """All times in seconds. See manager.py, peer.py and scoring.py for what they govern."""

    chain_id: int
    genesis_hash: bytes
    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port (see PeerManager.listen_port)
    listen: bool = True  # False: outbound connections only
    role: str = "full"
    client_version: str = "aichain-node/0.1.0"
    bootnodes: tuple[str, ...] = ()
    allow_list: frozenset[bytes] | None = None  # node keys; None = anyone on our chain
    max_inbound: int = 32
    max_outbound: int = 16
    max_pending_handshakes: int = 64  # inbound connections still in TLS or the Hello, in all ...
    max_pending_per_ip: int = 8  # ... and from one IP; beyond either, the oldest of them is dropped
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    handshake_timeout: float = 3.0  # TLS and the Hello, which honest peers finish in milliseconds
    idle_timeout: float | None = None  # no complete frame for this long ends a connection;
    # None: 2 x ping_interval + ping_timeout (a live peer answers our pings well within that)
    write_timeout: float = 30.0  # for one flush of the send queue
    close_timeout: float = 1.0  # for the goodbye and TLS shutdown
    ping_interval: float = 15.0
    ping_timeout: float = 10.0
    send_queue_frames: int = 4096
    send_queue_bytes: int = 64 * MiB
    send_timeout: float = 5.0  # how long `Peer.send` waits for room before dropping a slow peer
    recv_queue_frames: int = 4096  # received messages waiting for their handler; when full,
    recv_queue_bytes: int = 64 * MiB  # the peer is no longer read (backpressure)
    urgent_types: frozenset[int] = frozenset()  # message types that overtake the others (consensus):
    # sent before queued bulk frames, and handled by their own dispatcher, never behind a slow handler
    rate_messages: float = 2000.0
    rate_messages_burst: float = 4000.0
    rate_bytes: float = 32.0 * MiB
    rate_bytes_burst: float = 64.0 * MiB
    requested_types: frozenset[int] = frozenset()  # answers to our own requests (artifact chunks): they
    # count against the message rate but not the byte rate; their handler penalises unrequested ones
    ban_threshold: float = -100.0
    ban_seconds: float = 600.0
    ban_ip: bool = True
    score_recovery_per_s: float = 1.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_dial_failures: int = 8  # then a peer-exchange address is forgotten (bootnodes never are)
    peer_exchange: bool = True  # ask for and share addresses
    pex_interval: float = 30.0
    max_addresses: int = 1000

    def __post_init__(self) -> None:
        if len(self.genesis_hash) != 32:
            raise ConfigError("genesis_hash must be 32 bytes")
        if self.role not in ROLES:
            raise ConfigError(f"role must be one of {ROLES}")
        if self.rate_bytes_burst < self.max_frame_size:
            raise ConfigError("rate_bytes_burst must be at least max_frame_size, or no maximal frame could pass")
        if self.max_frame_size < 1024:
            raise ConfigError("max_frame_size must be at least 1024 bytes")
        if self.max_inbound < 0 or self.max_outbound < 0:
            raise ConfigError("peer limits must not be negative")
        if self.max_pending_handshakes < 1 or self.max_pending_per_ip < 1 or not self.handshake_timeout > 0:
            raise ConfigError(
                "max_pending_handshakes and max_pending_per_ip must be at least 1, handshake_timeout above 0"
            )
        for text in self.bootnodes:
            Bootnode.parse(text)
