"""`aichain-node artifact …` against a running node: add, get (and resume), ls, info, pin, verify, rm, gc."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from tests.harness import NodeProcess


def test_files_and_directories_round_trip_through_the_cli(dev_node: NodeProcess, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(6 * 1024 * 1024 + 5)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    added = dev_node.cli_json("artifact", "add", str(source), "--quiet")
    assert added["id"] == "sha256:" + hashlib.sha256(data).hexdigest() and added["chunks"] == 2
    copy = tmp_path / "copy.bin"
    assert dev_node.cli_json("artifact", "get", added["id"], "-o", str(copy), "--quiet")["size"] == len(data)
    assert copy.read_bytes() == data

    model = tmp_path / "model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "model.onnx").write_bytes(b"onnx" * 1000)
    (model / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (model / "README.md").write_text("# a model card\n")
    directory = dev_node.cli_json("artifact", "add", str(model), "--quiet")
    assert directory["kind"] == "directory" and [f["path"] for f in directory["files"]] == [
        "README.md",
        "model.onnx",
        "tokenizer/vocab.txt",
    ]
    out = tmp_path / "out"
    dev_node.cli("artifact", "get", directory["id"], "-o", str(out), "--quiet")
    for name in ("README.md", "model.onnx", "tokenizer/vocab.txt"):
        assert (out / name).read_bytes() == (model / name).read_bytes()

    listed = {a["id"]: a for a in dev_node.cli_json("artifact", "ls")}
    assert set(listed) == {added["id"], directory["id"]} and all(a["pinned"] for a in listed.values())
    assert dev_node.cli_json("artifact", "info", added["id"])["merkle_root"].startswith("0x")
    assert dev_node.cli_json("artifact", "verify", added["id"])["ok"] is True
    dev_node.cli("artifact", "unpin", directory["id"])
    assert dev_node.cli_json("artifact", "gc")["artifacts_removed"] == 1
    assert dev_node.cli_json("artifact", "rm", added["id"], "--erase")["bytes_freed"] == len(data)
    assert dev_node.cli_json("artifact", "ls") == []
    missing = dev_node.cli("artifact", "info", added["id"], check=False)
    assert missing.returncode == 1 and "erased" in missing.stderr


def test_an_interrupted_download_resumes_and_a_wrong_part_is_thrown_away(dev_node: NodeProcess, tmp_path: Path) -> None:
    data = random.Random(2).randbytes(5 * 1024 * 1024)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    artifact = dev_node.cli_json("artifact", "add", str(source), "--quiet")["id"]
    dest = tmp_path / "dest.bin"
    Path(str(dest) + ".part").write_bytes(data[:3_000_000])  # what an interrupted get left
    dev_node.cli("artifact", "get", artifact, "-o", str(dest), "--quiet")
    assert dest.read_bytes() == data and not Path(str(dest) + ".part").exists()

    other = tmp_path / "other.bin"
    Path(str(other) + ".part").write_bytes(b"\x00" * 1000)  # not a prefix of the artifact
    failed = dev_node.cli("artifact", "get", artifact, "-o", str(other), "--quiet", check=False)
    assert failed.returncode == 1 and "nothing was kept" in failed.stderr
    assert not other.exists() and not Path(str(other) + ".part").exists()
    again = dev_node.cli("artifact", "get", artifact, "-o", str(other), "--quiet")
    assert again.returncode == 0 and other.read_bytes() == data


def test_verify_exits_1_on_damage(dev_node: NodeProcess, tmp_path: Path) -> None:
    source = tmp_path / "small.bin"
    source.write_bytes(b"x" * 5000)
    artifact = dev_node.cli_json("artifact", "add", str(source), "--quiet")
    chunk = dev_node.rpc.call("artifact_info", artifact["id"])["chunk_ids"][0][2:]
    (dev_node.datadir / "artifacts" / "chunks" / chunk[:2] / chunk).write_bytes(b"y" * 5000)
    result = dev_node.cli("artifact", "verify", artifact["id"], check=False)
    assert result.returncode == 1 and "DAMAGED" in result.stdout
    bad = dev_node.cli("artifact", "get", "sha256:beef", check=False)
    assert bad.returncode == 1 and "not an artifact id" in bad.stderr


def test_encrypted_artifacts_keep_the_plaintext_id(dev_node: NodeProcess, tmp_path: Path) -> None:
    data = random.Random(3).randbytes(5 * 1024 * 1024 + 9)
    source = tmp_path / "secret.bin"
    source.write_bytes(data)
    added = dev_node.cli_json("artifact", "add", str(source), "--encrypt", "--quiet")
    assert added["encrypted"] is True and added["id"] == "sha256:" + hashlib.sha256(data).hexdigest()
    chunk = dev_node.rpc.call("artifact_info", added["id"])["chunk_ids"][0][2:]
    stored = next(dev_node.datadir.rglob(chunk)).read_bytes()
    assert len(stored) == 4 * 1024 * 1024 + 16 and data[:4096] not in stored  # ciphertext on disk
    copy = tmp_path / "copy.bin"
    dev_node.cli("artifact", "get", added["id"], "-o", str(copy), "--quiet")  # the node holds the key
    assert copy.read_bytes() == data
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(data[:5000])
    (model / "card.md").write_text("# secret model\n")
    directory = dev_node.cli_json("artifact", "add", str(model), "--encrypt", "--quiet")
    assert directory["encrypted"] is True and directory["kind"] == "directory"
    out = tmp_path / "out"
    dev_node.cli("artifact", "get", directory["id"], "-o", str(out), "--quiet")
    assert (out / "w.bin").read_bytes() == data[:5000] and (out / "card.md").read_text() == "# secret model\n"
    assert dev_node.cli_json("artifact", "verify", directory["id"])["ok"] is True
