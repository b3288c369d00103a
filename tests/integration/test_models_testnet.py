"""The model lifecycle end to end on a 4-validator testnet of real processes.

The owners publish a private ONNX model, derived from an upstream owner's model, on node A;
a buyer connected to node C buys a licence, pulls the model from the network (C fetches the
encrypted chunks from its peers), opens its content key from the envelope node A posted,
runs it, and gets the owners' own outputs. The price is split among the owners by share,
after the upstream owner's royalty; a stranger on node D gets the ciphertext but no key.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from aichain_node import Client, NotLicensed, TransactionFailed
from aichain_node.inference import Session, tensor_digest
from aichain_node.terms import Offer
from core.keys import PrivateKey, address_hex, write_key_file
from node.bench.onnx_model import build_mlp
from node.devnet import DEV_ACCOUNT_KEY
from tests.integration.testnet_support import CLI, Testnet, wait_for

AIC = 10**9
A, B, C, D = 0, 1, 2, 3


def test_owners_publish_on_a_and_a_buyer_on_c_runs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream, first, second, buyer, stranger = (PrivateKey.generate() for _ in range(5))
    base_file = build_mlp(tmp_path / "base.onnx", seed=20)
    model_file = build_mlp(tmp_path / "tuned", seed=21, hidden=256, external_data=True)  # ~10 KB graph + weights
    x = np.random.default_rng(22).standard_normal((4, 8), dtype=np.float32)
    owners_outputs = Session(model_file / "model.onnx").run({"x": x})
    with Testnet(tmp_path / "net", validators=4) as net:
        url = [node.rpc_url for node in net.nodes]
        wait_for(lambda: all(net.call(i, "node_status")["peers"] >= 3 for i in range(4)), 30, "a full mesh")
        with Client(url[B], DEV_ACCOUNT_KEY) as dev:
            sent = [dev.transfer(k.address, 100 * AIC, wait=False) for k in (upstream, first, second, buyer, stranger)]
            for s in sent:
                dev.wait_ok(s["tx_hash"])

        with Client(url[B], upstream) as node:
            node.models.publish(base_file, "base")
        with Client(url[A], first) as node:
            published = node.models.publish(
                model_file,
                "tuned",
                private=True,
                parents=["base@1"],
                owners=[(first.address, 6000), (second.address, 4000)],
                offer=Offer.parse("price=10,duration=30d,royalty-upstream=10%"),
            )
            assert published.releaser == net.call(A, "node_status")["releaser"]
            with pytest.raises(TransactionFailed, match="parent"):
                node.models.publish(base_file, "dangling", parents=["base@7"])  # the chain refuses a missing parent
        with Client(url[D]) as reader:
            lineage = [e for e in reader.models.lineage("tuned")["edges"] if e["kind"] == "derived"]
        assert lineage == [{"from": "version:base@1", "to": "version:tuned@1", "kind": "derived"}]

        with Client(url[C], buyer) as node:
            before = {
                who: node.balance(k.address)
                for who, k in (("first", first), ("second", second), ("upstream", upstream))
            }
            licence = node.models.buy("tuned")
            after = {
                who: node.balance(k.address)
                for who, k in (("first", first), ("second", second), ("upstream", upstream))
            }
            # 10 AIC: 10% to the upstream owner, the rest 60/40 between the owners; exactly.
            assert {who: after[who] - before[who] for who in before} == {
                "first": 5_400_000_000,
                "second": 3_600_000_000,
                "upstream": 1_000_000_000,
            }
            assert licence["valid"] and licence["offer"] == published.offer

            assert net.call(C, "artifact_list") == [] or all(
                a["id"] != published.artifact for a in net.call(C, "artifact_list")
            )
            pulled = node.models.pull("tuned")  # node C fetches the ciphertext from A; decrypted here
            assert pulled.encrypted and pulled.path.is_dir()
            assert any(a["id"] == published.artifact for a in net.call(C, "artifact_list"))
            for name in ("model.onnx", "weights.bin"):
                assert (pulled.path / name).read_bytes() == (model_file / name).read_bytes()
            result = node.models.run("tuned", x, record=True)
            np.testing.assert_array_equal(result.outputs["y"], owners_outputs["y"])
            assert result.output_hash == tensor_digest(owners_outputs)
            with Client(url[A]) as reader:
                receipts = reader.models.receipts("tuned")
            assert [r["receipt"] for r in receipts] == [result.receipt]
            assert receipts[0]["runner"] == address_hex(buyer.address) and receipts[0]["charged"] == 0

        # A stranger on D (another machine: another cache) gets the encrypted bytes, but no key to open them.
        monkeypatch.setenv("AICHAIN_MODEL_CACHE", str(tmp_path / "stranger-cache"))  # for the CLI below
        with (
            Client(url[D], stranger, model_cache_dir=tmp_path / "stranger-cache") as node,
            pytest.raises(NotLicensed, match="holds no licence to tuned@1"),
        ):
            node.models.pull("tuned")
        wait_for(
            lambda: any(a["id"] == published.artifact and a["encrypted"] for a in net.call(D, "artifact_list")),
            30,
            "node D to hold the ciphertext",
        )
        key = tmp_path / "stranger.pem"
        write_key_file(key, stranger, None)
        refused = subprocess.run(
            [CLI, "model", "pull", "tuned", "--from", str(key), "--rpc", url[D], "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 1 and refused.stderr.strip().count("\n") == 0
        assert "holds no licence to tuned@1" in refused.stderr and "licence buy tuned@1" in refused.stderr
