from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from core.keys import read_key_file
from node.devnet import DEV_ACCOUNT_KEY
from node.testnet import free_port_block
from tests.harness import CLI


def test_testnet_init_writes_configs_and_the_funded_dev_key(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore"
    env = {**os.environ, "AICHAIN_KEYSTORE": str(keystore), "HOME": str(tmp_path)}
    result = subprocess.run(
        [CLI, "testnet", "init", "--validators", "2", "--dir", str(tmp_path / "tn"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == ["node0", "node1"] and all(r["validator"] for r in rows)
    assert read_key_file(keystore / "dev.pem", None).address == DEV_ACCOUNT_KEY.address
    genesis = json.loads((tmp_path / "tn" / "genesis.json").read_text())
    assert "0x" + DEV_ACCOUNT_KEY.address.hex() in genesis["allocations"]
    again = subprocess.run(
        [CLI, "testnet", "init", "--dir", str(tmp_path / "tn")], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1 and "already holds a testnet" in again.stderr


def test_testnet_start_says_how_to_point_the_cli_at_it(tmp_path: Path) -> None:
    env = {**os.environ, "AICHAIN_KEYSTORE": str(tmp_path / "keystore"), "HOME": str(tmp_path)}
    base = free_port_block(2)
    directory = str(tmp_path / "tn")
    subprocess.run(
        [
            CLI,
            "testnet",
            "init",
            "--validators",
            "1",
            "--dir",
            directory,
            "--chain-id",
            "4242",
            "--rpc-base-port",
            str(base),
            "--p2p-base-port",
            str(base + 1),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    try:
        started = subprocess.run(
            [CLI, "testnet", "start", "--dir", directory], env=env, capture_output=True, text=True, timeout=90
        )
        assert started.returncode == 0, started.stderr
        assert f"export AICHAIN_RPC=http://127.0.0.1:{base}" in started.stdout
        assert "chain 4242 is up" in started.stdout and "testnet stop --dir" in started.stdout
        # The exported URL reaches this testnet's chain.
        head = subprocess.run(
            [CLI, "status", "--json"],
            env={**env, "AICHAIN_RPC": f"http://127.0.0.1:{base}"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(head.stdout)["chain_id"] == 4242
    finally:
        subprocess.run([CLI, "testnet", "stop", "--dir", directory], env=env, capture_output=True, timeout=60)
