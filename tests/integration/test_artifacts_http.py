"""Artifacts on a running node: streamed uploads and downloads over HTTP, Range, digests, the artifact_ RPC."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import random
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aichain_node import NodeError
from core.errors import ArtifactErased
from tests.harness import NodeProcess


def request(
    node: NodeProcess, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    url = urlparse(node.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def upload(node: NodeProcess, data: bytes, **headers: str) -> dict[str, Any]:
    status, _, body = request(node, "PUT", "/artifacts", data, headers)
    assert status == 201, body
    return json.loads(body)


def test_upload_download_ranges_and_digests(dev_node: NodeProcess) -> None:
    data = random.Random(5).randbytes(9 * 1024 * 1024 + 123)  # three 4 MiB chunks, the last short
    digest = hashlib.sha256(data).digest()
    summary = upload(dev_node, data)
    assert summary["id"] == "sha256:" + digest.hex() and summary["size"] == len(data) and summary["chunks"] == 3
    path = f"/artifacts/{summary['id']}"
    status, headers, body = request(dev_node, "GET", path)
    assert status == 200 and body == data
    assert headers["content-length"] == str(len(data)) and headers["etag"] == f'"{summary["id"]}"'
    assert headers["repr-digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    ranges = [
        ("bytes=0-0", 0, 1),
        ("bytes=4194300-4194400", 4194300, 4194401),
        ("bytes=-10", len(data) - 10, len(data)),
        ("bytes=9437000-", 9437000, len(data)),
    ]
    for asked, start, stop in ranges:
        status, headers, body = request(dev_node, "GET", path, headers={"Range": asked})
        assert status == 206 and body == data[start:stop], asked
        assert headers["content-range"] == f"bytes {start}-{stop - 1}/{len(data)}"
    assert request(dev_node, "GET", path, headers={"Range": f"bytes={len(data)}-"})[0] == 416
    for ignored in ("bytes=0-1,5-6", "items=0-5"):  # ranges this server does not do: the whole body
        status, _, body = request(dev_node, "GET", path, headers={"Range": ignored})
        assert status == 200 and body == data, ignored
    status, headers, body = request(dev_node, "HEAD", path)
    assert status == 200 and body == b"" and headers["content-length"] == str(len(data))
    assert request(dev_node, "GET", "/artifacts/sha256:" + "00" * 32)[0] == 404
    assert request(dev_node, "GET", "/artifacts/nonsense")[0] == 400


def test_an_announced_id_that_does_not_match_keeps_nothing(dev_node: NodeProcess) -> None:
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    status, _, body = request(dev_node, "PUT", "/artifacts", b"the real bytes", {"X-Artifact-Id": wrong})
    assert status == 422 and b"hashes to" in body
    assert dev_node.rpc.call("artifact_list") == []
    right = "sha256:" + hashlib.sha256(b"the real bytes").hexdigest()
    assert upload(dev_node, b"the real bytes", **{"X-Artifact-Id": right})["id"] == right
    assert [a["pinned"] for a in dev_node.rpc.call("artifact_list")] == [True]


def test_a_directory_uploads_as_a_tar_and_serves_its_files(dev_node: NodeProcess) -> None:
    files = {"model.onnx": b"\x08\x01" * 3000, "tokenizer/vocab.txt": b"a\nb\nc\n", "README.md": b"# card"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            archive.addfile(info, io.BytesIO(files[name]))
    status, _, body = request(dev_node, "PUT", "/artifacts", buffer.getvalue(), {"Content-Type": "application/x-tar"})
    assert status == 201, body
    summary = json.loads(body)
    assert summary["kind"] == "directory"
    assert [(f["path"], f["sha256"]) for f in summary["files"]] == [
        (name, hashlib.sha256(files[name]).hexdigest()) for name in sorted(files)
    ]
    for name, content in files.items():
        status, headers, body = request(dev_node, "GET", f"/artifacts/{summary['id']}/files/{name}")
        assert status == 200 and body == content
        assert headers["etag"] == f'"sha256:{hashlib.sha256(content).hexdigest()}"'
    assert request(dev_node, "GET", f"/artifacts/{summary['id']}")[0] == 409  # a directory: ask for its files


def test_verify_finds_a_damaged_chunk_and_downloads_stop_short(dev_node: NodeProcess) -> None:
    data = random.Random(9).randbytes(5 * 1024 * 1024)
    summary = upload(dev_node, data)
    info = dev_node.rpc.call("artifact_info", summary["id"])
    assert dev_node.rpc.call("artifact_verify", summary["id"])["ok"] is True
    chunk = info["chunk_ids"][1][2:]
    chunk_file = Path(dev_node.datadir) / "artifacts" / "chunks" / chunk[:2] / chunk
    raw = bytearray(chunk_file.read_bytes())
    raw[7] ^= 1
    chunk_file.write_bytes(bytes(raw))
    report = dev_node.rpc.call("artifact_verify", summary["id"])
    assert report["ok"] is False and report["bad_chunks"] == [1] and report["digest_ok"] is False
    try:
        body = request(dev_node, "GET", f"/artifacts/{summary['id']}")[2]
        assert len(body) < len(data)  # never the whole length with wrong bytes in it
    except http.client.IncompleteRead:
        pass
    assert dev_node.rpc.call("artifact_remove", summary["id"], True)["bytes_freed"] == len(data)
    try:
        dev_node.rpc.call("artifact_info", summary["id"])
        raise AssertionError("an erased artifact has no info")
    except ArtifactErased as exc:
        assert exc.rpc_code == -32113
    assert request(dev_node, "GET", f"/artifacts/{summary['id']}")[0] == 410


def test_pins_and_gc_over_rpc(dev_node: NodeProcess) -> None:
    kept = upload(dev_node, b"kept")["id"]
    cached = upload(dev_node, b"cached" * 1000)["id"]
    assert dev_node.rpc.call("artifact_unpin", cached) is True
    gc = dev_node.rpc.call("artifact_gc")
    assert gc["artifacts_removed"] == 1 and gc["bytes_freed"] == 6000
    assert [a["id"] for a in dev_node.rpc.call("artifact_list")] == [kept]
    try:
        dev_node.rpc.call("artifact_pin", "sha256:zz")
        raise AssertionError("a malformed id must be refused")
    except NodeError as exc:  # invalid params: a JSON-RPC code, not a node error type
        assert exc.rpc_code == -32602


def test_encrypting_needs_the_announced_id_and_checks_it(dev_node: NodeProcess) -> None:
    status, _, body = request(dev_node, "PUT", "/artifacts?encrypt=true", b"secret")
    assert status == 400 and b"X-Artifact-Id" in body
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    status, _, body = request(dev_node, "PUT", "/artifacts?encrypt=true", b"secret", {"X-Artifact-Id": wrong})
    assert status == 422 and b"as announced" in body
    right = "sha256:" + hashlib.sha256(b"secret").hexdigest()
    status, _, body = request(dev_node, "PUT", "/artifacts?encrypt=true", b"secret", {"X-Artifact-Id": right})
    assert status == 201 and json.loads(body)["encrypted"] is True
    status, _, body = request(dev_node, "GET", f"/artifacts/{right}")  # no signature: no plaintext
    assert status == 401 and "is private" in json.loads(body)["error"] and b"secret" not in body
    stored = request(dev_node, "GET", f"/artifacts/{right}/stored")[2]  # the ciphertext is public
    assert len(stored) == len(b"secret") + 16 and b"secret" not in stored
    assert [a["id"] for a in dev_node.rpc.call("artifact_list")] == [right]


def test_an_encrypted_copy_cannot_be_replaced_by_another_upload_of_the_same_bytes(dev_node: NodeProcess) -> None:
    """Whoever else holds the bytes (a licensee, say) must not re-encrypt this node's copy under a key of
    its own: envelopes already sealed with the first key must keep opening what this node serves."""
    data = b"weights" * 1000
    right = "sha256:" + hashlib.sha256(data).hexdigest()
    first_key = base64.b64encode(bytes(range(32))).decode()
    headers = {"X-Artifact-Id": right, "X-Content-Key": first_key}
    status, _, _ = request(dev_node, "PUT", "/artifacts?encrypt=true", data, headers)
    assert status == 201
    stored = request(dev_node, "GET", f"/artifacts/{right}/stored")[2]
    # The same bytes again under another key, or with the node asked to make one: refused, nothing replaced.
    other_key = base64.b64encode(bytes(32)).decode()
    for extra in ({"X-Content-Key": other_key}, {}):
        status, _, body = request(dev_node, "PUT", "/artifacts?encrypt=true", data, {"X-Artifact-Id": right, **extra})
        assert status == 409 and "cannot replace it" in json.loads(body)["error"], body
        assert request(dev_node, "GET", f"/artifacts/{right}/stored")[2] == stored
    # The publisher sending the same upload again (a retry) is answered as before: the same ciphertext.
    status, _, _ = request(dev_node, "PUT", "/artifacts?encrypt=true", data, headers)
    assert status == 201
    assert request(dev_node, "GET", f"/artifacts/{right}/stored")[2] == stored
