"""`aichain-node model …` and `aichain-node licence …` against a real dev node, as a user types them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from aichain_node import Client
from aichain_node.inference import Session, tensor_digest
from core.keys import address_hex, write_key_file
from node.bench.onnx_model import build_mlp
from tests.harness import NodeProcess
from tests.integration.support import fund, key_file

AIC = 10**9


def test_publish_buy_pull_run_record_from_the_cli(cli: NodeProcess, tmp_path: Path) -> None:
    owner, buyer, stranger = (fund(cli, 50 * AIC) for _ in range(3))
    owner_key, buyer_key, stranger_key = (
        key_file(tmp_path, k, n) for k, n in ((owner, "owner"), (buyer, "buyer"), (stranger, "stranger"))
    )
    source = build_mlp(tmp_path / "net.onnx", seed=11)
    name = f"cli-{owner.address.hex()[:8]}"
    published = cli.cli_json(
        "model",
        "publish",
        str(source),
        "--name",
        name,
        "--private",
        "--from",
        owner_key,
        "--offer",
        "price=2,per-use=0.25",
        "--quiet",
    )
    assert published["version"] == 1 and published["private"] and published["offer"] == 1
    info = cli.cli_json("model", "info", name)
    assert info["owners"] == [{"address": address_hex(owner.address), "bps": 10_000}]
    assert info["offers"][0]["per_use_price"] == AIC // 4 and info["releaser"] == published["releaser"]
    assert "price 2 AIC" in cli.cli("model", "info", name).stdout

    # Without a licence the bytes can be had, but not the key; the CLI says so in one line.
    refused = cli.cli("model", "pull", name, "--from", stranger_key, "--quiet", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "holds no licence to" in refused.stderr
    assert "licence buy" in refused.stderr

    bought = cli.cli_json("licence", "buy", name, "--from", buyer_key, "--deposit", "1")
    assert bought["valid"] and bought["deposit"] == AIC
    assert [lic["model"] for lic in cli.cli_json("licence", "list", "--from", buyer_key)] == [name]
    assert cli.cli_json("licence", "show", name, "--account", address_hex(buyer.address))["offer"] == 1
    assert cli.cli("licence", "show", name, "--from", stranger_key, check=False).returncode == 1

    pulled = cli.cli_json("model", "pull", name, "--from", buyer_key, "--quiet")
    assert Path(pulled["path"]).read_bytes() == source.read_bytes() and pulled["encrypted"]
    x = np.random.default_rng(0).standard_normal((3, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    ran = cli.cli_json(
        "model",
        "run",
        name,
        "--input",
        str(tmp_path / "x.npy"),
        "--output",
        str(tmp_path / "y.npz"),
        "--record",
        "--from",
        buyer_key,
    )
    expected = Session(source).run({"x": x})
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["y"], expected["y"])
    assert ran["output_hash"] == "0x" + tensor_digest(expected).hex() and ran["charged"] == AIC // 4
    receipts = cli.cli_json("model", "receipts", name)
    assert [r["receipt"] for r in receipts] == [ran["receipt"]]
    assert receipts[0]["runner"] == address_hex(buyer.address)
    assert ran["receipt"] in cli.cli("model", "receipts", name).stdout
    assert cli.cli_json("licence", "show", name, "--from", buyer_key)["uses_charged"] == 1

    # Anyone with the model and the inputs re-runs a receipt: it holds for these inputs, not for others.
    checked = cli.cli("model", "run", name, "--input", str(tmp_path / "x.npy"), "--check", "1", "--from", buyer_key)
    assert f"{name}@1 receipt #1 holds" in checked.stdout and ran["output_hash"] in checked.stdout
    np.save(tmp_path / "other.npy", x + 1)
    other = cli.cli(
        "model", "run", name, "-i", str(tmp_path / "other.npy"), "--check", "1", "--from", buyer_key, check=False
    )
    assert other.returncode == 1 and "these inputs are not the ones" in other.stderr
    assert other.stderr.strip().count("\n") == 0

    # verify: the pulled copy is the version; a changed copy is not.
    assert cli.cli_json("model", "verify", pulled["path"], f"{name}@1")["ok"]
    changed = tmp_path / "changed.onnx"
    changed.write_bytes(source.read_bytes() + b"\x00")
    wrong = cli.cli("model", "verify", str(changed), name, check=False)
    assert wrong.returncode == 1 and "it is not that model" in wrong.stderr


def test_lineage_as_text_json_dot_and_image(cli: NodeProcess, tmp_path: Path) -> None:
    owner = fund(cli, 50 * AIC)
    key = key_file(tmp_path, owner, "owner")
    base, child = f"base-{owner.address.hex()[:8]}", f"child-{owner.address.hex()[:8]}"
    dataset = "sha256:" + "ab" * 32
    with Client(cli.url, owner) as node:
        node.models.register_dataset(dataset, terms="CC-BY-4.0")
    cli.cli("model", "publish", str(build_mlp(tmp_path / "b.onnx", seed=1)), "--name", base, "--from", key, "-q")
    cli.cli(
        "model",
        "publish",
        str(build_mlp(tmp_path / "c.onnx", seed=2)),
        "--name",
        child,
        "--parent",
        f"{base}@1",
        "--dataset",
        dataset,
        "--from",
        key,
        "-q",
    )
    graph = cli.cli_json("model", "lineage", child)
    edges = {(e["from"], e["to"], e["kind"]) for e in graph["edges"]}
    assert (f"version:{base}@1", f"version:{child}@1", "derived") in edges
    assert (f"dataset:{dataset}", f"version:{child}@1", "trained") in edges
    assert (f"account:{address_hex(owner.address)}", f"model:{base}", "owns") in edges
    text = cli.cli("model", "lineage", child).stdout
    assert f"derived from {base}@1" in text and f"trained on {dataset}" in text
    dot = cli.cli("model", "lineage", child, "--dot").stdout
    assert dot.startswith("digraph") and f'"version:{base}@1" -> "version:{child}@1"' in dot
    if shutil.which("dot") is not None:  # the CI installs Graphviz; without it, the error is one line
        cli.cli("model", "lineage", child, "--image", str(tmp_path / "lineage.svg"))
        assert "<svg" in (tmp_path / "lineage.svg").read_text()
    else:
        missing = cli.cli("model", "lineage", child, "--image", str(tmp_path / "lineage.svg"), check=False)
        assert missing.returncode == 1 and "Graphviz" in missing.stderr
    # Owners may be named by key: a new model owned 70/30 by two keys of the keystore.
    shared = f"shared-{owner.address.hex()[:8]}"
    partner = fund(cli, AIC)
    write_key_file(cli.keystore / "partner.pem", partner, None)
    cli.cli(
        "model",
        "publish",
        str(build_mlp(tmp_path / "s.onnx", seed=3)),
        "--name",
        shared,
        "--owner",
        f"{key}:70%",
        "--owner",
        "partner:30%",
        "--from",
        key,
        "-q",
    )
    assert cli.cli_json("model", "info", shared)["owners"] == [
        {"address": address_hex(owner.address), "bps": 7000},
        {"address": address_hex(partner.address), "bps": 3000},
    ]
    versions = cli.cli_json("model", "versions", child)
    assert versions[0]["parents"] == [f"{base}@1"] and versions[0]["datasets"] == [dataset]


def test_bad_input_gets_one_clear_line(cli: NodeProcess, tmp_path: Path) -> None:
    owner = fund(cli, 10 * AIC)
    key = key_file(tmp_path, owner, "owner")
    source = build_mlp(tmp_path / "m.onnx")
    cases = [
        (("model", "publish", str(source), "--name", "x", "--offer", "price=ten", "--from", key), "price 'ten'"),
        (("model", "publish", str(source), "--name", "x", "--offer", "colour=red", "--from", key), "unknown offer"),
        (("model", "publish", str(tmp_path / "none.onnx"), "--name", "x", "--from", key), "does not exist"),
        (("model", "info", "no-such-model"), "no model named"),
        (("model", "pull", "no-such-model@x"), "a version is a number"),
        (("model", "run", "no-such-model", "--input", str(tmp_path / "none.npy")), "no input file"),
        (("model", "run", "m", "--input", str(source), "--record"), "--from"),
        (("licence", "list"), "--from KEY or --account"),
    ]
    for args, message in cases:
        result = cli.cli(*args, check=False)
        assert result.returncode == 1, (args, result.stdout)
        assert message in result.stderr and result.stderr.strip().count("\n") == 0, (args, result.stderr)
