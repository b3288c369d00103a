from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from core.keys import read_key_file
from node.devnet import DEV_ACCOUNT_KEY
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
