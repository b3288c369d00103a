"""The Python SDK against a real dev node: transactions, contract calls, typed errors, artifacts."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path

import pytest

from aichain_node import ArtifactMismatch, AsyncClient, Client, NodeUnreachable, TransactionFailed
from core.artifact import format_id
from core.errors import ArtifactNotFound, InsufficientBalance
from core.keys import PrivateKey
from tests.harness import NodeProcess
from tests.integration.support import DEV_KEY, fund
from vm.system import MODELS

UNIT = 10**9


def test_transfers_in_a_row_are_finalized_and_balances_follow(shared_node: NodeProcess) -> None:
    sender = fund(shared_node, 10 * UNIT)
    recipient = PrivateKey.generate().address
    with Client(shared_node.url, sender) as node:
        assert node.chain_id() == shared_node.rpc.call("node_status")["chain_id"]
        # Three sends without waiting: nonces are tracked locally, none collides.
        sent = [node.transfer(recipient, (i + 1) * UNIT, wait=False)["tx_hash"] for i in range(3)]
        receipts = [node.wait(h) for h in sent]
        assert [r["status"] for r in receipts] == ["success"] * 3
        assert node.balance(recipient) == 6 * UNIT
        assert node.balance() < 4 * UNIT  # what is left after the fees


def test_node_errors_arrive_as_their_types(shared_node: NodeProcess) -> None:
    poor = fund(shared_node, 100_000)
    with Client(shared_node.url, poor) as node:
        with pytest.raises(InsufficientBalance, match="balance"):
            node.transfer(DEV_KEY.address, 10 * UNIT)
        with pytest.raises(ArtifactNotFound):
            node.rpc("artifact_info", format_id(bytes(32)))
    with Client("http://127.0.0.1:1", poor, timeout=2) as nowhere, pytest.raises(NodeUnreachable, match="no node"):
        nowhere.head()


def test_contract_calls_views_and_a_failed_execution(shared_node: NodeProcess) -> None:
    owner = fund(shared_node, 10 * UNIT)
    name = f"sdk-model-{owner.address.hex()[:8]}"
    artifact = hashlib.sha256(name.encode()).digest()
    with Client(shared_node.url, owner) as node:
        receipt = node.send(MODELS, "register_model", name, artifact, "onnx", b"", [[owner.address, 10_000]])
        assert receipt["status"] == "success"
        assert node.view(MODELS, "owners_of", name) == [[owner.address, 10_000]]
        # Registering the same name again fails in execution: the receipt comes with the error.
        with pytest.raises(TransactionFailed) as failed:
            node.send(MODELS, "register_model", name, artifact, "onnx", b"", [[owner.address, 10_000]])
        assert failed.value.receipt["status"] == "failed" and failed.value.receipt["error"]


def test_artifacts_go_up_and_come_back_checked(shared_node: NodeProcess, tmp_path: Path) -> None:
    data = random.Random(5).randbytes(3 * 1024 * 1024 + 11)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    moved: list[int] = []

    async def round_trip() -> None:
        async with AsyncClient(shared_node.url) as node:
            summary = await node.upload(source, progress=moved.append)
            assert summary["id"] == format_id(hashlib.sha256(data).digest())
            out = await node.download(summary["id"], tmp_path / "copy.bin")
            assert out.read_bytes() == data
            with pytest.raises(ArtifactMismatch, match="already stored here unencrypted"):
                await node.upload(data, encrypt=True)  # bytes stored in the clear cannot become private
            secret = data[::-1]
            encrypted = await node.upload(secret, encrypt=True)  # the id stays the plaintext's
            assert encrypted["id"] == format_id(hashlib.sha256(secret).digest()) and encrypted["encrypted"] is True

    asyncio.run(round_trip())
    assert sum(moved) == len(data)
    assert not (tmp_path / "copy.bin.part").exists()
