"""Node-to-node artifact transfer over loopback, beside the raw TLS loopback rate of the same run.

Two real `aichain-node` processes (a two-validator testnet on 127.0.0.1): the file is added to
the first over HTTP, then the second fetches it over P2P (`artifact_fetch`): every chunk
checked against the manifest on arrival, the plaintext re-hashed against the id, the chunks
fsynced and the manifest committed before it counts as done. The rate is bytes over the
fetch's own time (from asking the peers to the commit). Beside it: one TLS 1.3 connection
between two asyncio streams in one process, the ceiling of any transfer over our transport.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from aichain_node import Client
from node import testnet
from node.p2p.bench import stream_throughput

MB = 1_000_000


def _upload(rpc_url: str, path: Path) -> str:
    host, port = rpc_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    size = path.stat().st_size
    connection.putrequest("PUT", "/artifacts")
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            connection.send(block)
    answer = connection.getresponse()
    body = answer.read()
    if answer.status != 201:
        raise RuntimeError(f"upload failed: HTTP {answer.status}: {body[:200]!r}")
    return str(json.loads(body)["id"])


def measure_transfer(path: Path, size: int, tls_seconds: float = 2.0) -> dict[str, Any]:
    """Figures for `run_artifacts_bench(transfer=...)`: node-to-node MB/s beside TLS loopback MB/s."""
    tls_rate = asyncio.run(stream_throughput(tls_seconds, tls=True))  # MB/s
    with tempfile.TemporaryDirectory(prefix="aichain-bench-transfer-") as tmp:
        base = testnet.free_port_block(4)
        nodes = testnet.init_testnet(
            Path(tmp) / "net", 2, rpc_base_port=base, p2p_base_port=base + 2, block_time_ms=1000
        )
        try:
            for node in nodes:
                testnet.start_node(node)
            testnet.wait_ready(nodes)
            artifact = _upload(nodes[0].rpc_url, path)
            with Client(nodes[1].rpc_url, timeout=900) as fetcher:
                deadline = time.monotonic() + 30
                while fetcher.rpc("node_status")["peers"] < 1:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the two nodes did not connect")
                    time.sleep(0.1)
                fetcher.rpc("artifact_fetch", artifact, True, False, 600)
                status = fetcher.rpc("artifact_fetchStatus", artifact)
            if status["state"] != "done":
                raise RuntimeError(f"the fetch did not finish: {status}")
        finally:
            for node in nodes:
                testnet.stop_node(node)
    rate = status["bytes_fetched"] / status["seconds"] / MB
    return {
        "node-to-node transfer MB/s": {
            "value": rate,
            "unit": "MB/s",
            "limit": tls_rate,
            "limit_name": "TLS 1.3 loopback MB/s, one connection, same run",
            "target": ">= 200 MB/s, every chunk checked",
        },
        "transfer": f"{status['bytes_fetched']:,} bytes in {status['chunks']} chunks, {status['seconds']:.2f} s "
        "(asking peers, chunks checked on arrival, id re-hashed, fsync, commit)",
    }
