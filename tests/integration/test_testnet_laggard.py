"""A validator that falls a height behind at every other height keeps deciding blocks itself.

Its peers propose and vote for the next height while it still writes the last one; it holds
those messages and decides that height as soon as it gets there, instead of dropping them and
waiting for block sync to bring the block from its peers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import faults
from tests.integration.testnet_support import Testnet, metric, wait_for

BLOCK_TIME_MS = 500
DELAY_MS = 650  # > one block time: when it starts height h+1 its peers already voted at h+1


def test_a_validator_a_height_behind_decides_from_the_messages_it_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults.enable(monkeypatch)
    with Testnet(tmp_path, validators=4, block_time_ms=BLOCK_TIME_MS, start=False) as net:
        faults.set_faults(net.nodes[3].dir, commit_delay_ms=DELAY_MS)
        net.start(0, 1, 2, 3)
        net.wait_height(range(4), 4, 30)
        url = net.nodes[3].rpc_url
        start = net.height(3)
        synced_before = metric(url, "aichain_sync_blocks_imported_total")

        net.wait_height([3], start + 20, 40)

        held = metric(url, "aichain_consensus_messages_held_total")
        synced = metric(url, "aichain_sync_blocks_imported_total") - synced_before
        # Each even height leaves it behind; the next one it decides from what it held.
        assert held >= 10, f"{held} messages held"
        assert synced <= 3, f"{synced} of 20 blocks came from sync, not consensus"
        wait_for(lambda: net.height(3) >= net.height(0) - 2, 10, "node3 to stay within two heights")
        net.assert_same_chain(range(4))
