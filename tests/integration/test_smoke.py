from __future__ import annotations

from tests.harness import NodeProcess


def test_dev_node_transfers_and_keeps_its_chain_across_restart(dev_node: NodeProcess) -> None:
    alice = dev_node.cli_json("keys", "new", "alice", "--no-password")["address"]
    sent = dev_node.cli_json("tx", "transfer", "--from", "dev", "--to", alice, "--amount", "2.5")
    assert sent["receipt"]["status"] == "success"
    assert dev_node.cli_json("account", "balance", alice)["balance"] == str(2_500_000_000)
    height = dev_node.rpc.call("chain_head")["height"]
    dev_node.stop()
    dev_node.start()
    assert dev_node.cli_json("account", "balance", alice)["balance"] == str(2_500_000_000)
    assert dev_node.rpc.call("chain_head")["height"] >= height
