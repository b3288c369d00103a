"""The Hello exchange that follows TLS and proves who is at the other end.

Rules:
- Right after TLS both sides send a HELLO frame at once:
  `[tag=1, protocol_version, chain_id, genesis_hash, role, node_public_key, listen_port,
  head_height, head_hash, client_version, signature]`.
- The signature is the node key's, under DOMAIN_HANDSHAKE and the sender's chain id, over
  `encode([tag, <the ten fields>, channel_binding, side])`, where `side` is "client" or
  "server" (the sender's TLS role) and `channel_binding` is the `tls-server-end-point`
  hash (tls.py). A relay that terminates TLS presents its own certificate, so the sides
  compute different bindings and each rejects the other's signature; `side` stops a Hello
  from being reflected back to its sender.
- The receiver checks, in order: shape, protocol version, signature, chain id, genesis
  hash, not ourselves, allow-list, the expected key (a `key@host:port` bootnode), then the
  caller's own check (bans, peer limits). The first failure is sent to the peer as a
  DISCONNECT frame `[2, code, reason]`, logged, and raised as `HandshakeRefused`.
- Otherwise it sends ACCEPT and waits for the peer's ACCEPT (or DISCONNECT): both sides
  know the outcome, and a side refused for a reason only the other checks (a ban, the
  allow-list, a full peer table) learns why.
- The whole exchange has one deadline (`HandshakeTimeout`); handshake frames are at most
  HANDSHAKE_MAX_FRAME_SIZE bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from core.codec import encode, expect_bytes, expect_list, expect_str, expect_uint
from core.errors import DecodeError
from core.keys import DOMAIN_HANDSHAKE, PrivateKey, verify
from node.p2p.errors import (
    HandshakeError,
    HandshakeRefused,
    HandshakeTimeout,
    P2PError,
    PeerClosed,
    ReadTimeout,
    Reason,
)
from node.p2p.framing import HANDSHAKE_MAX_FRAME_SIZE, decode_body, encode_frame, limits_for, read_frame
from node.p2p.messages import MsgType, accept_frame, disconnect_frame, parse_accept, parse_disconnect

log = logging.getLogger("node.p2p.handshake")

PROTOCOL_VERSION = 1
HELLO_TAG = 1
ROLES = ("validator", "full")
Side = Literal["client", "server"]
_LIMITS = limits_for(HANDSHAKE_MAX_FRAME_SIZE)
_REFUSAL_SEND_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class Hello:
    """A node's signed introduction (see the module rules)."""

    protocol_version: int
    chain_id: int
    genesis_hash: bytes
    role: str
    node_public_key: bytes
    listen_port: int
    head_height: int
    head_hash: bytes
    client_version: str
    signature: bytes = b""

    def _fields(self) -> list[Any]:
        return [
            HELLO_TAG,
            self.protocol_version,
            self.chain_id,
            self.genesis_hash,
            self.role,
            self.node_public_key,
            self.listen_port,
            self.head_height,
            self.head_hash,
            self.client_version,
        ]

    def signing_payload(self, binding: bytes, side: Side) -> bytes:
        return encode([*self._fields(), binding, side])

    def signed(self, key: PrivateKey, binding: bytes, side: Side) -> Hello:
        return replace(self, signature=key.sign(DOMAIN_HANDSHAKE, self.chain_id, self.signing_payload(binding, side)))

    def verifies(self, binding: bytes, side: Side) -> bool:
        payload = self.signing_payload(binding, side)
        return verify(self.node_public_key, self.signature, DOMAIN_HANDSHAKE, self.chain_id, payload)

    def to_wire(self) -> list[Any]:
        return [*self._fields(), self.signature]

    @classmethod
    def from_wire(cls, value: Any) -> Hello:
        """Parse a decoded HELLO payload; raises `DecodeError` on any deviation."""
        v = expect_list(value, HELLO_TAG, 11, "hello")
        role = expect_str(v[4], "role", 16)
        if role not in ROLES:
            raise DecodeError(f"hello: unknown role {role!r}")
        return cls(
            protocol_version=expect_uint(v[1], "protocol version", 32),
            chain_id=expect_uint(v[2], "chain id"),
            genesis_hash=expect_bytes(v[3], "genesis hash", 32),
            role=role,
            node_public_key=expect_bytes(v[5], "node key", 32),
            listen_port=expect_uint(v[6], "listen port", 16),
            head_height=expect_uint(v[7], "head height"),
            head_hash=expect_bytes(v[8], "head hash", 32),
            client_version=expect_str(v[9], "client version", 64),
            signature=expect_bytes(v[10], "signature", 64),
        )


@dataclass(frozen=True, slots=True)
class LocalNode:
    """What this node says about itself and accepts from others."""

    key: PrivateKey
    chain_id: int
    genesis_hash: bytes
    role: str = "full"
    listen_port: int = 0
    head_height: int = 0
    head_hash: bytes = bytes(32)
    client_version: str = "aichain-node"
    allow_list: frozenset[bytes] | None = None

    def hello(self) -> Hello:
        return Hello(
            PROTOCOL_VERSION,
            self.chain_id,
            self.genesis_hash,
            self.role,
            self.key.public_key,
            self.listen_port,
            self.head_height,
            self.head_hash,
            self.client_version,
        )


def _short(h: bytes) -> str:
    return "0x" + h[:4].hex() + ".."


def verify_hello(
    hello: Hello,
    local: LocalNode,
    *,
    binding: bytes,
    peer_side: Side,
    peer_label: str,
    expected_key: bytes | None = None,
) -> None:
    """Raise `HandshakeRefused` unless `hello` is acceptable (see the module rules)."""
    if hello.protocol_version != PROTOCOL_VERSION:
        raise HandshakeRefused(
            Reason.PROTOCOL_VERSION,
            f"peer {peer_label} speaks protocol {hello.protocol_version}, we speak {PROTOCOL_VERSION}",
        )
    if not hello.verifies(binding, peer_side):
        raise HandshakeRefused(
            Reason.BAD_SIGNATURE,
            f"the hello of peer {peer_label} does not verify for key {hello.node_public_key.hex()[:16]}.. "
            "on this TLS channel (forged, or relayed by a man in the middle)",
        )
    if hello.chain_id != local.chain_id or hello.genesis_hash != local.genesis_hash:
        code = Reason.WRONG_CHAIN if hello.chain_id != local.chain_id else Reason.WRONG_GENESIS
        raise HandshakeRefused(
            code,
            f"peer {peer_label} is on chain {hello.chain_id} / genesis {_short(hello.genesis_hash)}, "
            f"we are on chain {local.chain_id} / genesis {_short(local.genesis_hash)}",
        )
    if hello.node_public_key == local.key.public_key:
        raise HandshakeRefused(Reason.SELF, f"{peer_label} is this node itself")
    if local.allow_list is not None and hello.node_public_key not in local.allow_list:
        raise HandshakeRefused(
            Reason.NOT_ALLOWED, f"node key {hello.node_public_key.hex()} of {peer_label} is not on the allow-list"
        )
    if expected_key is not None and hello.node_public_key != expected_key:
        raise HandshakeRefused(
            Reason.UNEXPECTED_KEY,
            f"{peer_label} has node key {hello.node_public_key.hex()[:16]}.., expected {expected_key.hex()[:16]}..",
        )


async def _read(reader: asyncio.StreamReader, deadline: float) -> tuple[int, Any]:
    frame = await read_frame(reader, max_frame_size=HANDSHAKE_MAX_FRAME_SIZE, idle_timeout=None, body_timeout=deadline)
    return frame.msg_type, decode_body(frame.body, _LIMITS)


def _parse_hello(msg_type: int, value: Any, peer_label: str) -> Hello:
    try:
        if msg_type != MsgType.HELLO:
            raise DecodeError(f"expected a hello frame, got type {msg_type}")
        return Hello.from_wire(value)
    except DecodeError as exc:
        raise HandshakeRefused(Reason.MALFORMED, f"bad hello from {peer_label}: {exc}") from exc


async def _send(writer: asyncio.StreamWriter, frame: bytes) -> None:
    writer.write(frame)
    await writer.drain()


async def perform_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    local: LocalNode,
    *,
    side: Side,
    binding: bytes,
    peer_label: str,
    timeout: float = 5.0,
    expected_key: bytes | None = None,
    check: Callable[[Hello], None] | None = None,
) -> Hello:
    """Exchange Hellos over an established TLS stream; return the peer's verified Hello.

    Raises `HandshakeRefused` (by us or by the peer), `HandshakeTimeout`, or
    `HandshakeError` (connection lost, garbage). The caller closes the stream on failure.
    """
    peer_side: Side = "server" if side == "client" else "client"
    try:
        async with asyncio.timeout(timeout):
            await _send(writer, encode_frame(MsgType.HELLO, local.hello().signed(local.key, binding, side).to_wire()))
            msg_type, value = await _read(reader, timeout)
            if msg_type == MsgType.DISCONNECT:
                code, reason = parse_disconnect(value)
                raise HandshakeRefused(code, reason, by_peer=True)
            try:
                hello = _parse_hello(msg_type, value, peer_label)
                verify_hello(
                    hello, local, binding=binding, peer_side=peer_side, peer_label=peer_label, expected_key=expected_key
                )
                if check is not None:
                    check(hello)
            except HandshakeRefused as exc:
                log.warning("refusing %s: %s", peer_label, exc.reason)
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(_REFUSAL_SEND_TIMEOUT):
                        await _send(writer, disconnect_frame(exc.code, exc.reason))
                raise
            await _send(writer, accept_frame())
            msg_type, value = await _read(reader, timeout)
            if msg_type == MsgType.DISCONNECT:
                code, reason = parse_disconnect(value)
                raise HandshakeRefused(code, reason, by_peer=True)
            if msg_type != MsgType.ACCEPT:
                raise HandshakeError(f"{peer_label} sent message type {msg_type} before accepting the handshake")
            parse_accept(value)
            return hello
    except HandshakeRefused as exc:
        if exc.by_peer:
            log.warning("peer %s refused us: %s (%s)", peer_label, exc.reason, exc.code)
        raise
    except (TimeoutError, ReadTimeout) as exc:
        raise HandshakeTimeout(f"handshake with {peer_label} did not finish within {timeout} s") from exc
    except (PeerClosed, OSError) as exc:
        raise HandshakeError(f"connection to {peer_label} lost during the handshake: {exc}") from exc
    except HandshakeError:
        raise
    except P2PError as exc:  # MalformedFrame, FrameTooLarge, ReadTimeout
        raise HandshakeError(f"handshake with {peer_label} failed: {exc}") from exc
