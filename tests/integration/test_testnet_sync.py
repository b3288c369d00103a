"""A node that joins late downloads a long chain from its peers, then follows the head."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.testnet_support import Testnet, wait_for

BEHIND = 1000


@pytest.mark.parametrize("answer_bytes", [None, 3000], ids=["default", "partial-answers"])
def test_a_late_full_node_syncs_a_thousand_blocks_then_follows_the_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer_bytes: int | None
) -> None:
    if answer_bytes is not None:  # peers answer a few blocks at a time: windows arrive in parts
        monkeypatch.setenv("AICHAIN_P2P_SYNC_ANSWER_BYTES", str(answer_bytes))
    # One validator with a 5 ms block time makes ~70 blocks/s on a 2-core machine (four validators
    # make ~13: every one of them executes every block and checks every vote). A second full node
    # follows from the start, so the late one has two peers to fetch ranges from.
    with Testnet(tmp_path, validators=1, full_nodes=2, block_time_ms=5) as net:
        net.start(1)
        # ~15 s on an idle machine; a loaded one has made it take minutes (163 blocks in 60 s once):
        # the validator's pace is not what this test is about, the sync that follows is.
        net.wait_height([0], BEHIND + 10, 240)
        net.wait_height([1], BEHIND + 10, 60)

        started = time.monotonic()
        net.start(2)
        assert net.call(2, "node_status")["validator"] is None
        assert ", head 0, rpc" in net.log(2)  # "node started: … head 0": a fresh node downloads everything
        target = net.height(0)
        assert target >= BEHIND
        wait_for(lambda: net.height(2) >= target, 40, f"node2 to sync to {target}")
        synced_in = time.monotonic() - started
        wait_for(lambda: net.call(2, "node_status")["peers"] == 2, 10, "node2 to be connected to both others")

        # Then it follows: it keeps within a few blocks of the validator's head.
        for _ in range(3):
            head = net.height(0)
            wait_for(lambda h=head: net.height(2) >= h, 10, f"node2 to follow to {head}")
        wait_for(lambda: not net.call(2, "node_status")["syncing"], 10, "node2 to say it is no longer syncing")
        top = net.height(2)
        net.assert_same_chain([0, 1, 2], up_to=top)
        print(f"synced {target} blocks in {synced_in:.1f} s")
