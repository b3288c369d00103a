"""Three of four honest validators finalize, whatever votes they missed while down.

The scenario of a stall found by chaos testing: validator D is down; at a height whose round-0
proposer is A, A dies right after its prevote, when B and C have seen the polka (A, B, C) and
locked on A's block; D comes back. B, C and D are three of four. D needs A's prevote (the
polka) to prevote the block B and C are locked on, and only B and C hold it: if nodes sent
again only what they signed themselves, D would never get it and the height would stall
for good (B and C prevote nothing but their locked block, D nothing but nil).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests import faults
from tests.integration.testnet_support import Testnet, wait_for

A, B, C, D = 0, 1, 2, 3


def test_three_of_four_finalize_after_a_proposer_dies_holding_a_polka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults.enable(monkeypatch)
    with Testnet(tmp_path, validators=4) as net:
        net.wait_height(range(4), 2, 30)
        net.kill(D)
        net.kill(A)  # B and C alone have no quorum: the chain waits for A
        head = max(net.heights([B, C]).values())
        faults.set_faults(net.nodes[A].dir, exit_after_prevote_at=head + 2)
        net.start(A)
        wait_for(lambda: not net.running(A), 60, "A to exit after its round-0 prevote at a height it proposes")
        assert "fault exit_after_prevote_at: exiting after the round-0 prevote" in net.log(A)

        # B and C saw the polka for A's block and locked on it (their two precommits decide nothing).
        def locked(i: int) -> dict | None:
            status = net.call(i, "consensus_status")
            return status if status["locked_round"] == 0 else None

        status_b = wait_for(lambda: locked(B), 20, "B locked on A's block at round 0")
        status_c = wait_for(lambda: locked(C), 20, "C locked on A's block at round 0")
        assert status_b["locked_block"] == status_c["locked_block"] is not None
        stalled = net.heights([B, C])
        assert stalled[B] == stalled[C] == status_b["height"] - 1, (stalled, status_b)

        net.start(D)
        restarted = time.monotonic()
        net.wait_height([B, C, D], stalled[B] + 1, 10)
        print(f"B, C and D finalized {time.monotonic() - restarted:.1f} s after D answered again")
        decided = net.blocks(B, stalled[B] + 1, stalled[B] + 1)[0]
        assert decided["hash"] == status_b["locked_block"], "the block decided is the one B and C locked on"
        net.wait_height([B, C, D], stalled[B] + 3, 20)
        net.assert_same_chain([B, C, D])
