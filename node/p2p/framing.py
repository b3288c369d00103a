"""Length-prefixed frames: `length (4 bytes, big-endian) || type (1 byte) || payload`.

Rules:
- `length` counts the type byte and the payload, so it is at least 1. A frame whose
  `length` exceeds the maximum frame size is rejected from its header alone, before any of
  the body is read (`FrameTooLarge`); the stream cannot be resynchronised after that, so the
  connection ends.
- The payload is one canonical msgpack value without maps (`core.codec.decode`, which
  also rejects trailing bytes, floats and non-canonical encodings) holding at most
  `MAX_FRAME_VALUES` values (array elements, arrays included). A payload that fails is
  `MalformedFrame`; the frame boundary is still known, so the reader may go on. The value
  bound keeps decoding a frame within milliseconds: a 16 MiB frame of 16 million nils (a
  byte each) held the event loop for 1.8 s. Every message of the protocol needs far fewer (a
  batch of 2,000 transactions is about 2,000 values; blocks and chunks travel as byte strings).
- Every read has a timeout: `idle_timeout` for the next header (keepalive traffic
  guarantees one), `body_timeout` for the rest of a frame once its header arrived. A caller
  that enforces time limits another way (a peer's watchdog, cheaper than two timers per
  frame) passes None for both.
- Whether a type is known is the peer's business (it knows the registered handlers).
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from core.codec import Limits, Value, decode, encode
from core.errors import DecodeError
from node.p2p.errors import FrameTooLarge, MalformedFrame, PeerClosed, ReadTimeout

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
MAX_FRAME_VALUES = 65_536
HANDSHAKE_MAX_FRAME_SIZE = 4096
LENGTH = struct.Struct(">I")
HEADER_SIZE = LENGTH.size + 1


@dataclass(frozen=True, slots=True)
class RawFrame:
    """A frame as read from the wire, payload still encoded."""

    msg_type: int
    body: bytes

    @property
    def size(self) -> int:
        """Bytes this frame took on the wire, header included."""
        return HEADER_SIZE + len(self.body)


def limits_for(max_frame_size: int) -> Limits:
    """Decoding limits that let a single byte string fill a whole frame."""
    return Limits(max_bytes=max_frame_size, max_bin_len=max_frame_size)


def frame_from_body(msg_type: int, body: bytes) -> bytes:
    """A frame around an already canonical payload encoding."""
    if not 0 <= msg_type <= 255:
        raise ValueError(f"message type {msg_type} is not one byte")
    return LENGTH.pack(len(body) + 1) + bytes((msg_type,)) + body


def encode_frame(msg_type: int, payload: Value) -> bytes:
    """The frame carrying `payload` (canonically encoded) as message type `msg_type`."""
    return frame_from_body(msg_type, encode(payload))


def frame_type(frame: bytes) -> int:
    """The message type of an encoded frame."""
    return frame[LENGTH.size]


def decode_body(body: bytes, limits: Limits, max_values: int = MAX_FRAME_VALUES) -> Any:
    """Decode a frame payload; anything but canonical msgpack of at most `max_values` values is
    `MalformedFrame`."""
    if len(body) > max_values:  # each value takes a byte at least: a shorter body is within the bound
        _check_value_count(body, limits, max_values)
    try:
        return decode(body, limits=limits, allow_maps=False)
    except DecodeError as exc:
        raise MalformedFrame(f"malformed payload: {exc}") from exc


class _TooManyValues(Exception):
    pass


def _check_value_count(body: bytes, limits: Limits, max_values: int) -> None:
    """Raise `MalformedFrame` once the arrays of `body` hold more than `max_values` values. msgpack
    calls the hook for each array it completes, so unpacking stops at the bound, not at the end."""
    count = 0

    def hook(items: list[Any]) -> list[Any]:
        nonlocal count
        count += len(items) + 1
        if count > max_values:
            raise _TooManyValues
        return items

    try:
        msgpack.unpackb(
            body,
            raw=False,
            list_hook=hook,
            max_bin_len=limits.max_bin_len,
            max_str_len=limits.max_str_len,
            max_array_len=limits.max_array_len,
            max_map_len=0,
            max_ext_len=0,
        )
    except _TooManyValues:
        raise MalformedFrame(f"malformed payload: more than {max_values} values") from None
    except Exception:  # not ours to judge: `decode` says what else is wrong with it
        pass


async def read_frame(
    reader: asyncio.StreamReader,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    idle_timeout: float | None,
    body_timeout: float | None,
) -> RawFrame:
    """Read one frame. Raises `FrameTooLarge`, `MalformedFrame` (empty frame), `ReadTimeout`
    or `PeerClosed` (end of stream, reset, TLS error)."""
    if idle_timeout is None and body_timeout is None:
        return await _read_untimed(reader, max_frame_size)
    try:
        try:
            async with asyncio.timeout(idle_timeout):
                header = await reader.readexactly(LENGTH.size)
        except TimeoutError as exc:
            raise ReadTimeout(f"no frame within {idle_timeout} s") from exc
        (length,) = LENGTH.unpack(header)
        _check_length(length, max_frame_size)
        try:
            async with asyncio.timeout(body_timeout):
                data = await reader.readexactly(length)
        except TimeoutError as exc:
            raise ReadTimeout(f"frame body of {length} bytes not received within {body_timeout} s") from exc
    except asyncio.IncompleteReadError as exc:
        raise PeerClosed("connection closed by peer") from exc
    except OSError as exc:  # resets and TLS errors (ssl.SSLError is an OSError)
        raise PeerClosed(f"connection lost: {exc}") from exc
    return RawFrame(data[0], data[1:])


def _check_length(length: int, max_frame_size: int) -> None:
    if length > max_frame_size:
        raise FrameTooLarge(f"frame of {length} bytes announced, the maximum is {max_frame_size}")
    if length == 0:
        raise MalformedFrame("empty frame: no message type")


async def _read_untimed(reader: asyncio.StreamReader, max_frame_size: int) -> RawFrame:
    try:
        (length,) = LENGTH.unpack(await reader.readexactly(LENGTH.size))
        _check_length(length, max_frame_size)
        data = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise PeerClosed("connection closed by peer") from exc
    except OSError as exc:
        raise PeerClosed(f"connection lost: {exc}") from exc
    return RawFrame(data[0], data[1:])
