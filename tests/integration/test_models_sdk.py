"""The model lifecycle from the SDK against a real dev node: publish, buy, pull, verify, run, record."""

from __future__ import annotations

import asyncio
import os
import time
from hashlib import sha256
from pathlib import Path

import numpy as np
import pytest

from aichain_node import AsyncClient, Client
from aichain_node.errors import (
    ArtifactMismatch,
    KeyNotReleased,
    ModelNotFound,
    NoContentKey,
    NotLicensed,
    ReceiptNotFound,
    StoredEncrypted,
    TransactionFailed,
)
from aichain_node.inference import Session, tensor_digest
from aichain_node.runs import Inference, Pulled
from aichain_node.terms import Offer
from core.artifact import format_id
from core.keys import address_hex, write_key_file
from node.bench.onnx_model import build_mlp
from tests.harness import NodeProcess
from tests.integration.support import fund, pending_nonce

AIC = 10**9


def owner_run(model: Path, x: np.ndarray) -> np.ndarray:
    return Session(model).run({"x": x})["y"]


def test_private_model_is_bought_pulled_decrypted_and_run(shared_node: NodeProcess, tmp_path: Path) -> None:
    owner, buyer, stranger = (fund(shared_node, 50 * AIC) for _ in range(3))
    source = build_mlp(tmp_path / "net.onnx", seed=1)
    name = f"net-{owner.address.hex()[:8]}"
    x = np.random.default_rng(3).standard_normal((5, 8), dtype=np.float32)
    with Client(shared_node.url, owner) as node:
        published = node.models.publish(source, name, private=True, offer=Offer.parse("price=10,duration=30d"))
        assert (published.version, published.private, published.offer) == (1, True, 1)
        assert published.releaser == shared_node.rpc.call("node_status")["releaser"]
        owner_before = node.balance()
    with Client(shared_node.url, stranger) as node, pytest.raises(NotLicensed, match=f"no licence to {name}@1"):
        node.models.pull(name)
    with Client(shared_node.url, buyer) as node:
        licence = node.models.buy(name)
        assert licence["valid"] and licence["price"] == 10 * AIC
        pulled = node.models.pull(name)
        assert pulled.encrypted and not pulled.cached
        assert pulled.path.read_bytes() == source.read_bytes()
        assert node.models.pull(name).cached  # the second time it comes from the verified cache
        result = node.models.run(name, x)
        np.testing.assert_array_equal(result.outputs["y"], owner_run(source, x))
        assert result.output_hash == tensor_digest({"y": owner_run(source, x)})
    with Client(shared_node.url, owner) as node:
        assert node.balance() == owner_before + 10 * AIC  # the owner holds every share


def test_a_tampered_copy_is_refused_before_it_is_loaded(shared_node: NodeProcess, tmp_path: Path) -> None:
    owner = fund(shared_node, 20 * AIC)
    source = build_mlp(tmp_path / "open.onnx", seed=2)
    name = f"open-{owner.address.hex()[:8]}"
    with Client(shared_node.url, owner) as node:
        node.models.publish(source, name)
        pulled = node.models.pull(name)
        data = bytearray(pulled.path.read_bytes())
        data[len(data) // 2] ^= 0x01
        pulled.path.write_bytes(bytes(data))
        with pytest.raises(ArtifactMismatch, match="it is not that model"):
            node.models.run(name, np.zeros((1, 8), np.float32), path=pulled.path)
        # From the cache, a changed file is hashed again and refused; a fresh pull replaces it, and says so.
        replaced = node.models.pull(name)
        assert not replaced.cached and replaced.path.read_bytes() == source.read_bytes()
        assert replaced.replaced is not None and "had changed since it was verified" in replaced.replaced
        assert format_id(sha256(bytes(data)).digest()) in replaced.replaced
        assert node.models.pull(name).cached and node.models.pull(name).replaced is None
        # Touched but not changed (new times, same bytes): hashed again, and used without a download.
        os.utime(pulled.path, (1_000_000_000, 1_000_000_000))
        touched = node.models.pull(name)
        assert touched.cached and touched.replaced is None
        assert node.models.pull(name).cached  # stamped again: no hashing the next time either


def test_publishing_in_the_clear_what_the_node_stores_encrypted_is_refused(
    shared_node: NodeProcess, tmp_path: Path
) -> None:
    """Bytes the node keeps encrypted cannot become a public version: nobody could ever pull it."""
    owner = fund(shared_node, 20 * AIC)
    source = build_mlp(tmp_path / "secret.onnx", seed=21)
    name = f"clear-{owner.address.hex()[:8]}"
    with Client(shared_node.url, owner) as node:
        stored = node.upload(source, encrypt=True)
        assert stored["encrypted"]
        # A plain upload of the same bytes is refused too: the node keeps its encrypted copy, and says so.
        with pytest.raises(StoredEncrypted, match="already stored here encrypted"):
            node.upload(source)
        nonce = pending_nonce(shared_node, owner.address)
        with pytest.raises(StoredEncrypted, match="Publish it with --private"):
            node.models.publish(source, name)
        assert pending_nonce(shared_node, owner.address) == nonce  # nothing was sent
        with pytest.raises(ModelNotFound):
            node.models.info(name)
    key = tmp_path / "owner.pem"
    write_key_file(key, owner, None)
    refused = shared_node.cli("model", "publish", str(source), "--name", name, "--from", str(key), "-q", check=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "already stored here encrypted" in refused.stderr
    assert shared_node.cli_json("artifact", "info", stored["id"])["encrypted"]  # the node's copy is as it was


def test_a_multi_file_model_with_external_data_runs(shared_node: NodeProcess, tmp_path: Path) -> None:
    owner, buyer = fund(shared_node, 20 * AIC), fund(shared_node, 20 * AIC)
    source = build_mlp(tmp_path / "big", seed=4, external_data=True)
    assert sorted(p.name for p in source.iterdir()) == ["model.onnx", "weights.bin"]
    name = f"multi-{owner.address.hex()[:8]}"
    x = np.ones((2, 8), np.float32)
    with Client(shared_node.url, owner) as node:
        node.models.publish(source, name, private=True, offer=Offer.parse("price=0"))
    with Client(shared_node.url, buyer) as node:
        node.models.buy(name)
        pulled = node.models.pull(name)
        assert pulled.path.is_dir() and pulled.encrypted
        assert (pulled.path / "weights.bin").read_bytes() == (source / "weights.bin").read_bytes()
        result = node.models.run(name, x)
        np.testing.assert_array_equal(result.outputs["y"], owner_run(source / "model.onnx", x))


def test_per_use_licence_is_charged_once_per_receipt(shared_node: NodeProcess, tmp_path: Path) -> None:
    owner, buyer = fund(shared_node, 20 * AIC), fund(shared_node, 20 * AIC)
    source = build_mlp(tmp_path / "metered.onnx", seed=5)
    name = f"metered-{owner.address.hex()[:8]}"
    with Client(shared_node.url, owner) as node:
        node.models.publish(source, name, offer=Offer.parse("price=1,per-use=0.5"))
    with Client(shared_node.url, buyer) as node:
        licence = node.models.buy(name, deposit=2 * AIC)
        assert licence["deposit"] == 2 * AIC
        runs = [node.models.run(name, np.full((1, 8), i, np.float32), record=True) for i in range(3)]
        assert [r.charged for r in runs] == [AIC // 2] * 3
        receipts = node.models.receipts(name)
        assert [r["receipt"] for r in receipts] == [r.receipt for r in runs]
        assert {r["runner"] for r in receipts} == {address_hex(buyer.address)}
        assert node.models.licence(name)["uses_charged"] == 3
        assert node.models.licence(name)["deposit"] == AIC // 2


def test_anyone_can_rerun_a_recorded_inference_and_compare(shared_node: NodeProcess, tmp_path: Path) -> None:
    owner, auditor = fund(shared_node, 20 * AIC), fund(shared_node, 20 * AIC)
    source = build_mlp(tmp_path / "audited.onnx", seed=7)
    name = f"audited-{owner.address.hex()[:8]}"
    x = np.random.default_rng(7).standard_normal((4, 8), dtype=np.float32)
    with Client(shared_node.url, owner) as node:
        node.models.publish(source, name)
        honest = node.models.run(name, x, record=True)
        node.models.record(name, 1, honest.input_hash, bytes(32))  # a receipt claiming outputs the model never gives
    with Client(shared_node.url, auditor) as node:
        confirmed = node.models.check(name, 1, x)
        assert confirmed["inputs_match"] and confirmed["outputs_match"]
        assert confirmed["receipt"] == honest.receipt and confirmed["runner"] == address_hex(owner.address)
        np.testing.assert_array_equal(confirmed["outputs"]["y"], owner_run(source, x))
        other_inputs = node.models.check(name, 1, x + 1)
        assert not other_inputs["inputs_match"] and not other_inputs["outputs_match"]
        false_claim = node.models.check(name, 2, x)
        assert false_claim["inputs_match"] and not false_claim["outputs_match"]
        assert false_claim["rerun_output_hash"] == confirmed["output_hash"]
        with pytest.raises(ReceiptNotFound, match=f"{name}@1 has no inference receipt #3"):
            node.models.check(name, 3, x)


def test_concurrent_runs_of_a_model_not_yet_here_share_one_pull(shared_node: NodeProcess, tmp_path: Path) -> None:
    owner = fund(shared_node, 20 * AIC)
    source = build_mlp(tmp_path / "shared.onnx", seed=6)
    name = f"shared-{owner.address.hex()[:8]}"
    batches = [np.full((2, 8), i, np.float32) for i in range(6)]

    async def main() -> tuple[list[Pulled], list[Inference]]:
        async with AsyncClient(shared_node.url, owner) as node:
            await node.models.publish(source, name)
            pulls = await asyncio.gather(*(node.models.pull(name) for _ in range(3)))
            runs = await asyncio.gather(*(node.models.run(f"{name}@1", x) for x in batches))
            return list(pulls), list(runs)

    pulls, runs = asyncio.run(main())
    assert sorted(p.cached for p in pulls) == [False, True, True]  # one download; the others found it
    assert len({p.path for p in pulls}) == 1 and pulls[0].path.read_bytes() == source.read_bytes()
    assert not list(pulls[0].path.parent.glob(".*part*"))  # no temp file left behind
    for x, result in zip(batches, runs, strict=True):
        np.testing.assert_array_equal(result.outputs["y"], owner_run(source, x))


def test_a_cached_private_copy_runs_for_licensees_only_and_not_past_the_licence(
    shared_node: NodeProcess, tmp_path: Path
) -> None:
    owner, buyer, stranger = (fund(shared_node, 20 * AIC) for _ in range(3))
    source = build_mlp(tmp_path / "brief.onnx", seed=11)
    name = f"brief-{owner.address.hex()[:8]}"
    x = np.ones((1, 8), np.float32)
    with Client(shared_node.url, owner) as node:
        node.models.publish(source, name, private=True, offer=Offer.parse("price=1,duration=4s"))
        node.models.run(name, x)  # an owner needs no licence
    with Client(shared_node.url, buyer) as node:
        node.models.buy(name)
        node.models.pull(name)
        node.models.run(name, x)
        with Client(shared_node.url, stranger) as other, pytest.raises(NotLicensed):
            other.models.run(name, x)  # the plaintext in this machine's cache is for licensees
        while node.models.licence(name)["valid"]:  # block time passes the licence's expiry
            time.sleep(0.2)
        with pytest.raises(NotLicensed, match=f"licence to {name}@1 \\(offer 1\\) ended at .*price again"):
            node.models.run(name, x)  # a licence seen valid a moment ago is not trusted past its expiry


def test_bytes_already_published_in_the_clear_cannot_be_published_private(
    shared_node: NodeProcess, tmp_path: Path
) -> None:
    owner = fund(shared_node, 20 * AIC)
    source = build_mlp(tmp_path / "known.onnx", seed=12)
    with Client(shared_node.url, owner) as node:
        node.models.publish(source, f"open-{owner.address.hex()[:8]}")
        secret = f"secret-{owner.address.hex()[:8]}"
        with pytest.raises(ArtifactMismatch, match=r"already stored here unencrypted .* cannot be made private"):
            node.models.publish(source, secret, private=True)
        with pytest.raises(ModelNotFound):
            node.models.info(secret)  # refused before anything went on chain
        with pytest.raises(ValueError, match="parents name their version"):
            node.models.publish(source, secret, parents=["base"])


def test_a_version_whose_parent_is_missing_is_refused_by_the_chain(shared_node: NodeProcess, tmp_path: Path) -> None:
    owner = fund(shared_node, 20 * AIC)
    source = build_mlp(tmp_path / "child.onnx", seed=6)
    with Client(shared_node.url, owner) as node, pytest.raises(TransactionFailed, match="parent"):
        node.models.publish(source, f"orphan-{owner.address.hex()[:8]}", parents=["nowhere@1"])


def test_with_key_release_off_the_owner_releases_keys_itself(tmp_path: Path) -> None:
    owner_keys, elsewhere = tmp_path / "owner-keys", tmp_path / "elsewhere"  # the owner's machine, and another
    (tmp_path / "node").mkdir()
    node_process = NodeProcess(tmp_path / "node", block_time_ms=200)
    node_process.env["AICHAIN_MODELS_RELEASE_KEYS"] = "false"  # [models] release_keys = false
    with node_process:
        assert node_process.rpc.call("node_status")["releaser"] is None
        owner, buyer = fund(node_process, 20 * AIC), fund(node_process, 20 * AIC)
        source = build_mlp(tmp_path / "vetted.onnx", seed=8)
        with Client(node_process.url, owner, content_key_dir=owner_keys) as node:
            published = node.models.publish(source, "vetted", private=True, offer=Offer.parse("price=1"))
            assert published.releaser is None
        with Client(node_process.url, buyer) as node:
            node.models.buy("vetted")
            node.aio.models.release_wait_s = 1.0  # no node releases it: do not wait the default 30 s
            with pytest.raises(KeyNotReleased, match="no content key has been released"):
                node.models.pull("vetted")
        with Client(node_process.url, owner, content_key_dir=owner_keys) as node:
            assert node.models.release("vetted") == [address_hex(buyer.address)]
            assert node.models.release("vetted") == []  # served once
        with Client(node_process.url, buyer) as node:
            assert node.models.pull("vetted").path.read_bytes() == source.read_bytes()
        with (
            Client(node_process.url, buyer, content_key_dir=elsewhere) as node,
            pytest.raises(NoContentKey, match="keeps no content key"),
        ):
            node.models.release("vetted")
        assert list(owner_keys.glob("*.key")) and not elsewhere.exists()


def test_a_damaged_stored_chunk_never_reaches_onnxruntime(shared_node: NodeProcess, tmp_path: Path) -> None:
    owner = fund(shared_node, 20 * AIC)
    source = build_mlp(tmp_path / "fragile.onnx", seed=9)
    name = f"fragile-{owner.address.hex()[:8]}"
    with Client(shared_node.url, owner) as node:
        published = node.models.publish(source, name)
        chunk = shared_node.rpc.call("artifact_info", published.artifact)["chunk_ids"][0][2:]
        chunk_file = Path(shared_node.datadir) / "artifacts" / "chunks" / chunk[:2] / chunk
        raw = bytearray(chunk_file.read_bytes())
        raw[100] ^= 0x04
        chunk_file.write_bytes(bytes(raw))
        with pytest.raises(ArtifactMismatch, match=r"ended early.*nothing was kept"):
            node.models.run(name, np.zeros((1, 8), np.float32))
        cached = node.aio.models.cache_path(name, 1, False)
        assert not cached.exists() and not list(cached.parent.glob("*"))  # no file, no part, no stamp
