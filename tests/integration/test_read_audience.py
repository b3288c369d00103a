"""A signed read names the node it is for: the node that was sent it cannot relay it to the node that keeps the key.

Two real nodes: A (a validator, where Alice publishes a private model: it keeps the content key) and B (a full
node, run by Mallory, which fetched only the ciphertext). Bob holds a licence and points his CLI and SDK at B,
through the HTTP front Mallory runs before it (a reverse proxy that keeps every `Authorization` header it
forwards). B has no key and answers 409, but Mallory now holds Bob's signed reads, unspent, within their minute:
she replays them to A. A must refuse them (403, "for node <B>"), and serve the same request signed for A. A front
that lies about which node stands behind it (it reports A's key) is caught by a client pinned to B's key.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from aichain_node import Client, WrongNode
from aichain_node.terms import Offer
from core.errors import ArtifactError
from core.keys import PrivateKey, read_key_file, write_key_file
from core.read_request import sign_read
from node.bench.onnx_model import build_mlp
from node.devnet import DEV_ACCOUNT_KEY
from tests.harness import CLI, NodeProcess
from tests.integration.testnet_support import Testnet, wait_for

AIC = 10**9
A, B = 0, 1  # A keeps the content key; B is Mallory's node


class Front:
    """An HTTP front to a node, run by its operator: forwards every request as it came and keeps the
    `Authorization` header of each artifact request. With `claim`, it answers `node_status` with that node key
    instead of the real one (an operator lying about which node stands behind it)."""

    def __init__(self, target: str, claim: str | None = None) -> None:
        self.target = urlparse(target)
        self.claim = claim
        self.seen: list[dict[str, str]] = []  # {"method", "path", "authorization", "range"} per artifact request
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                front.forward(self)

            do_HEAD = do_GET
            do_POST = do_GET
            do_PUT = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Front:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
        if request.path.startswith("/artifacts/") and "Authorization" in request.headers:
            self.seen.append(
                {
                    "method": request.command,
                    "path": request.path,
                    "authorization": request.headers["Authorization"],
                    "range": request.headers.get("Range", ""),
                }
            )
        upstream = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=60)
        try:
            upstream.request(request.command, request.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            status, answer_headers = answer.status, answer.getheaders()
        finally:
            upstream.close()
        if self.claim is not None and body and b'"node_status"' in body:
            reply = json.loads(data)
            reply["result"]["node_key"] = self.claim
            data = json.dumps(reply).encode()
        request.send_response(status)
        for name, value in answer_headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)


def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Bob's CLI, on his machine (its own home and content keys)."""
    env = {**os.environ, "HOME": str(home), "AICHAIN_CONTENT_KEYS": str(home / "keys")}
    env.pop("AICHAIN_RPC", None)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_read_sent_to_one_node_cannot_be_relayed_to_the_node_that_keeps_the_key(tmp_path: Path) -> None:
    alice, bob = PrivateKey.generate(), PrivateKey.generate()
    source = build_mlp(tmp_path / "m.onnx", seed=41)
    plaintext = source.read_bytes()
    with Testnet(tmp_path / "net", validators=1, full_nodes=1, start=False) as net:
        net.start(A, B)
        url = [node.rpc_url for node in net.nodes]
        key = [read_key_file(node.dir / "node_key.pem", None).public_key for node in net.nodes]
        assert [net.call(i, "node_status")["node_key"] for i in (A, B)] == ["0x" + k.hex() for k in key]
        wait_for(lambda: net.call(B, "node_status")["peers"] >= 1, 30, "B to connect to A")
        with Client(url[A], DEV_ACCOUNT_KEY) as dev:
            for sent in [dev.transfer(k.address, 50 * AIC, wait=False) for k in (alice, bob)]:
                dev.wait_ok(sent["tx_hash"])
        with Client(url[A], alice) as owner:
            artifact = owner.models.publish(source, "m", private=True, offer=Offer.parse("price=1")).artifact
        with Client(url[A], bob) as buyer:
            buyer.models.buy("m")
        path = f"/artifacts/{artifact}"
        home = tmp_path / "bob"
        home.mkdir()
        write_key_file(home / "bob.pem", bob, None)
        wait_for(lambda: net.height(B) >= net.height(A), 30, "B to sync Bob's licence")

        with Front(url[B]) as front:  # Mallory's front to B
            # Bob's CLI, pointed at B: it signs its read for B, and B (no content key) answers 409.
            got = cli(
                home,
                "artifact",
                "get",
                artifact,
                "-o",
                str(home / "copy.onnx"),
                "--from",
                str(home / "bob.pem"),
                "--rpc",
                front.url,
                "--quiet",
            )
            assert got.returncode == 1 and "has not got its content key" in got.stderr, got.stderr
            # The SDK too: a download as a licensee, pointed at B.
            with Client(front.url, bob) as sdk, pytest.raises(ArtifactError, match="has not got its content key"):
                sdk.download(artifact, home / "sdk.onnx", read_as=("m", 1))
            assert len(front.seen) == 2 and all(unquote(s["path"]) == path for s in front.seen)

        # Mallory replays both to A at once, well within their minute and with their nonces unspent at A.
        for seen in front.seen:
            status, body = get(url[A] + seen["path"], {"Authorization": seen["authorization"]})
            assert status == 403, (status, body[:80])  # it used to be 200, with the plaintext
            assert (
                f"this signed read is for node 0x{key[B].hex()}, and this is node 0x{key[A].hex()}"
                in (json.loads(body)["error"])
            )
        assert not (home / "copy.onnx").exists() and not (home / "sdk.onnx").exists()

        # The same request signed for A is served by A (what differs is only the node it names).
        read = sign_read(
            bob,
            net.chain_id,
            bytes.fromhex(artifact[7:]),
            "m",
            1,
            "GET",
            path,
            audience=key[A],
            timestamp_ms=int(time.time() * 1000),
        )
        status, body = get(url[A] + path, {"Authorization": read.header()})
        assert status == 200 and hashlib.sha256(body).hexdigest() == artifact[7:]

        # A node behind a reverse proxy: the front to A reports A's key, reads are signed for A, and served.
        with Front(url[A]) as proxy:
            got = cli(
                home,
                "artifact",
                "get",
                artifact,
                "-o",
                str(home / "copy.onnx"),
                "--from",
                str(home / "bob.pem"),
                "--rpc",
                proxy.url,
                "--quiet",
            )
            assert got.returncode == 0 and (home / "copy.onnx").read_bytes() == plaintext, got.stderr
            with Client(proxy.url, bob) as sdk:
                sdk.download(artifact, home / "sdk.onnx", read_as=("m", 1))
            assert (home / "sdk.onnx").read_bytes() == plaintext

        # Mallory's front lies: it says B is A. A client pinned to B's key signs nothing for it.
        with Front(url[B], claim="0x" + key[A].hex()) as liar:
            got = cli(
                home,
                "artifact",
                "get",
                artifact,
                "-o",
                str(home / "pinned.onnx"),
                "--from",
                str(home / "bob.pem"),
                "--rpc",
                liar.url,
                "--node-key",
                "0x" + key[B].hex(),
                "--quiet",
            )
            assert got.returncode == 1 and f"reports node key 0x{key[A].hex()}, not 0x{key[B].hex()}" in got.stderr
            with Client(liar.url, bob, node_key=key[B]) as sdk, pytest.raises(WrongNode, match="not 0x"):
                sdk.download(artifact, home / "pinned.onnx", read_as=("m", 1))
            laptop = tmp_path / "alice-laptop"  # the owner pulls where she kept no content key: signed reads
            laptop.mkdir()
            write_key_file(laptop / "alice.pem", alice, None)
            got = cli(
                laptop,
                "model",
                "pull",
                "m@1",
                "--from",
                str(laptop / "alice.pem"),
                "--rpc",
                liar.url,
                "--node-key",
                "0x" + key[B].hex(),
                "--quiet",
            )
            assert got.returncode == 1 and f"reports node key 0x{key[A].hex()}, not 0x{key[B].hex()}" in got.stderr
            assert liar.seen == []  # nothing signed was sent


def test_a_node_without_p2p_has_a_node_key_and_serves_reads_signed_for_it(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, block_time_ms=200)
    node.env["AICHAIN_P2P_ENABLED"] = "false"
    with node:
        status = node.rpc.call("node_status")
        assert status["p2p_port"] is None  # no network ...
        mine = read_key_file(node.datadir / "node_key.pem", None).public_key
        assert status["node_key"] == "0x" + mine.hex()  # ... but a node key, reported
        source = build_mlp(tmp_path / "m.onnx", seed=42)
        with Client(node.url, DEV_ACCOUNT_KEY) as owner:
            artifact = owner.models.publish(source, "solo", private=True, offer=Offer.parse("price=1")).artifact
            assert owner.node_key() == mine
            owner.download(artifact, tmp_path / "copy.onnx", read_as=("solo", 1))
        assert (tmp_path / "copy.onnx").read_bytes() == source.read_bytes()
        with Client(node.url, DEV_ACCOUNT_KEY, node_key=b"\x01" * 32) as pinned, pytest.raises(WrongNode):
            pinned.download(artifact, tmp_path / "pinned.onnx", read_as=("solo", 1))
        with pytest.raises(ValueError, match="32 bytes"):
            Client(node.url, DEV_ACCOUNT_KEY, node_key=b"\x01" * 20)
