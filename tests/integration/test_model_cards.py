"""Model cards on chain and `model search`, against a real dev node, as a user types them."""

from __future__ import annotations

from pathlib import Path

from aichain_node import Client
from aichain_node.cards import onnx_signature
from core.keys import address_hex
from node.bench.onnx_model import build_mlp
from tests.harness import NodeProcess
from tests.integration.support import fund, key_file, pending_nonce

AIC = 10**9


def test_a_card_is_recorded_at_publish_and_read_before_buying(cli: NodeProcess, tmp_path: Path) -> None:
    owner, stranger = fund(cli, 20 * AIC), fund(cli, AIC)
    owner_key = key_file(tmp_path, owner, "owner")
    unique = owner.address.hex()[:8]
    name = f"card-{unique}"
    source = build_mlp(tmp_path / "m.onnx", inputs=6, outputs=3, seed=7)
    cli.cli("model", "publish", str(source), "--name", name, "--private", "--offer", "price=3",
            "--description", f"Flags fraudulent card payments ({unique}).\nSix features in, three scores out.",
            "--task", "tabular-classification", "--tag", "fraud", "--tag", f"t{unique}", "--licence", "Apache-2.0",
            "--from", owner_key, "-q")  # fmt: skip

    # Anyone reads it before paying: the words the owner wrote, and the signature read from the ONNX file.
    card = cli.cli_json("model", "info", name)["card"]
    inputs, outputs = onnx_signature(source)
    assert card["task"] == "tabular-classification" and card["tags"] == ["fraud", f"t{unique}"]
    assert card["licence"] == "Apache-2.0" and card["description"].startswith("Flags fraudulent card payments")
    assert card["inputs"] == [t.to_json() for t in inputs] and card["inputs"][0]["shape"][-1] == 6
    assert card["outputs"] == [t.to_json() for t in outputs] and card["outputs"][0]["shape"][-1] == 3
    shown = cli.cli("model", "info", name).stdout
    assert "task tabular-classification; licence Apache-2.0; tags fraud" in shown
    assert "  Six features in, three scores out." in shown and "  input  x float32 [batch, 6]" in shown
    with Client(cli.url, stranger) as node:
        assert node.models.info(name)["card"] == card  # the SDK, as a stranger holding no licence

    # A model published with no card fields still gets one: what it takes and gives.
    bare = f"bare-{unique}"
    cli.cli("model", "publish", str(build_mlp(tmp_path / "b.onnx", seed=8)), "--name", bare, "--from", owner_key, "-q")
    bare_card = cli.cli_json("model", "info", bare)["card"]
    assert bare_card["description"] == "" and bare_card["inputs"][0]["name"] == "x"

    # The card goes with a new model: giving one for a next version is refused before anything is sent.
    nonce = pending_nonce(cli, owner.address)
    again = cli.cli("model", "publish", str(build_mlp(tmp_path / "v2.onnx", seed=9)), "--name", name,
                    "--description", "new words", "--from", owner_key, "-q", check=False)  # fmt: skip
    assert again.returncode == 1 and "registered already" in again.stderr and again.stderr.count("\n") == 1
    assert pending_nonce(cli, owner.address) == nonce

    # Search by words (name or card, any case), task, tag and owner.
    def found(*args: str) -> list[str]:
        return [m["model"] for m in cli.cli_json("model", "search", *args)]

    assert found("FRAUDULENT", unique) == [name]
    assert found(f"t{unique}") == [name]  # a tag is a word of the card too
    assert found("--tag", f"t{unique}") == [name] and found("--tag", f"T{unique.upper()}") == [name]
    assert name in found("--task", "tabular-classification") and bare not in found("--task", "tabular-classification")
    assert found("--owner", address_hex(owner.address)) == [name, bare]
    assert found("--owner", address_hex(stranger.address)) == []
    assert found(bare) == [bare]  # by name
    assert found(unique, "resnet") == []
    listed = cli.cli("model", "search", unique).stdout
    assert f"{name}  (1 version(s); tabular-classification, #fraud #t{unique})" in listed
    assert "  Flags fraudulent card payments" in listed
    assert cli.cli("model", "search", "no-such-model-anywhere").stdout.strip() == "no model matches"
