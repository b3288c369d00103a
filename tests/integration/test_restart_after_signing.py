from __future__ import annotations

import json
import time
from pathlib import Path

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
