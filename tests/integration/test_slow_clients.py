"""Slow or idle clients cannot starve the others (issue 18, finding 9): eight uploads trickling a byte a
second leave downloads and /metrics prompt, get a 503 when the upload slots are full, and are cut once
below the minimum rate; a hundred idle connections to the P2P port do not keep a peer out. Real
sockets against a real node."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from core.keys import PrivateKey
from node.p2p import P2PConfig, PeerManager
from tests.harness import NodeProcess
from tests.node_health import tracebacks

GRACE_S = 3.0  # the node's upload_grace_s here: a trickling upload is cut after it


@pytest.fixture
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    running = NodeProcess(tmp_path_factory.mktemp("slow"), block_time_ms=200)
    running.env["AICHAIN_ARTIFACTS_UPLOAD_GRACE_S"] = str(GRACE_S)
    with running:
        yield running


class Trickle:
    """A PUT /artifacts that announces 100 kB and sends one byte a second, on a thread of its own."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"PUT /artifacts HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        self.sock.settimeout(0.05)
        self.answer = b""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                self.sock.sendall(b"x")
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not self.stop.is_set():
                try:
                    data = self.sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self.answer += data

    def status(self) -> int | None:
        head = self.answer.split(b"\r\n", 1)[0].split()
        return int(head[1]) if len(head) > 1 else None

    def close(self) -> None:
        self.stop.set()
        self.thread.join(3)
        self.sock.close()


def timed_get(node: NodeProcess, path: str, timeout: float) -> tuple[int, bytes, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read(), time.monotonic() - started
    finally:
        connection.close()


def put(node: NodeProcess, data: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    try:
        connection.request("PUT", "/artifacts", body=data)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_eight_trickling_uploads_stall_neither_downloads_nor_metrics(node: NodeProcess) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB, three chunks
    status, body = put(node, data)
    assert status == 201, body
    path = "/artifacts/" + json.loads(body)["id"]
    trickles = [Trickle(node.port) for _ in range(8)]
    try:
        time.sleep(1.0)  # every trickle has its request in and a byte or so sent
        status, got, download_s = timed_get(node, path, timeout=20)
        assert status == 200 and got == data
        status, metrics, metrics_s = timed_get(node, "/metrics", timeout=20)
        assert status == 200 and b"aichain_event_loop_lag_seconds" in metrics
        assert download_s < 3.0 and metrics_s < 1.0, (download_s, metrics_s)
        refused = [t for t in trickles if t.status() == 503]
        assert len(refused) == 4, [t.answer[:60] for t in trickles]  # four upload slots; the rest told to retry
        assert all(b"Retry-After: 5" in t.answer for t in refused)
        time.sleep(GRACE_S + 1.5)  # past the grace time the four in the slots are far below 16 KiB/s
        statuses = sorted(t.status() or 0 for t in trickles)
        assert statuses == [408] * 4 + [503] * 4, [t.answer[:200] for t in trickles]
        assert all(b"bytes/s" in t.answer for t in trickles if t.status() == 408)
    finally:
        for trickle in trickles:
            trickle.close()
    status, body = put(node, b"an honest upload after the slow ones were cut")
    assert status == 201, body
    metrics = timed_get(node, "/metrics", timeout=10)[1].decode()
    assert 'aichain_artifact_uploads_refused_total{reason="busy"} 4.0' in metrics
    assert 'aichain_artifact_uploads_refused_total{reason="too_slow"} 4.0' in metrics
    assert "aichain_artifact_uploads 0.0" in metrics
    assert not tracebacks(node.log_path.read_text())


async def test_a_hundred_idle_connections_to_the_p2p_port_do_not_keep_a_peer_out(node: NodeProcess) -> None:
    status = node.rpc.call("node_status")
    config = P2PConfig(
        chain_id=status["chain_id"],
        genesis_hash=bytes.fromhex(status["genesis_hash"][2:]),
        listen=False,
        handshake_timeout=5.0,
        close_timeout=0.3,
    )
    idle = [await asyncio.open_connection("127.0.0.1", node.p2p_port) for _ in range(100)]
    manager = PeerManager(config, PrivateKey.generate())
    await manager.start()
    try:
        await asyncio.sleep(0.2)
        took = []
        for _ in range(3):  # and again, each time behind a fresh wave
            started = time.monotonic()
            peer = await manager.connect("127.0.0.1", node.p2p_port)
            took.append(time.monotonic() - started)
            assert peer.node_key.hex() == status["node_key"][2:]
            peer.close("shutdown", "test done with this connection")
            idle += [await asyncio.open_connection("127.0.0.1", node.p2p_port) for _ in range(64)]
            await asyncio.sleep(0.2)
        assert max(took) < 1.5, took
    finally:
        await manager.stop()
        for _, writer in idle:
            writer.transport.abort()
    metrics = timed_get(node, "/metrics", timeout=10)[1].decode()
    assert 'aichain_p2p_refused_total{reason="pending_evicted"}' in metrics
