"""Artifacts fetched between real nodes over P2P: in parallel from several peers, a lying peer penalised,
a fetch killed -9 resumed after restart, a damaged chunk repaired from a peer."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

from tests import faults
from tests.harness import Rpc
from tests.integration import support
from tests.integration.testnet_support import CLI, Testnet, metric, wait_for

MiB = 1024 * 1024


def configure(net: Testnet, index: int, **settings: Any) -> None:
    """Add an [artifacts] table to a node's node.toml (before it starts)."""
    lines = [f"{key} = {str(value).lower() if isinstance(value, bool) else value}" for key, value in settings.items()]
    path = net.nodes[index].dir / "node.toml"
    path.write_text(path.read_text() + "\n[artifacts]\n" + "\n".join(lines) + "\n")


def add(net: Testnet, index: int, path: Path) -> str:
    import json
    import subprocess

    out = subprocess.run(
        [CLI, "artifact", "add", str(path), "--quiet", "--json", "--rpc", net.nodes[index].rpc_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return str(json.loads(out.stdout)["id"])


def fetched(rpc: Rpc, artifact: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = rpc.call("artifact_fetchStatus", artifact)
        assert status["state"] != "failed", status
        return status if status["state"] == "done" else None

    return wait_for(done, timeout, f"the fetch of {artifact}")


def peers_connected(net: Testnet, index: int, count: int) -> None:
    wait_for(lambda: net.call(index, "node_status")["peers"] >= count, 30, f"node {index} to have {count} peers")


def penalties(rpc_url: str, reason: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(rpc_url + "/metrics", timeout=10).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aichain_p2p_penalties") and f'reason="{reason}"' in line
    )


def test_a_fetch_takes_chunks_from_several_peers_and_a_lying_peer_is_penalised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults.enable(monkeypatch)
    data = random.Random(3).randbytes(24 * MiB + 17)
    source = tmp_path / "model.bin"
    source.write_bytes(data)
    with Testnet(tmp_path / "net", validators=3, full_nodes=1, start=False) as net:
        for i in range(4):
            configure(net, i, chunk_size=MiB)
        faults.set_faults(net.nodes[3].dir, corrupt_chunks=True)
        net.start(0, 1, 2, 3)
        artifact = add(net, 0, source)
        assert add(net, 3, source) == artifact  # the liar holds it too, and serves it with flipped bits
        for i in range(4):
            peers_connected(net, i, 3)
        net.rpc(1).call("artifact_fetch", artifact, True, False, 60)
        first = fetched(net.rpc(1), artifact)
        assert set(first["from_peers"]) and all(n for n in first["from_peers"].values())
        net.rpc(2).call("artifact_fetch", artifact)
        status = fetched(net.rpc(2), artifact)
        honest = {net.call(0, "node_status")["node_key"], net.call(1, "node_status")["node_key"]}
        sources = status["from_peers"]
        assert set(sources) == honest and all(n > 0 for n in sources.values()), status  # both, in parallel
        assert sum(sources.values()) == 25
        assert penalties(net.nodes[2].rpc_url, "bad chunk") >= 1  # the liar was caught by C...
        assert metric(net.nodes[2].rpc_url, "aichain_artifact_bad_chunks_total") >= 1
        assert metric(net.nodes[2].rpc_url, "aichain_artifact_chunks_fetched_total") == 25
        assert metric(net.nodes[2].rpc_url, "aichain_artifact_bytes") >= len(data)
        assert penalties(net.nodes[1].rpc_url, "bad chunk") >= 1  # ...and by B before
        import urllib.request

        copy = urllib.request.urlopen(f"{net.nodes[2].rpc_url}/artifacts/{artifact}", timeout=60).read()
        assert hashlib.sha256(copy).digest() == hashlib.sha256(data).digest()
        assert net.call(2, "artifact_verify", artifact)["ok"] is True


def test_a_fetch_killed_9_resumes_after_restart_and_a_damaged_chunk_is_repaired(tmp_path: Path) -> None:
    data = random.Random(4).randbytes(40 * MiB)
    source = tmp_path / "dataset.bin"
    source.write_bytes(data)
    with Testnet(tmp_path / "net", validators=2, full_nodes=1, start=False) as net:
        configure(net, 0, chunk_size=MiB, serve_mb_s_per_peer=8)  # 40 MiB take ~5 s: time to kill
        net.start(0, 1, 2)
        artifact = add(net, 0, source)
        peers_connected(net, 2, 2)
        net.rpc(2).call("artifact_fetch", artifact)
        wait_for(lambda: net.rpc(2).call("artifact_fetchStatus", artifact)["chunks_done"] >= 8, 30, "some chunks")
        net.kill(2)
        net.start(2)
        assert net.call(2, "artifact_list") == []  # nothing partial is visible
        peers_connected(net, 2, 2)
        resumed = wait_for(lambda: _status(net.rpc(2), artifact), 30, "the fetch to resume by itself")
        resumed = fetched(net.rpc(2), artifact, timeout=90)
        assert 0 < resumed["bytes_fetched"] < len(data), resumed  # only what was missing
        assert resumed["bytes_per_s"] < 12e6, resumed  # node 0 sends each peer at most 8 MB/s
        assert net.call(2, "artifact_verify", artifact)["ok"] is True

        info = net.call(2, "artifact_info", artifact)
        chunk = info["chunk_ids"][5][2:]
        chunk_file = net.nodes[2].dir / "data" / "artifacts" / "chunks" / chunk[:2] / chunk
        if not chunk_file.exists():
            chunk_file = next((net.nodes[2].dir).rglob(chunk))
        chunk_file.write_bytes(b"\x00" * MiB)
        report = net.call(2, "artifact_verify", artifact, True)  # repair from a peer
        assert report["bad_chunks"] == [5] and report["repaired"] == [5], report
        assert net.call(2, "artifact_verify", artifact)["ok"] is True


def _status(rpc: Rpc, artifact: str) -> dict[str, Any] | None:
    try:
        return rpc.call("artifact_fetchStatus", artifact)
    except Exception:
        return None


def test_the_cli_gets_through_the_node_from_its_peers_and_repairs(tmp_path: Path) -> None:
    import subprocess

    data = random.Random(6).randbytes(3 * MiB + 1)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    with Testnet(tmp_path / "net", validators=2, start=False) as net:
        configure(net, 0, chunk_size=MiB)
        net.start(0, 1)
        artifact = add(net, 0, source)
        peers_connected(net, 1, 1)
        copy = tmp_path / "copy.bin"
        rpc = ["--rpc", net.nodes[1].rpc_url]
        subprocess.run([CLI, "artifact", "get", artifact, "-o", str(copy), "--quiet", *rpc], check=True, timeout=120)
        assert copy.read_bytes() == data  # node 1 fetched it from node 0, then served it
        chunk = net.call(1, "artifact_info", artifact)["chunk_ids"][2][2:]
        next(net.nodes[1].dir.rglob(chunk)).write_bytes(b"\x01" * MiB)
        damaged = subprocess.run([CLI, "artifact", "verify", artifact, *rpc], capture_output=True, text=True)
        assert damaged.returncode == 1 and "DAMAGED" in damaged.stdout
        repaired = subprocess.run(
            [CLI, "artifact", "verify", artifact, "--repair", *rpc], capture_output=True, text=True, timeout=60
        )
        assert repaired.returncode == 0 and "repaired chunks [2]" in repaired.stdout, repaired.stdout + repaired.stderr
        # an encrypted artifact travels as ciphertext: a node without its content key stores and checks
        # the chunks, but cannot read it
        secret = tmp_path / "secret.bin"
        secret.write_bytes(data[: 2 * MiB])
        out = subprocess.run(
            [CLI, "artifact", "add", str(secret), "--encrypt", "--quiet", "--json", "--rpc", net.nodes[0].rpc_url],
            capture_output=True,
            text=True,
            check=True,
        )
        import json

        sealed = json.loads(out.stdout)["id"]
        net.rpc(1).call("artifact_fetch", sealed, True, False, 60)
        assert fetched(net.rpc(1), sealed)["chunks"] == 2
        assert net.call(1, "artifact_verify", sealed)["ok"] is True
        elsewhere = {**os.environ, "AICHAIN_CONTENT_KEYS": str(tmp_path / "no-keys")}  # another machine
        refused = subprocess.run(
            [CLI, "artifact", "get", sealed, "-o", str(tmp_path / "x"), "--quiet", *rpc],
            capture_output=True,
            text=True,
            env=elsewhere,
        )
        assert refused.returncode == 1 and "content key" in refused.stderr
        # the machine that added it kept the content key: it decrypts node 1's ciphertext itself
        subprocess.run(
            [CLI, "artifact", "get", sealed, "-o", str(tmp_path / "mine"), "--quiet", *rpc], check=True, timeout=120
        )
        assert (tmp_path / "mine").read_bytes() == data[: 2 * MiB] and (tmp_path / "mine").stat().st_mode & 0o077 == 0


def test_a_damaged_chunk_found_while_serving_is_fetched_again_from_peers(tmp_path: Path) -> None:
    """A download from a node whose copy of a chunk is damaged gets the whole artifact: the node fetches
    that chunk again from a peer holding it and goes on. With no peer to ask, the body ends short."""
    import subprocess
    import urllib.request

    data = random.Random(12).randbytes(4 * MiB + 7)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    with Testnet(tmp_path / "net", validators=2, start=False) as net:
        configure(net, 0, chunk_size=MiB)
        net.start(0, 1)
        artifact = add(net, 0, source)
        peers_connected(net, 1, 1)
        net.rpc(1).call("artifact_fetch", artifact)
        fetched(net.rpc(1), artifact)
        chunk_ids = [c[2:] for c in net.call(1, "artifact_info", artifact)["chunk_ids"]]
        url = net.nodes[1].rpc_url

        def damage(index: int) -> None:
            next(net.nodes[1].dir.rglob(chunk_ids[index])).write_bytes(b"\x01" * MiB)

        # The plaintext route (`artifact get`), with a damaged chunk in the middle.
        damage(2)
        copy = tmp_path / "copy.bin"
        got = subprocess.run(
            [CLI, "artifact", "get", artifact, "-o", str(copy), "--quiet", "--rpc", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert copy.read_bytes() == data
        # The stored route (what `model pull` reads), with the first chunk damaged.
        damage(0)
        with urllib.request.urlopen(f"{url}/artifacts/{artifact}/stored", timeout=60) as response:
            assert response.read() == data
        assert support.metric(url, "aichain_artifact_chunks_healed_total", outcome="healed") == 2
        assert net.call(1, "artifact_verify", artifact)["ok"] is True  # the healed copies stay

        # With no peer holding it, the body ends short and nothing wrong is presented as whole.
        net.kill(0)
        damage(3)
        short = subprocess.run(
            [CLI, "artifact", "get", artifact, "-o", str(tmp_path / "short.bin"), "--quiet", "--rpc", url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert short.returncode == 1 and "nothing was kept" in short.stderr and short.stderr.count("\n") == 1
        assert not (tmp_path / "short.bin").exists()
        assert support.metric(url, "aichain_artifact_chunks_healed_total", outcome="failed") == 1


def test_a_fetch_can_be_read_while_it_is_running(tmp_path: Path) -> None:
    """`/stored?follow=true` streams the chunks as they land: the whole body, before the fetch is done."""
    import urllib.request

    data = random.Random(9).randbytes(12 * MiB + 5)
    source = tmp_path / "slow.bin"
    source.write_bytes(data)
    with Testnet(tmp_path / "net", validators=2, start=False) as net:
        configure(net, 0, chunk_size=MiB, serve_mb_s_per_peer=4)  # ~3 s for the fetch: time to follow it
        configure(net, 1, chunk_size=MiB)
        net.start(0, 1)
        artifact = add(net, 0, source)
        peers_connected(net, 1, 1)
        rpc = net.rpc(1)
        rpc.call("artifact_fetch", artifact)
        status = wait_for(
            lambda: (s := rpc.call("artifact_fetchStatus", artifact)) and "manifest" in s and s,
            30,
            "the fetch to find the manifest",
        )
        assert status["state"] == "fetching" and status["manifest"]["chunks"] == 13
        with urllib.request.urlopen(
            f"{net.nodes[1].rpc_url}/artifacts/{artifact}/stored?follow=true", timeout=60
        ) as answer:
            first = answer.read(MiB)
            assert rpc.call("artifact_fetchStatus", artifact)["state"] == "fetching"  # still under way
            body = first + answer.read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()  # not encrypted: stored = plaintext
        assert fetched(rpc, artifact)["state"] == "done"
        # Without follow, an artifact not stored yet is a 404, as before.
        missing = "sha256:" + "00" * 32
        try:
            urllib.request.urlopen(f"{net.nodes[1].rpc_url}/artifacts/{missing}/stored?follow=true", timeout=10)
            raise AssertionError("an unknown artifact was served")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
