"""The P2P layer's own message types and payloads; upper layers use types >= FIRST_APP_TYPE.

Every payload is a msgpack array whose first element is its tag, equal to the frame type:
  HELLO      see handshake.py
  ACCEPT     [1]                               the Hello was accepted
  DISCONNECT [2, code, reason]                 code: a `Reason` value; reason: text <= 512
  PING       [3, nonce]                        nonce: uint64
  PONG       [4, nonce]                        echoes the last Ping's nonce
  GET_PEERS  [5]
  PEERS      [6, [[node_key, ip, port], ...]]  at most MAX_PEERS_PER_MESSAGE entries
"""

from __future__ import annotations

import ipaddress
from enum import IntEnum
from typing import Any

from core.codec import Value, expect_bytes, expect_list, expect_str, expect_uint
from core.errors import DecodeError
from node.p2p.errors import MalformedFrame
from node.p2p.framing import encode_frame


class MsgType(IntEnum):
    HELLO = 0
    ACCEPT = 1
    DISCONNECT = 2
    PING = 3
    PONG = 4
    GET_PEERS = 5
    PEERS = 6


FIRST_APP_TYPE = 16
MAX_PEERS_PER_MESSAGE = 64
MAX_REASON_LEN = 512


def accept_frame() -> bytes:
    return encode_frame(MsgType.ACCEPT, [int(MsgType.ACCEPT)])


def disconnect_frame(code: str, reason: str) -> bytes:
    return encode_frame(MsgType.DISCONNECT, [int(MsgType.DISCONNECT), str(code)[:64], reason[:MAX_REASON_LEN]])


def ping_frame(nonce: int) -> bytes:
    return encode_frame(MsgType.PING, [int(MsgType.PING), nonce])


def pong_frame(nonce: int) -> bytes:
    return encode_frame(MsgType.PONG, [int(MsgType.PONG), nonce])


def get_peers_frame() -> bytes:
    return encode_frame(MsgType.GET_PEERS, [int(MsgType.GET_PEERS)])


def peers_frame(entries: list[tuple[bytes, str, int]]) -> bytes:
    items: list[Value] = [[key, host, port] for key, host, port in entries[:MAX_PEERS_PER_MESSAGE]]
    return encode_frame(MsgType.PEERS, [int(MsgType.PEERS), items])


def _malformed(what: str, exc: DecodeError) -> MalformedFrame:
    return MalformedFrame(f"{what}: {exc}")


def parse_accept(value: Any) -> None:
    try:
        expect_list(value, MsgType.ACCEPT, 1, "accept")
    except DecodeError as exc:
        raise _malformed("accept", exc) from exc


def parse_disconnect(value: Any) -> tuple[str, str]:
    try:
        _, code, reason = expect_list(value, MsgType.DISCONNECT, 3, "disconnect")
        return expect_str(code, "code", 64), expect_str(reason, "reason", MAX_REASON_LEN)
    except DecodeError as exc:
        raise _malformed("disconnect", exc) from exc


def parse_nonce(value: Any, msg_type: MsgType) -> int:
    try:
        _, nonce = expect_list(value, msg_type, 2, msg_type.name.lower())
        return expect_uint(nonce, "nonce")
    except DecodeError as exc:
        raise _malformed(msg_type.name.lower(), exc) from exc


def parse_get_peers(value: Any) -> None:
    try:
        expect_list(value, MsgType.GET_PEERS, 1, "get_peers")
    except DecodeError as exc:
        raise _malformed("get_peers", exc) from exc


def parse_peers(value: Any) -> list[tuple[bytes, str, int]]:
    """Entries of a Peers message; hosts must be IP literals (no DNS on a peer's word)."""
    try:
        _, items = expect_list(value, MsgType.PEERS, 2, "peers")
        if not isinstance(items, list) or len(items) > MAX_PEERS_PER_MESSAGE:
            raise DecodeError(f"expected a list of at most {MAX_PEERS_PER_MESSAGE} entries")
        out = []
        for item in items:
            if not isinstance(item, list) or len(item) != 3:
                raise DecodeError("an entry is [node_key, ip, port]")
            key = expect_bytes(item[0], "node key", 32)
            host = expect_str(item[1], "ip", 64)
            port = expect_uint(item[2], "port", 16)
            try:
                ipaddress.ip_address(host)
            except ValueError as exc:
                raise DecodeError(f"{host!r} is not an IP address") from exc
            if port == 0:
                raise DecodeError("port 0")
            out.append((key, host, port))
        return out
    except DecodeError as exc:
        raise _malformed("peers", exc) from exc
