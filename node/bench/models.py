"""`aichain-node bench models`: pulling a private model from two peers, and what `model run` adds.

The run, on 127.0.0.1, with real `aichain-node` processes (a three-validator testnet):

1. An ONNX model of about SIZE MB is built (a two-layer perceptron with external data: a
   `model.onnx` graph and a `weights.bin`), published *private* on node A with a free offer:
   stored encrypted, its content key kept by A, which is named the key releaser.
2. Node B fetches the ciphertext from A (not timed), so two peers hold it.
3. A buyer on node C buys a licence, A posts the buyer's envelope (waited for, not timed).
4. **pull** (timed): the buyer's `models.pull` resolves the version on chain, has C fetch every
   chunk from A and B over P2P (each checked on arrival, fsynced, committed) while C streams
   the chunks that have landed to the buyer, who decrypts them with the key from the envelope,
   writes the files and checks the directory id against the chain before naming them. MB/s is the model's
   size over that whole time; beside it, one TLS 1.3 loopback connection measured in the same
   run (every byte crosses at least one such connection) and single-thread SHA-256 (every
   byte is hashed on the way).
5. **run overhead**: once the model is local and verified, `models.run` (resolve the version
   on chain, check the verified stamp and the licence, feed, run, both digests) against a
   plain `onnxruntime.InferenceSession.run` on the same file and input, interleaved, medians.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.keys import PrivateKey
from core.system_addresses import KEYS
from core.units import UNIT
from node import testnet
from node.bench.onnx_model import build_mlp, hidden_for_size
from node.bench.report import Report
from node.devnet import DEV_ACCOUNT_KEY
from node.p2p.bench import stream_throughput

MB = 1_000_000
NAME = "bench-model"
INPUTS, OUTPUTS = 64, 16


def sha256_mb_per_s(size: int = 256 * MB) -> float:
    data = os.urandom(size)
    started = time.perf_counter()
    hashlib.sha256(data).digest()
    return size / (time.perf_counter() - started) / MB


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_models_bench(size_mb: int = 500, runs: int = 30, batch: int = 8, datadir: Path | None = None) -> Report:
    report = Report(f"aichain-node bench models ({size_mb} MB private model, 3 nodes)")
    tls_rate = asyncio.run(stream_throughput(2.0, tls=True))
    sha_rate = sha256_mb_per_s()
    with tempfile.TemporaryDirectory(prefix="aichain-bench-models-", dir=datadir) as tmp:
        root = Path(tmp)
        model = build_mlp(
            root / "model",
            inputs=INPUTS,
            outputs=OUTPUTS,
            seed=7,
            external_data=True,
            hidden=hidden_for_size(size_mb * MB, INPUTS, OUTPUTS),
        )
        size = _dir_size(model)
        base = testnet.free_port_block(6)
        nodes = testnet.init_testnet(
            root / "net", 3, rpc_base_port=base, p2p_base_port=base + 3, block_time_ms=200, empty_block_interval_ms=200
        )
        try:
            for node in nodes:
                testnet.start_node(node)
            testnet.wait_ready(nodes)
            figures = asyncio.run(_lifecycle([n.rpc_url for n in nodes], model, runs, batch, root))
        finally:
            for node in nodes:
                testnet.stop_node(node)
    pull_s = figures["pull_s"]
    report.add(
        "pull + decrypt + verify, 2 peers",
        size / pull_s / MB,
        "MB/s",
        "TLS 1.3 loopback, one connection",
        tls_rate,
        ">= 100 MB/s",
    )
    report.add("  node C's fetch from A and B", size / figures["fetch_s"] / MB, "MB/s", "TLS 1.3 loopback", tls_rate)
    report.add("SHA-256, one thread (every byte is hashed)", sha_rate, "MB/s")
    report.add(
        "model run, median",
        figures["sdk_ms"],
        "ms",
        "plain onnxruntime session, median",
        figures["plain_ms"],
        "<= 1.10x",
    )
    report.notes.update(
        {
            "model": f"{size:,} bytes (model.onnx + weights.bin), batch {batch} x {INPUTS} float32",
            "fetched from": ", ".join(f"{peer[:12]}…: {n} chunks" for peer, n in figures["from_peers"].items()),
            "pull": f"{pull_s:.2f} s in all; node C's fetch {figures['fetch_s']:.2f} s, streamed to the buyer as it "
            f"went (first bytes read after {figures['first_byte_s']:.2f} s)",
            "run overhead": f"{figures['sdk_ms'] - figures['plain_ms']:+.2f} ms a run "
            f"({figures['sdk_ms'] / figures['plain_ms'] - 1:+.1%}), {runs} runs each, interleaved",
            "outputs": "equal to the plain session's" if figures["same_outputs"] else "DIFFER from the plain session's",
        }
    )
    if not figures["same_outputs"]:
        raise RuntimeError("models.run gave other outputs than onnxruntime on the same model and input")
    return report


async def _lifecycle(urls: list[str], model: Path, runs: int, batch: int, root: Path) -> dict[str, Any]:
    """Publish, fetch, buy, pull and run; the owner's content key and the buyer's cache stay under `root`."""
    from aichain_node import AsyncClient, Offer

    buyer_key = PrivateKey.generate()
    async with (
        AsyncClient(urls[0], DEV_ACCOUNT_KEY, content_key_dir=root / "keys") as owner,
        AsyncClient(urls[2], buyer_key, model_cache_dir=root / "cache") as buyer,
    ):
        await owner.transfer(buyer_key.address, 10 * UNIT)
        published = await owner.models.publish(model, NAME, private=True, offer=Offer(price=0))
        async with AsyncClient(urls[1], timeout=900) as fetcher:
            await fetcher.rpc("artifact_fetch", published.artifact, True, False, 600)
        await _connected(buyer, 2)
        await buyer.models.buy(NAME)
        while not await buyer.view(KEYS, "envelope_for", NAME, published.version, buyer_key.address):
            await asyncio.sleep(0.1)

        reading_from: list[float] = []  # when the first bytes were read back from node C: the fetch is done

        def reading(n: int) -> None:
            if not reading_from:
                reading_from.append(time.perf_counter())

        pull_started = time.perf_counter()
        pulled = await buyer.models.pull(NAME, progress=reading)
        pull_s = time.perf_counter() - pull_started
        status = await buyer.rpc("artifact_fetchStatus", published.artifact)

        x = np.random.default_rng(1).standard_normal((batch, INPUTS), dtype=np.float32)
        plain = await asyncio.to_thread(_plain_session, pulled.path / "model.onnx")
        expected = plain.run(None, {"x": x})[0]
        first = await buyer.models.run(NAME, x)  # warm: the session is loaded once and kept
        plain_times, sdk_times = [], []
        result = first
        for _ in range(runs):
            started = time.perf_counter()
            await asyncio.to_thread(plain.run, None, {"x": x})
            plain_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = await buyer.models.run(NAME, x)
            sdk_times.append(time.perf_counter() - started)
    same = bool(np.array_equal(first.outputs["y"], expected) and np.array_equal(result.outputs["y"], expected))
    return {
        "pull_s": pull_s,
        "fetch_s": float(status["seconds"]),
        "first_byte_s": reading_from[0] - pull_started,
        "from_peers": status["from_peers"],
        "plain_ms": statistics.median(plain_times) * 1000,
        "sdk_ms": statistics.median(sdk_times) * 1000,
        "same_outputs": same,
    }


def _plain_session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


async def _connected(client: Any, peers: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (await client.rpc("node_status"))["peers"] < peers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the node did not reach {peers} peers")
        await asyncio.sleep(0.1)


__all__ = ["run_models_bench"]
