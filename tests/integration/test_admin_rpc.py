"""Admin methods and uploads on a running node whose RPC is open to the network (`rpc.addr = 0.0.0.0`): refused
to a client on another address without the node's admin token, served with it and from loopback, while
reading stays open to all (docs/rpc.md, "Admin methods").

A client on another machine is played by this machine's own non-loopback address: a connection to it has
that address as its TCP peer, as a remote client's would be."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from aichain_node import AdminRefused, Client
from core.units import UNIT as AIC
from node.bench.onnx_model import build_mlp
from tests.harness import NodeProcess
from tests.integration.support import fund, key_file, metric, post, request

TOKEN = "b7e1c0d2a9f84e3c6a5b1d0e9f8c7b6a"
ADMIN_METHODS = [
    "artifact_remove",
    "artifact_gc",
    "artifact_pin",
    "artifact_unpin",
    "artifact_fetch",
    "artifact_verify",
]


def this_machines_address() -> str | None:
    """An address of this machine that is not loopback (the one it would reach the network from), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # no packet is sent: this only picks the source address of the route
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


FALLBACK_ADDRESS = "10.254.254.1"  # put on a veth of this machine when it has no other address
ADDRESS = this_machines_address()


@pytest.fixture(scope="module", autouse=True)
def non_loopback_address() -> Iterator[str]:
    """This machine's own non-loopback address; on a machine without one (a CI box with no route),
    one made for the test on a veth (root, as CI runs), so the node sees a caller that is not
    loopback. The test never skips."""
    global ADDRESS
    if ADDRESS is not None:
        yield ADDRESS
        return
    if os.geteuid() != 0:
        pytest.fail("this machine has no non-loopback address and the test is not root to make one (ip link)")
    link = ["ip", "link", "add", "aichainadm0", "type", "veth", "peer", "name", "aichainadm1"]
    subprocess.run(link, check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{FALLBACK_ADDRESS}/32", "dev", "aichainadm0"], check=True)
        subprocess.run(["ip", "link", "set", "aichainadm0", "up"], check=True)
        ADDRESS = FALLBACK_ADDRESS
        yield ADDRESS
    finally:
        ADDRESS = None
        subprocess.run(["ip", "link", "del", "aichainadm0"], check=False)


def open_node(root: Path, *, from_loopback: bool = True) -> NodeProcess:
    token_file = root / "admin-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    node = NodeProcess(root, block_time_ms=200, extra=["--rpc-addr", "0.0.0.0"])
    node.env["AICHAIN_RPC_ADMIN_TOKEN_FILE"] = str(token_file)
    node.env["AICHAIN_RPC_ADMIN_FROM_LOOPBACK"] = "true" if from_loopback else "false"
    return node


@pytest.fixture(scope="module")
def open_rpc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with open_node(tmp_path_factory.mktemp("open")) as node:
        yield node


def remote(node: NodeProcess) -> str:
    return f"http://{ADDRESS}:{node.port}"


def call(url: str, method: str, *params: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One JSON-RPC request with extra headers; the whole response object."""
    host = urlparse(url)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    try:
        body = json.dumps(request(method, *params))
        connection.request("POST", "/", body, {"Content-Type": "application/json", **(headers or {})})
        answer = connection.getresponse()
        assert answer.status == 200
        response: dict[str, Any] = json.loads(answer.read())
        return response
    finally:
        connection.close()


def put(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    host = urlparse(url)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    try:
        connection.request("PUT", "/artifacts", data, headers or {})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def params_of(method: str, artifact: str) -> list[Any]:
    return [] if method == "artifact_gc" else [artifact]


def test_without_the_token_a_remote_client_administers_nothing(open_rpc: NodeProcess) -> None:
    data = random.Random(1).randbytes(300_000)
    status, added = put(open_rpc.url, data)  # from loopback: served as before
    assert status == 201
    artifact, url = added["id"], remote(open_rpc)
    open_rpc.rpc.call("artifact_unpin", artifact)  # so that a gc would remove it, had it been served
    spoofed = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}
    for headers in ({}, spoofed, bearer("not-the-token-0123456789")):
        for method in ADMIN_METHODS:
            error = call(url, method, *params_of(method, artifact), headers=headers)["error"]
            assert error["code"] == -32040, (method, error)
            assert error["message"].startswith(f"{method} administers this node and is refused")
            assert "admin_token_file" in error["message"]
        status, refused = put(url, b"some bytes", headers)
        assert status == 403 and "admin_token_file" in refused["error"]
    info = open_rpc.rpc.call("artifact_info", artifact)
    assert info["pinned"] is False and info["size"] == len(data)  # still there, unpinned as left
    assert call(url, "artifact_list")["result"] == [{**added, "pinned": False}]
    for method, params in [("node_status", []), ("chain_head", []), ("artifact_info", [artifact])]:
        assert "result" in call(url, method, *params), method
    host = urlparse(url)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    connection.request("GET", f"/artifacts/{artifact}")
    download = connection.getresponse()
    assert download.status == 200 and download.read() == data
    connection.close()
    # Refusals show in /metrics: 3 kinds of request x 6 admin methods, and the 3 uploads.
    assert metric(open_rpc.url, "aichain_rpc_errors_total", code="-32040") >= 3 * len(ADMIN_METHODS)
    assert metric(open_rpc.url, "aichain_artifact_uploads_refused_total", reason="admin") >= 3
    # The answer says what to do, and the SDK raises it as its type.
    with Client(url) as client, pytest.raises(AdminRefused, match="from the node's own machine"):
        client.rpc("artifact_remove", artifact)
    with Client(url) as client, pytest.raises(AdminRefused, match="PUT /artifacts"):
        client.upload(b"more bytes")


def test_with_the_token_a_remote_client_administers_the_node(open_rpc: NodeProcess, tmp_path: Path) -> None:
    url = remote(open_rpc)
    data = random.Random(2).randbytes(200_000)
    with Client(url, admin_token=TOKEN) as client:
        artifact = client.upload(data, pin=False)["id"]
        assert client.rpc("artifact_pin", artifact) is True and client.rpc("artifact_info", artifact)["pinned"]
        assert client.rpc("artifact_verify", artifact)["ok"] is True
        assert client.rpc("artifact_unpin", artifact) is True
        assert set(client.rpc("artifact_gc")) == {"artifacts_removed", "chunks_removed", "bytes_freed"}
        assert artifact not in {a["id"] for a in client.rpc("artifact_list")}  # collected, unpinned
        again = call(url, "artifact_fetch", artifact, headers=bearer())  # served (the dev node has no peers)
        assert again.get("error", {}).get("code") != -32040 and "result" in again
    # The CLI: refused without the token file, served with it (flag or environment).
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    kept = put(open_rpc.url, random.Random(3).randbytes(1000))[1]["id"]
    env_free = {**open_rpc.env, "AICHAIN_RPC": url}
    env_free.pop("AICHAIN_ADMIN_TOKEN_FILE", None)
    open_rpc.env = env_free
    refused = open_rpc.cli("artifact", "rm", kept, "--rpc", url, check=False)
    assert refused.returncode != 0 and "--admin-token-file" in refused.stderr and "-32040" in refused.stderr
    added = open_rpc.cli("artifact", "add", str(token_file), "--rpc", url, "--admin-token-file", str(token_file))
    assert added.stdout.strip().startswith("sha256:")
    open_rpc.cli("artifact", "rm", kept, "--rpc", url, "--admin-token-file", str(token_file))
    assert kept not in {a["id"] for a in open_rpc.rpc.call("artifact_list")}
    open_rpc.env = {**env_free, "AICHAIN_ADMIN_TOKEN_FILE": str(token_file)}
    assert open_rpc.cli_json("artifact", "gc", "--rpc", url)["artifacts_removed"] >= 0

    # `model publish` stores the bytes on the node (an upload): refused without the token, served with it.
    open_rpc.env = {**env_free, "AICHAIN_MODEL_CACHE": str(tmp_path / "cache")}
    owner = key_file(tmp_path, fund(open_rpc, 10 * AIC), "owner")
    source = build_mlp(tmp_path / "net.onnx", seed=5)
    name = f"remote-{os.getpid()}"
    publish = ("model", "publish", str(source), "--name", name, "--from", owner, "--rpc", url, "--quiet")
    refused = open_rpc.cli(*publish, check=False)
    assert refused.returncode != 0 and "PUT /artifacts" in refused.stderr and "--admin-token-file" in refused.stderr
    published = open_rpc.cli_json(*publish, "--admin-token-file", str(token_file))
    assert published["version"] == 1
    pulled = open_rpc.cli_json("model", "pull", name, "--rpc", url, "--admin-token-file", str(token_file), "--quiet")
    assert Path(pulled["path"]).read_bytes() == source.read_bytes()


def test_behind_a_local_proxy_loopback_is_no_admin(tmp_path: Path) -> None:
    with open_node(tmp_path, from_loopback=False) as node:
        refused = call(node.url, "artifact_gc")["error"]
        assert refused["code"] == -32040 and "admin_from_loopback = false" in refused["message"]
        assert put(node.url, b"bytes")[0] == 403
        assert "result" in call(node.url, "artifact_gc", headers=bearer())
        assert put(node.url, b"bytes", bearer())[0] == 201
        assert "result" in call(node.url, "artifact_list")


def test_a_node_will_not_start_with_a_token_file_others_can_read(tmp_path: Path) -> None:
    node = open_node(tmp_path)
    (tmp_path / "admin-token").chmod(0o644)
    with pytest.raises(RuntimeError, match=r"mode 0644.*chmod 600"):
        node.start()
    os.remove(tmp_path / "admin-token")
    with pytest.raises(RuntimeError, match="no such file"):
        node.start()


def test_loopback_administers_the_node_by_default(open_rpc: NodeProcess) -> None:
    assert post(open_rpc.url, request("artifact_gc")).json()["result"]["artifacts_removed"] >= 0
