"""The plaintext of a private model leaves the node that keeps its key only to a request signed by an owner or a
licensee, checked against the chain; the ciphertext stays public; decrypted copies are for their user only.

Against a real dev node, as users type it: Alice publishes `m.onnx --private --offer price=5`; then every other
way in is tried: no signature, HEAD, a Range, a directory's files, the CLI without a key, a stranger's key, a
replayed or re-aimed signature, one signed for another node, a licence to another version, a copy of the model
registered by Mallory under her own name (and named to the same releaser), the former owner after a transfer.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from aichain_node import Client
from aichain_node.terms import Offer
from core.keys import PrivateKey, address_hex, write_key_file
from core.read_request import sign_read
from node.bench.onnx_model import build_mlp
from tests.harness import CLI, NodeProcess
from tests.integration.support import fund
from vm.system import KEYS, LICENSING, MODELS

AIC = 10**9
CHAIN_ID = 7777


class Machine:
    """One user's machine: its own home, keystore, content keys and model cache, talking to the node."""

    def __init__(self, node: NodeProcess, root: Path, key: PrivateKey) -> None:
        self.node, self.key = node, key
        root.mkdir(parents=True)
        self.key_file = root / "me.pem"
        write_key_file(self.key_file, key, None)
        self.env = {
            **node.env,
            "HOME": str(root),
            "AICHAIN_RPC": node.url,
            "AICHAIN_CONTENT_KEYS": str(root / "keys"),
            "AICHAIN_MODEL_CACHE": str(root / "models"),
        }

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([CLI, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check:
            assert done.returncode == 0, f"`aichain-node {' '.join(args)}`:\n{done.stderr}"
        return done

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)


def http(
    node: NodeProcess,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(node.url + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def signed(
    key: PrivateKey,
    artifact: str,
    model: str,
    version: int,
    path: str,
    *,
    method: str = "GET",
    range_header: str = "",
    chain_id: int = CHAIN_ID,
    node: bytes | NodeProcess,
) -> dict[str, str]:
    """The headers of one read signed for `node` (a running node, or another node's key)."""
    audience = node if isinstance(node, bytes) else bytes.fromhex(node.rpc.call("node_status")["node_key"][2:])
    read = sign_read(
        key,
        chain_id,
        bytes.fromhex(artifact.removeprefix("sha256:")),
        model,
        version,
        method,
        path,
        range_header,
        audience=audience,
        timestamp_ms=int(time.time() * 1000),
    )
    return {"Authorization": read.header(), **({"Range": range_header} if range_header else {})}


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with NodeProcess(tmp_path_factory.mktemp("node"), block_time_ms=200) as process:
        yield process


def test_a_private_models_plaintext_only_for_signed_owners_and_licensees(node: NodeProcess, tmp_path: Path) -> None:
    alice, bob, mallory = (fund(node, 50 * AIC) for _ in range(3))
    a, b, m = (Machine(node, tmp_path / who, k) for who, k in (("alice", alice), ("bob", bob), ("mallory", mallory)))
    source = build_mlp(tmp_path / "m.onnx", seed=3)
    plaintext = source.read_bytes()
    published = a.cli_json(
        "model",
        "publish",
        str(source),
        "--name",
        "m",
        "--private",
        "--offer",
        "price=5",
        "--from",
        str(a.key_file),
        "--quiet",
    )
    artifact = published["artifact"]
    assert artifact == "sha256:" + hashlib.sha256(plaintext).hexdigest()
    path = f"/artifacts/{artifact}"

    # The reproducer: an unsigned GET used to answer the plaintext. Every unsigned way in is refused now.
    status, headers, body = http(node, path)
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("AichainRead")
    refusal = json.loads(body)
    assert refusal["private"] is True and f"{artifact} is private" in refusal["error"]
    assert "--from KEY" in refusal["error"] and "licence buy" in refusal["error"]
    assert http(node, path, method="HEAD")[0] == 401
    assert http(node, path, headers={"Range": "bytes=0-99"})[0] == 401
    status, _, stored = http(node, path + "/stored")  # the ciphertext stays public
    assert status == 200 and len(stored) == len(plaintext) + 16 and plaintext[:64] not in stored
    got = b.cli("artifact", "get", artifact, "-o", str(tmp_path / "x"), "--quiet", check=False)
    assert got.returncode == 1 and "HTTP 401" in got.stderr and "is private" in got.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.part").exists()

    # A stranger's signature proves nothing it may have.
    got = b.cli(
        "artifact", "get", artifact, "-o", str(tmp_path / "x"), "--from", str(b.key_file), "--quiet", check=False
    )
    assert got.returncode == 1 and "holds no valid licence" in got.stderr and "licence buy m@1" in got.stderr
    status, _, body = http(node, path, headers=signed(bob, artifact, "m", 1, path, node=node))
    assert status == 403 and f"{address_hex(bob.address)} holds no valid licence to m@1" in json.loads(body)["error"]

    # Bob buys; his signed reads are served, each once, for the request it was signed for.
    b.cli("licence", "buy", "m", "--from", str(b.key_file))
    out = tmp_path / "bob" / "copy.onnx"
    got = b.cli_json("artifact", "get", artifact, "-o", str(out), "--from", str(b.key_file), "--quiet")
    assert out.read_bytes() == plaintext and got["id"] == artifact and mode(out) == 0o600
    once = signed(bob, artifact, "m", 1, path, range_header="bytes=10-19", node=node)
    status, _, body = http(node, path, headers=once)
    assert status == 206 and body == plaintext[10:20]
    status, _, body = http(node, path, headers=once)  # replayed
    assert status == 401 and "used already" in json.loads(body)["error"]
    aimed = [
        signed(bob, artifact, "m", 1, path + "/stored", node=node),  # another path
        signed(bob, artifact, "m", 1, path, method="HEAD", node=node),  # another method
        signed(bob, artifact, "m", 1, path, chain_id=CHAIN_ID + 1, node=node),  # another chain
        signed(bob, "sha256:" + "ab" * 32, "m", 1, path, node=node),  # another artifact
        {**signed(bob, artifact, "m", 1, path, range_header="bytes=0-9", node=node), "Range": "bytes=0-"},  # a Range
    ]
    for headers in aimed:
        status, _, body = http(node, path, headers=headers)
        assert status == 401 and "does not verify" in json.loads(body)["error"], headers
    elsewhere_key = PrivateKey.generate().public_key  # another node's: a read sent there, relayed here
    status, _, body = http(node, path, headers=signed(bob, artifact, "m", 1, path, node=elsewhere_key))
    assert status == 403 and f"this signed read is for node 0x{elsewhere_key.hex()}" in json.loads(body)["error"]
    status, _, body = http(
        node, path, method="HEAD", headers=signed(bob, artifact, "m", 1, path, method="HEAD", node=node)
    )
    assert status == 200 and body == b""

    # A licence is for its version: m@2 (other bytes) gives nothing on m@1's artifact, nor on its own.
    a.cli(
        "model",
        "publish",
        str(build_mlp(tmp_path / "m2.onnx", seed=4)),
        "--name",
        "m",
        "--private",
        "--offer",
        "price=1",
        "--from",
        str(a.key_file),
        "--quiet",
    )
    with Client(node.url, mallory) as mal:
        mal.models.buy("m@2")
        status, _, body = http(node, path, headers=signed(mallory, artifact, "m", 2, path, node=node))
        assert status == 403 and "m@2 is sha256:" in json.loads(body)["error"]

        # Mallory registers her own model naming Alice's artifact (its id is public), names the node's releaser
        # to it and buys it from herself: she owns that copy, which unlocks nothing, and the node seals no key.
        releaser = published["releaser"]
        mal.send(
            MODELS, "register_model", "copycat", bytes.fromhex(artifact[7:]), "onnx", b"", [[mallory.address, 10_000]]
        )
        mal.send(KEYS, "set_releaser", "copycat", bytes.fromhex(releaser[2:]))
        mal.send(LICENSING, "make_offer", "copycat", 1, 0, 0, 0, 0, [], 0)
        mal.models.buy("copycat")
        status, _, body = http(node, path, headers=signed(mallory, artifact, "copycat", 1, path, node=node))
        assert status == 403 and "copycat@1 was published by" in json.loads(body)["error"]
    with Client(node.url, bob) as buyer:  # a later, honest sale is served: the releaser has looked at Mallory's
        buyer.models.buy("m@2")
        deadline = time.monotonic() + 30
        while not buyer.view(KEYS, "envelope_for", "m", 2, bob.address) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert buyer.view(KEYS, "envelope_for", "m", 2, bob.address), "the honest sale got no envelope"
        assert buyer.view(KEYS, "envelope_for", "copycat", 1, mallory.address) == b""
    got = m.cli(
        "artifact",
        "get",
        artifact,
        "-o",
        str(tmp_path / "y"),
        "--from",
        str(m.key_file),
        "--model",
        "copycat@1",
        "--quiet",
        check=False,
    )
    assert got.returncode == 1 and "HTTP 403" in got.stderr and not (tmp_path / "y").exists()

    # An owner on a machine that did not publish (no content key kept there) pulls with signed reads: 0600 in 0700.
    elsewhere = Machine(node, tmp_path / "alice-laptop", alice)
    pulled = elsewhere.cli_json("model", "pull", "m@1", "--from", str(elsewhere.key_file), "--quiet")
    copy = Path(pulled["path"])
    assert copy.read_bytes() == plaintext and pulled["encrypted"]
    assert mode(copy) == 0o600 and mode(copy.parent) == 0o700
    assert not list(copy.parent.glob("*.part*"))

    # Ownership moves to Carol: Alice's signature opens nothing any more.
    carol = fund(node, 10 * AIC)
    with Client(node.url, alice) as owner:
        owner.send(MODELS, "set_owners", "m", [[carol.address, 10_000]])
    status, _, body = http(node, path, headers=signed(alice, artifact, "m", 1, path, node=node))
    assert status == 403 and "does not own it" in json.loads(body)["error"]
    assert http(node, path, headers=signed(carol, artifact, "m", 1, path, node=node))[0] == 200
    reads = _private_reads(node)  # /metrics counts what was granted and refused
    assert reads["granted"] >= 2 and reads["refused"] >= 5, reads


def _private_reads(node: NodeProcess) -> dict[str, float]:
    with urllib.request.urlopen(node.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {}
    for outcome in ("granted", "refused"):
        prefix = f'aichain_private_reads_total{{outcome="{outcome}"}}'
        line = next(row for row in text.splitlines() if row.startswith(prefix))
        out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


def test_a_private_directorys_files_and_the_modes_of_every_decrypted_copy(node: NodeProcess, tmp_path: Path) -> None:
    alice, bob = fund(node, 50 * AIC), fund(node, 50 * AIC)
    a, b = Machine(node, tmp_path / "alice", alice), Machine(node, tmp_path / "bob", bob)
    model = build_mlp(tmp_path / "tuned", seed=5, hidden=64, external_data=True)
    published = a.cli_json(
        "model",
        "publish",
        str(model),
        "--name",
        "tuned",
        "--private",
        "--offer",
        "price=1",
        "--from",
        str(a.key_file),
        "--quiet",
    )
    artifact = published["artifact"]
    weights = f"/artifacts/{artifact}/files/weights.bin"
    assert http(node, weights)[0] == 401 and http(node, weights, method="HEAD")[0] == 401
    assert http(node, weights, headers=signed(bob, artifact, "tuned", 1, weights, node=node))[0] == 403
    b.cli("licence", "buy", "tuned", "--from", str(b.key_file))
    status, _, body = http(node, weights, headers=signed(bob, artifact, "tuned", 1, weights, node=node))
    assert status == 200 and body == (model / "weights.bin").read_bytes()

    carol = fund(node, 10 * AIC)  # a licence that runs out: served while it lasts, refused after
    with Client(node.url, alice) as owner:
        brief = owner.models.make_offer("tuned@1", Offer.parse("price=1,duration=2s"))
    with Client(node.url, carol) as licensee:
        licensee.models.buy("tuned@1", offer=brief)
        assert http(node, weights, headers=signed(carol, artifact, "tuned", 1, weights, node=node))[0] == 200
        time.sleep(2.5)
        status, _, body = http(node, weights, headers=signed(carol, artifact, "tuned", 1, weights, node=node))
        assert status == 403 and "holds no valid licence to tuned@1" in json.loads(body)["error"]

    out = tmp_path / "bob" / "out"
    b.cli("artifact", "get", artifact, "-o", str(out), "--from", str(b.key_file), "--quiet")
    for name in ("model.onnx", "weights.bin"):
        assert (out / name).read_bytes() == (model / name).read_bytes() and mode(out / name) == 0o600
    assert mode(out) == 0o700
    kept = a.cli_json("artifact", "get", artifact, "-o", str(tmp_path / "alice" / "mine"), "--quiet")  # key kept
    assert kept["decrypted_here"] and mode(tmp_path / "alice" / "mine" / "weights.bin") == 0o600

    # An artifact added encrypted but published as no model version: its plaintext is served to no one.
    secret = tmp_path / "notes.bin"
    secret.write_bytes(os.urandom(1000))
    added = a.cli_json(
        "artifact", "add", str(secret), "--encrypt", "--publisher", address_hex(alice.address), "--quiet"
    )
    path = f"/artifacts/{added['id']}"
    status, _, body = http(node, path, headers=signed(alice, added["id"], "tuned", 1, path, node=node))
    assert status == 403 and "tuned@1 is sha256:" in json.loads(body)["error"]
    got = b.cli("artifact", "get", added["id"], "-o", str(tmp_path / "z"), "--from", str(b.key_file), check=False)
    assert got.returncode == 1 and "no model version on chain names" in got.stderr
    mine = a.cli_json("artifact", "get", added["id"], "-o", str(tmp_path / "alice" / "notes"), "--quiet")
    assert mine["decrypted_here"] and (tmp_path / "alice" / "notes").read_bytes() == secret.read_bytes()
    bad = a.cli("artifact", "add", str(secret), "--encrypt", "--publisher", "0x12", check=False)
    assert bad.returncode == 1 and "not an address" in bad.stderr
    status, _, body = http_put(
        node,
        "/artifacts?encrypt=true",
        b"x",
        {"X-Artifact-Id": "sha256:" + hashlib.sha256(b"x").hexdigest(), "X-Content-Publisher": "alice"},
    )
    assert status == 400 and "X-Content-Publisher" in json.loads(body)["error"]


def test_a_licensees_pulled_copy_is_for_its_user_only(node: NodeProcess, tmp_path: Path) -> None:
    """The envelope path: the ciphertext from the node, decrypted on the licensee's machine, 0600 in 0700."""
    alice, bob = fund(node, 50 * AIC), fund(node, 50 * AIC)
    a, b = Machine(node, tmp_path / "alice", alice), Machine(node, tmp_path / "bob", bob)
    model = build_mlp(tmp_path / "tuned", seed=6, hidden=64, external_data=True)
    a.cli(
        "model",
        "publish",
        str(model),
        "--name",
        "modes",
        "--private",
        "--offer",
        "price=1",
        "--from",
        str(a.key_file),
        "--quiet",
    )
    b.cli("licence", "buy", "modes", "--from", str(b.key_file))
    pulled = Path(b.cli_json("model", "pull", "modes", "--from", str(b.key_file), "--quiet")["path"])
    assert (pulled / "weights.bin").read_bytes() == (model / "weights.bin").read_bytes()
    assert pulled.is_dir() and mode(pulled) == 0o700 and mode(pulled.parent) == 0o700
    assert {mode(f) for f in pulled.rglob("*") if f.is_file()} == {0o600}
    single = build_mlp(tmp_path / "one.onnx", seed=7)
    a.cli(
        "model",
        "publish",
        str(single),
        "--name",
        "modes-1",
        "--private",
        "--offer",
        "price=1",
        "--from",
        str(a.key_file),
        "--quiet",
    )
    b.cli("licence", "buy", "modes-1", "--from", str(b.key_file))
    out = tmp_path / "bob" / "chosen" / "one.onnx"
    out.parent.mkdir()
    b.cli("model", "pull", "modes-1", "-o", str(out), "--from", str(b.key_file), "--quiet")
    assert out.read_bytes() == single.read_bytes() and mode(out) == 0o600
    cached = Path(b.cli_json("model", "pull", "modes-1", "--from", str(b.key_file), "--quiet")["path"])
    assert mode(cached) == 0o600 and mode(cached.parent) == 0o700


def http_put(node: NodeProcess, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(node.url + path, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
