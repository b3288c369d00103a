"""A Byzantine validator that signs two different votes is caught and leaves the set; no fork."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.evidence import DuplicateVote
from core.keys import address_hex
from tests import faults
from tests.integration.testnet_support import Testnet, wait_for


def _evidence_blocks(net: Testnet, i: int, first: int, last: int) -> list[dict]:
    return [b for b in net.blocks(i, first, last) if b["evidence"]]


def test_a_double_signing_validator_is_caught_and_removed_without_a_fork(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults.enable(monkeypatch)
    with Testnet(tmp_path, validators=4, start=False) as net:
        faults.set_faults(net.nodes[3].dir, equivocate=True)
        net.start(0, 1, 2, 3)
        cheater = net.validator_address(3)
        honest = [0, 1, 2]

        # Evidence of node3's equivocation lands in a block.
        found: list[dict] = []
        checked = 0

        def evidence_in_a_block() -> bool:
            nonlocal checked
            top = net.height(0)
            if top > checked:
                found.extend(_evidence_blocks(net, 0, checked + 1, top))
                checked = top
            return bool(found)

        wait_for(evidence_in_a_block, 40, "a block with evidence")
        block = found[0]
        evidence = [DuplicateVote.decode(bytes.fromhex(e[2:])) for e in block["evidence"]]
        assert {address_hex(e.validator).lower() for e in evidence} == {cheater}

        # Two heights later it is no longer a validator, on every honest node.
        net.wait_height(honest, block["height"] + 2, 30)
        for i in honest:
            validators = net.validator_addresses(i)
            assert cheater not in validators and len(validators) == 3, validators

        # The three honest validators keep finalizing, all on the same chain, without the cheater's votes.
        after = max(net.heights(honest).values())
        net.wait_height(honest, after + 5, 30)
        compared = net.assert_same_chain(honest)
        for height in range(block["height"] + 3, compared + 1):
            assert cheater not in net.commit_signers(0, height)
        # The cheater's own node follows the same chain too (it lost only its vote).
        wait_for(lambda: net.height(3) >= compared, 20, "node3 to follow")
        net.assert_same_chain([0, 3], up_to=compared)
