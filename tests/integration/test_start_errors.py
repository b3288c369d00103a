"""`aichain-node start` on a taken RPC port: one line saying why and what to do, a non-zero exit,
and nothing left behind: the same data directory and P2P port start a node at once."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

from tests.harness import CLI, NodeProcess


def test_a_taken_rpc_port_is_one_line_and_leaves_nothing_behind(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, block_time_ms=200)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        args = [
            CLI,
            "start",
            "--dev",
            "--datadir",
            str(node.datadir),
            "--rpc-port",
            str(taken.getsockname()[1]),
            "--p2p-port",
            str(node.p2p_port),
            "--log-level",
            "warning",
        ]
        result = subprocess.run(args, env=node.env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1, result.stderr
    expected = (
        r"error: cannot listen for RPC on 127\.0\.0\.1:\d+: address already in use; "
        r"is another node running\? choose another --rpc-port\n"
    )
    assert re.fullmatch(expected, result.stderr), result.stderr
    assert not (node.datadir / "node.json").exists()
    with node:  # the same data directory (its LevelDB lock) and the same P2P port
        status = node.rpc.call("node_status")
        assert status["p2p_port"] == node.p2p_port and status["datadir"] == str(node.datadir)
