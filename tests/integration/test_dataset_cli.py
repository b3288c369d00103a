"""`aichain-node dataset register|list|info` against a real dev node, as a user types them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.keys import address_hex
from node.bench.onnx_model import build_mlp
from tests.harness import NodeProcess
from tests.integration.support import fund, key_file, pending_nonce

AIC = 10**9


def test_register_list_info_and_train_on_a_dataset(cli: NodeProcess, tmp_path: Path) -> None:
    alice, carol = fund(cli, 10 * AIC), fund(cli, AIC)
    alice_key = key_file(tmp_path, alice, "alice")
    data = tmp_path / "iris.csv"
    data.write_bytes(b"sepal_length,sepal_width\n" + b"5.1,3.5\n" * 1000 + alice.address)  # unique per run
    dataset = "sha256:" + hashlib.sha256(data.read_bytes()).hexdigest()

    registered = cli.cli_json(
        "dataset", "register", str(data), "--terms", "CC-BY-4.0", "--upload",
        "--owner", f"{address_hex(alice.address)}:70%", "--owner", f"{address_hex(carol.address)}:30%",
        "--from", alice_key,
    )  # fmt: skip
    assert registered["dataset"] == dataset and registered["terms"] == "CC-BY-4.0"
    assert registered["owners"] == [
        {"address": address_hex(alice.address), "bps": 7000},
        {"address": address_hex(carol.address), "bps": 3000},
    ]
    assert registered["registrant"] == address_hex(alice.address)
    # --upload stored the bytes: the node serves them under the same id.
    assert cli.cli("artifact", "info", dataset, check=False).returncode == 0

    # info by id or by the file (hashed here), and the list, say the same.
    assert cli.cli_json("dataset", "info", dataset) == cli.cli_json("dataset", "info", str(data))
    shown = cli.cli("dataset", "info", dataset).stdout
    assert "terms: CC-BY-4.0" in shown and "70%" in shown and f"registered by {address_hex(alice.address)}" in shown
    listed = cli.cli_json("dataset", "list")
    assert {"dataset": dataset, "registrant": address_hex(alice.address), "height": registered["height"]} in listed

    # Registering it again is refused before a transaction is sent (the chain would refuse it for gas).
    nonce = pending_nonce(cli, alice.address)
    again = cli.cli("dataset", "register", dataset, "--from", alice_key, check=False)
    assert again.returncode == 1 and "registered already" in again.stderr
    assert pending_nonce(cli, alice.address) == nonce

    # A version trained on it names it, and its lineage shows it.
    name = f"ds-{alice.address.hex()[:8]}"
    cli.cli("model", "publish", str(build_mlp(tmp_path / "m.onnx", seed=5)), "--name", name,
            "--dataset", dataset, "--from", alice_key, "-q")  # fmt: skip
    assert f"trained on {dataset}" in cli.cli("model", "lineage", name).stdout


def test_unknown_datasets_and_bad_input_get_one_line_errors(cli: NodeProcess, tmp_path: Path) -> None:
    unknown = "sha256:" + "ee" * 32
    missing = cli.cli("dataset", "info", unknown, check=False)
    assert missing.returncode == 1 and f"no dataset {unknown} is registered" in missing.stderr
    neither = cli.cli("dataset", "info", str(tmp_path / "nothing.csv"), check=False)
    assert neither.returncode == 1 and "neither a file or directory here nor a dataset id" in neither.stderr
    key = key_file(tmp_path, fund(cli, AIC), "k")
    no_bytes = cli.cli("dataset", "register", unknown, "--upload", "--from", key, check=False)
    assert no_bytes.returncode == 1 and "--upload needs the dataset's file" in no_bytes.stderr
    bad_share = cli.cli(
        "dataset", "register", unknown, "--owner", "0x" + "11" * 20 + ":120%", "--from", key, check=False
    )
    assert bad_share.returncode == 1 and bad_share.stderr.count("\n") == 1
