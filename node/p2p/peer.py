"""One connected, authenticated peer: its reader loop, writer task and keepalive.

Rules:
- Four tasks per peer: reader, dispatcher, writer, keepalive. The reader charges each frame
  to the peer's rate limiter (a frame over the limit is dropped and costs a penalty),
  answers Ping/Pong/Disconnect itself, penalizes types nobody registered, and puts the rest
  on a bounded receive queue. A dispatcher decodes them (malformed: penalty) and runs
  their handlers one at a time in arrival order. Types in `urgent_types` (consensus) have
  their own receive queue and dispatcher, so they never wait behind a slow handler of bulk
  messages (transactions), and they overtake queued bulk frames on the send side. A dispatcher
  gives the event loop a turn every `DISPATCH_TURN_S` of handling (a batch of a thousand
  messages whose handlers never wait held it 219 ms). A handler that raises
  `ProtocolViolation` (or a core `DecodeError`) costs the peer that penalty. A slow
  handler therefore never delays Pings; only a full receive queue stops reading (TCP
  backpressure on the sender).
- Outgoing frames go through a bounded send queue drained by the writer task, so no sender
  waits for the network. `send` waits up to `send_timeout` for room, `offer` (broadcast)
  not at all; either way a peer whose queue stays full is disconnected as slow.
- Keepalive (pings, and a watchdog on arriving frames): `node.p2p.keepalive`.
- Closing sends a Disconnect [code, reason] after what is queued, then TLS close; whatever
  is not done within `close_timeout` is aborted. The first recorded reason is the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from core.codec import Value
from core.errors import DecodeError
from node.p2p.config import P2PConfig
from node.p2p.errors import (
    FrameTooLarge,
    MalformedFrame,
    PeerClosed,
    ProtocolViolation,
    Reason,
    SendQueueFull,
    UnknownMessageType,
    UnsolicitedMessage,
)
from node.p2p.framing import decode_body, encode_frame, frame_type, limits_for, read_frame
from node.p2p.handshake import Hello
from node.p2p.keepalive import Keepalive
from node.p2p.messages import (
    FIRST_APP_TYPE,
    MsgType,
    disconnect_frame,
    parse_disconnect,
    parse_nonce,
    pong_frame,
)
from node.p2p.metrics import P2PMetrics
from node.p2p.queues import FrameQueue
from node.p2p.scoring import RateLimiter, Score

log = logging.getLogger("node.p2p.peer")

RATE_LIMIT_PENALTY = 5.0
DISPATCH_TURN_S = 0.005  # a dispatcher gives the event loop a turn at least this often
SLOW_PEER_PENALTY = 20.0
Direction = Literal["inbound", "outbound"]
Handler = Callable[["Peer", Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A snapshot of one peer for status pages and upper layers."""

    node_key: bytes
    host: str
    port: int
    listen_port: int
    direction: Direction
    role: str
    head_height: int
    head_hash: bytes
    client_version: str
    score: float
    connected_at: float
    rtt: float | None


class Peer:
    """An authenticated connection. Created by `PeerManager`; upper layers get it in handlers."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        hello: Hello,
        *,
        direction: Direction,
        host: str,
        port: int,
        config: P2PConfig,
        metrics: P2PMetrics,
        handlers: Mapping[int, Handler],
        on_ban: Callable[[Peer, str], None],
    ) -> None:
        self._reader, self._writer = reader, writer
        self.hello = hello
        self.node_key: bytes = hello.node_public_key
        self.direction: Direction = direction
        self.host, self.port = host, port
        self.head_height, self.head_hash = hello.head_height, hello.head_hash
        self.connected_at = time.time()
        self.score = Score(config.ban_threshold, config.score_recovery_per_s)
        self.close_code: str | None = None
        self.close_reason = ""
        self.pex_requested = False  # used by the manager's peer exchange
        self._config, self._metrics, self._handlers, self._on_ban = config, metrics, handlers, on_ban
        self._limits = limits_for(config.max_frame_size)
        self._limiter = RateLimiter(
            config.rate_messages, config.rate_messages_burst, config.rate_bytes, config.rate_bytes_burst
        )
        urgent = config.urgent_types
        self._queue = FrameQueue(
            config.send_queue_frames, config.send_queue_bytes, (lambda f: frame_type(f) in urgent) if urgent else None
        )
        self._inbox = FrameQueue(config.recv_queue_frames, config.recv_queue_bytes)
        self._urgent_inbox = FrameQueue(config.recv_queue_frames, config.recv_queue_bytes)
        self._keepalive = Keepalive(config, self.offer, self.close, lambda: self.closing)
        self._done = asyncio.Event()
        self._abort_timer: asyncio.TimerHandle | None = None

    # --- public ---------------------------------------------------------------------------

    @property
    def id(self) -> bytes:
        return self.node_key

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """Where this peer accepts connections, if it says it does."""
        if self.direction == "outbound":
            return self.host, self.port
        return (self.host, self.hello.listen_port) if self.hello.listen_port else None

    @property
    def rtt(self) -> float | None:
        """Seconds the last ping took to be answered (None before the first)."""
        return self._keepalive.rtt

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    def info(self) -> PeerInfo:
        return PeerInfo(
            self.node_key,
            self.host,
            self.port,
            self.hello.listen_port,
            self.direction,
            self.hello.role,
            self.head_height,
            self.head_hash,
            self.hello.client_version,
            self.score.value,
            self.connected_at,
            self.rtt,
        )

    def set_head(self, height: int, head_hash: bytes) -> None:
        """Record the head this peer announced (upper layers call it on status messages)."""
        self.head_height, self.head_hash = height, head_hash

    async def send(self, msg_type: int, payload: Value) -> None:
        """Queue a message; waits up to `send_timeout` for room, else drops the peer as slow
        and raises `SendQueueFull`. Raises `PeerClosed` if the peer is closing."""
        await self.send_frame(encode_frame(msg_type, payload))

    async def send_frame(self, frame: bytes) -> None:
        self._check_size(frame)
        if not await self._queue.put(frame, self._config.send_timeout):
            self._drop_slow()
            raise SendQueueFull(f"send queue of peer {self} stayed full for {self._config.send_timeout} s")

    def offer(self, frame: bytes) -> bool:
        """Queue an encoded frame without waiting; a full queue drops the peer (False)."""
        if self._queue.closed:
            return False
        self._check_size(frame)
        if self._queue.try_put(frame):
            return True
        self._drop_slow()
        return False

    def penalize(self, amount: float, reason: str) -> None:
        """Lower the score; at or below the threshold the manager bans the peer."""
        self._metrics.penalties[reason.split(":")[0]] += 1
        if self.score.penalize(amount) and not self.closing:
            self._on_ban(self, reason)

    def close(self, code: str = Reason.REQUESTED, reason: str = "", *, by_peer: bool = False) -> None:
        """Begin closing: goodbye after the queued frames, abort after `close_timeout`."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason = str(code), reason or str(code)
        if not by_peer and not self._queue.closed:
            self._queue.try_put(disconnect_frame(self.close_code, self.close_reason), force=True)
        self._queue.close()
        for inbox in (self._inbox, self._urgent_inbox):
            inbox.clear()  # a closing peer's pending messages are not handled
            inbox.close()
        self._abort_timer = asyncio.get_running_loop().call_later(self._config.close_timeout, self._abort)

    async def wait_closed(self) -> None:
        await self._done.wait()

    def __str__(self) -> str:
        return f"{self.node_key.hex()[:12]}@{self.host}:{self.port}"

    # --- internals ------------------------------------------------------------------------

    def _check_size(self, frame: bytes) -> None:
        if len(frame) - 4 > self._config.max_frame_size:
            raise ValueError(f"a frame of {len(frame)} bytes exceeds the maximum of {self._config.max_frame_size}")

    def _drop_slow(self) -> None:
        if not self.closing:
            self._metrics.penalties["slow"] += 1
            self.score.penalize(SLOW_PEER_PENALTY)
            log.info("dropping slow peer %s: send queue full", self)
            self.close(Reason.SLOW, "send queue full: the peer reads too slowly")
            self._abort()

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.transport.abort()

    async def run(self) -> None:
        """Serve the connection until it ends; returns after everything is closed."""
        writer_task = asyncio.create_task(self._write_loop(), name=f"p2p-write-{self}")
        ping_task = asyncio.create_task(self._keepalive.pings(), name=f"p2p-ping-{self}")
        dispatch_task = asyncio.gather(
            asyncio.create_task(self._dispatch_loop(self._inbox), name=f"p2p-dispatch-{self}"),
            asyncio.create_task(self._dispatch_loop(self._urgent_inbox), name=f"p2p-dispatch-urgent-{self}"),
        )
        watchdog_task = asyncio.create_task(self._keepalive.watchdog(), name=f"p2p-watchdog-{self}")
        try:
            await self._read_loop()
        except PeerClosed as exc:
            self.close(Reason.CONNECTION_LOST, str(exc), by_peer=True)
        except FrameTooLarge as exc:
            self.penalize(exc.penalty, f"oversized: {exc}")
            self.close(Reason.PROTOCOL_VIOLATION, str(exc))
        except asyncio.CancelledError:
            self.close(Reason.SHUTDOWN, "node shutting down")
            raise
        except Exception as exc:  # a bug here must end this connection, not the node
            log.exception("peer %s: unexpected error", self)
            self.close(Reason.PROTOCOL_VIOLATION, f"internal error: {exc}")
        finally:
            self.close(Reason.CONNECTION_LOST, "read loop ended")
            ping_task.cancel()
            watchdog_task.cancel()
            try:
                async with asyncio.timeout(self._config.close_timeout + 0.5):
                    await asyncio.gather(writer_task, dispatch_task)
            except (TimeoutError, asyncio.CancelledError):
                writer_task.cancel()
                dispatch_task.cancel()
            finally:
                self._abort()
                await asyncio.gather(writer_task, ping_task, dispatch_task, watchdog_task, return_exceptions=True)
                if self._abort_timer is not None:
                    self._abort_timer.cancel()
                self._done.set()

    async def _read_loop(self) -> None:
        max_size = self._config.max_frame_size
        while not self.closing:
            try:
                frame = await read_frame(self._reader, max_frame_size=max_size, idle_timeout=None, body_timeout=None)
            except MalformedFrame as exc:  # an empty frame: the stream is still in step
                self._violation(exc)
                continue
            self._keepalive.frame_arrived()
            self._metrics.bytes_in += frame.size
            self._metrics.messages_in[frame.msg_type] += 1
            size = 0 if frame.msg_type in self._config.requested_types else frame.size
            if not self._limiter.allow(size):
                self._metrics.dropped_rate_limited += 1
                self.penalize(RATE_LIMIT_PENALTY, "rate_limited: over the message or byte rate")
                continue
            try:
                if frame.msg_type >= FIRST_APP_TYPE:
                    if frame.msg_type not in self._handlers:
                        raise UnknownMessageType(f"no handler for message type {frame.msg_type}")
                    item = bytes((frame.msg_type,)) + frame.body
                    inbox = self._urgent_inbox if frame.msg_type in self._config.urgent_types else self._inbox
                    if not inbox.try_put(item):
                        with self._keepalive.reader_blocked():
                            await inbox.put(item, None)
                else:
                    self._control(frame.msg_type, frame.body)
            except ProtocolViolation as exc:
                self._violation(exc)

    def _violation(self, exc: ProtocolViolation | DecodeError) -> None:
        penalty = exc.penalty if isinstance(exc, ProtocolViolation) else MalformedFrame.penalty
        name = type(exc).__name__ if isinstance(exc, ProtocolViolation) else "MalformedFrame"
        log.debug("peer %s: %s", self, exc)
        self.penalize(penalty, f"{name}: {exc}")

    def _control(self, msg_type: int, body: bytes) -> None:
        """The P2P layer's own messages (types below FIRST_APP_TYPE)."""
        if msg_type == MsgType.PING:
            nonce = parse_nonce(decode_body(body, self._limits), MsgType.PING)
            self.offer(pong_frame(nonce))
        elif msg_type == MsgType.PONG:
            self._keepalive.pong(parse_nonce(decode_body(body, self._limits), MsgType.PONG))
        elif msg_type == MsgType.DISCONNECT:
            code, reason = parse_disconnect(decode_body(body, self._limits))
            log.info("peer %s disconnected: %s (%s)", self, reason, code)
            self.close(code, reason, by_peer=True)
        elif msg_type in (MsgType.HELLO, MsgType.ACCEPT):
            raise UnsolicitedMessage("handshake message after the handshake")
        elif msg_type in self._handlers:  # peer exchange: small, and paced by the rate limit
            self._inbox.try_put(bytes((msg_type,)) + body, force=True)
        else:
            raise UnknownMessageType(f"no handler for message type {msg_type}")

    async def _dispatch_loop(self, inbox: FrameQueue) -> None:
        turn_began = time.monotonic()
        while batch := await inbox.get_batch():
            for item in batch:
                if self.closing:
                    return
                if time.monotonic() - turn_began > DISPATCH_TURN_S:
                    await asyncio.sleep(0)  # handlers that never wait would keep the loop for the whole batch
                    turn_began = time.monotonic()
                msg_type, handler = item[0], self._handlers[item[0]]
                try:
                    await handler(self, decode_body(item[1:], self._limits))
                except (ProtocolViolation, DecodeError) as exc:
                    self._violation(exc)
                except (PeerClosed, SendQueueFull) as exc:  # an answer to a peer dropped meanwhile (slow, banned)
                    if self.close_code is not None:  # closed while the handler ran
                        return
                    log.warning("handler for message type %d on a message from %s: %s", msg_type, self, exc)
                except Exception:
                    log.exception("handler for message type %d failed on a message from %s", msg_type, self)

    async def _write_loop(self) -> None:
        writer, metrics = self._writer, self._metrics
        try:
            while batch := await self._queue.get_batch():
                writer.writelines(batch)
                for frame in batch:
                    metrics.bytes_out += len(frame)
                    metrics.messages_out[frame_type(frame)] += 1
                async with asyncio.timeout(self._config.write_timeout):
                    await writer.drain()
        except TimeoutError:
            self.close(Reason.SLOW, f"peer did not read for {self._config.write_timeout} s")
        except OSError as exc:
            self.close(Reason.CONNECTION_LOST, str(exc), by_peer=True)
        finally:
            writer.close()
            try:
                async with asyncio.timeout(self._config.close_timeout):
                    await writer.wait_closed()
            except (TimeoutError, OSError):
                self._abort()
            except asyncio.CancelledError:
                self._abort()
                raise
