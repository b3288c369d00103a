"""Error types of the P2P layer, and the reason codes a Disconnect frame carries.

Rules: a `ProtocolViolation` is something a peer did wrong on the wire; it carries the score
penalty it costs the peer. A `HandshakeRefused` carries a stable `code` (one of `Reason`) and
a human `reason`; `by_peer` tells whether the other side refused us or we refused it.
"""

from __future__ import annotations

from enum import StrEnum

from core.errors import AichainError


class Reason(StrEnum):
    """Why a connection ended or was refused; sent as the code of a Disconnect frame."""

    WRONG_CHAIN = "wrong_chain"
    WRONG_GENESIS = "wrong_genesis"
    PROTOCOL_VERSION = "protocol_version"
    BAD_SIGNATURE = "bad_signature"
    SELF = "self"
    NOT_ALLOWED = "not_allowed"
    UNEXPECTED_KEY = "unexpected_key"
    BANNED = "banned"
    DUPLICATE = "duplicate"
    TOO_MANY_PEERS = "too_many_peers"
    MALFORMED = "malformed"
    PROTOCOL_VIOLATION = "protocol_violation"
    TIMEOUT = "timeout"
    PING_TIMEOUT = "ping_timeout"
    SLOW = "slow"
    SHUTDOWN = "shutdown"
    CONNECTION_LOST = "connection_lost"
    REQUESTED = "requested"


class P2PError(AichainError):
    """Base of every error raised by the P2P layer."""


class PeerClosed(P2PError):
    """The connection is closed (or closing); nothing more can be sent or read."""


class ReadTimeout(P2PError):
    """A peer did not deliver a frame (or the rest of one) in time."""


class SendQueueFull(P2PError):
    """A peer's bounded send queue stayed full: the peer reads too slowly and was dropped."""


class ProtocolViolation(P2PError):
    """A peer broke the wire protocol; `penalty` is subtracted from its score."""

    penalty: float = 25.0
    code: Reason = Reason.PROTOCOL_VIOLATION

    def __init__(self, message: str = "", *, penalty: float | None = None) -> None:
        super().__init__(message)
        if penalty is not None:
            self.penalty = penalty


class FrameTooLarge(ProtocolViolation):
    """A frame header claimed more than the maximum frame size. The stream cannot be
    resynchronised (the body is never read), so the peer is disconnected and banned."""

    penalty = 1_000_000.0


class MalformedFrame(ProtocolViolation):
    """A frame whose payload is not canonical msgpack, or not the shape its type requires."""

    code = Reason.MALFORMED


class UnknownMessageType(ProtocolViolation):
    """A frame of a type nobody registered a handler for."""

    penalty = 10.0


class UnsolicitedMessage(ProtocolViolation):
    """A response nobody asked for (a Pong without a Ping, Peers without GetPeers, ...)."""

    penalty = 10.0


class HandshakeError(P2PError):
    """The connection never became a peer."""


class HandshakeTimeout(HandshakeError):
    """TLS plus the Hello exchange did not finish within the handshake timeout."""


class HandshakeRefused(HandshakeError):
    """One side refused the other: `code` says why (stable), `reason` explains (human)."""

    def __init__(self, code: Reason | str, reason: str, *, by_peer: bool = False) -> None:
        who = "peer refused us" if by_peer else "refused peer"
        super().__init__(f"{who} ({code}): {reason}")
        self.code = str(code)
        self.reason = reason
        self.by_peer = by_peer
