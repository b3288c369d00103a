from __future__ import annotations

import json
import time
from pathlib import Path

from core.block import Vote, VoteType
from core.genesis import Genesis
from core.keys import read_key_file
from core.proposal import Proposal
from node.chain import Chain
from node.consensus.signer import Signer
from node.consensus.wal import ConsensusWal
from storage.kv import KeyValueStore
from tests.harness import NodeProcess


def test_validator_that_signed_before_a_crash_resumes_in_a_later_round(tmp_path: Path) -> None:
    """Killed after signing a precommit at height h but before committing h: on restart the
    validator may not sign again in that round, so it must move on to the next round."""
    node = NodeProcess(tmp_path, block_time_ms=100)
    with node:
        while node.rpc.call("chain_head")["height"] < 1:  # block 1 comes at once; the next after the idle interval
            time.sleep(0.05)
        head = node.rpc.call("chain_head")["height"]
    next_height = head + 1
    (node.datadir / "sign_state.json").write_text(
        json.dumps({"height": next_height, "round": 0, "step": 3, "payload": "00", "signature": "00" * 64})
    )
    with node:
        node.cli("tx", "transfer", "--from", "dev", "--to", "0x" + "11" * 20, "--amount", "1", "--no-wait")
        deadline = time.monotonic() + 15
        while node.rpc.call("chain_head")["height"] < next_height:
            assert time.monotonic() < deadline, f"no block after restart:\n{node.log()}"
            time.sleep(0.1)
        commit = node.rpc.call("chain_getCommit", next_height)
        assert commit["round"] >= 1


def test_validator_killed_between_prevote_and_precommit_decides_the_kept_block(tmp_path: Path) -> None:
    """Killed after prevoting block X at (h, 0): the signer forbids any other prevote in round 0,
    and X was only in memory. The node keeps the block it votes for (node/consensus/wal.py),
    so on restart it precommits and commits X itself in round 0, without waiting out timeouts."""
    node = NodeProcess(tmp_path, block_time_ms=100)
    with node:
        while node.rpc.call("chain_head")["height"] < 1:
            time.sleep(0.05)
    # While the node is down, play its part up to the prevote, as it would have done.
    genesis = Genesis.load(node.datadir / "genesis.json")
    validator = read_key_file(node.datadir / "validator.pem", None)
    kv = KeyValueStore(node.datadir / "chaindata")
    try:
        chain = Chain(kv, genesis)
        height = chain.head.height + 1
        block = chain.build([], validator.address, chain.head.timestamp_ms + 100).block
        proposal = Proposal(height, 0, -1, block.hash, validator.address).signed_by(validator, genesis.chain_id)
        ConsensusWal(kv).save(proposal, block)
    finally:
        kv.close()
    signer = Signer(validator, genesis.chain_id, node.datadir / "sign_state.json")
    signer.sign_proposal(Proposal(height, 0, -1, block.hash, validator.address))
    signer.sign_vote(Vote(VoteType.PREVOTE, height, 0, block.hash, validator.address))
    with node:
        started = time.monotonic()
        while node.rpc.call("chain_head")["height"] < height:
            assert time.monotonic() - started < 15, f"no block after restart:\n{node.log()}"
            time.sleep(0.05)
        assert node.rpc.call("chain_getBlockByHeight", height, False)["hash"] == "0x" + block.hash.hex()
        assert node.rpc.call("chain_getCommit", height)["round"] == 0
        assert time.monotonic() - started < 3, "the kept block is decided at once, not after round timeouts"
