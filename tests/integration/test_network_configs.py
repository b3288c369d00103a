from __future__ import annotations

from pathlib import Path

import pytest

from core.genesis import Genesis
from core.keys import read_key_file
from node.config import load_config
from node.p2p.config import Bootnode
from node.testnet import load_testnet

CONFIGS = Path(__file__).resolve().parents[2] / "network-configs"


@pytest.mark.parametrize("name", ["devnet", "local-4"])
def test_shipped_network_configs_are_consistent(name: str) -> None:
    root = CONFIGS / name
    nodes = load_testnet(root)
    genesis = Genesis.load(root / "genesis.json")
    node_keys = {}
    for node in nodes:
        config = load_config(node.dir / "node.toml", environ={})
        assert config.datadir == node.dir.resolve()
        assert config.genesis_path == (root / "genesis.json").resolve()
        assert config.rpc.port == node.rpc_port and config.p2p.port == node.p2p_port
        validator = read_key_file(config.validator_key_path, None)
        assert validator.address in genesis.validators.by_address
        node_keys[node.p2p_port] = read_key_file(config.node_key_path, None).public_key
    for node in nodes:
        config = load_config(node.dir / "node.toml", environ={})
        for text in config.p2p.bootnodes:  # every bootnode names the key that port really has
            bootnode = Bootnode.parse(text)
            assert bootnode.node_key == node_keys[bootnode.port]
    assert len(genesis.validators) == len(nodes)
