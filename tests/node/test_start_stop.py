"""Start and stop in pairs: a start that fails part-way undoes what it did, in this very process.

The RPC port is the last thing a node opens: when it is taken, the network, the databases and
the threads opened before it are closed again before the error goes up, so the same process (a
test, a supervisor) can start a node on the same data directory and P2P port at once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.keys import PrivateKey
from node.bench.workload import bench_genesis
from node.config import NodeConfig, P2PConfig, RpcConfig
from node.node import Node
from storage.artifact_store import ArtifactStore
from storage.kv import KeyValueStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_for(tmp_path: Path, validator: PrivateKey, rpc_port: int, p2p_port: int) -> NodeConfig:
    datadir = tmp_path / "node"
    datadir.mkdir(exist_ok=True)
    bench_genesis(validator, 1).save(datadir / "genesis.json")
    return replace(NodeConfig(datadir=datadir), rpc=RpcConfig(port=rpc_port), p2p=P2PConfig(port=p2p_port))


NODE_THREADS = ("block", "verify", "signer", "rpc-call", "artifact-", "loop-watchdog")


def node_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(NODE_THREADS)}


def assert_nothing_left(config: NodeConfig, p2p_port: int) -> None:
    KeyValueStore(config.chaindata).close()  # LevelDB takes a lock on open: it would raise if still held
    ArtifactStore(config.artifacts_path).close()  # the artifact index is a LevelDB of its own
    with socket.socket() as s:
        s.bind(("127.0.0.1", p2p_port))  # raises if the node's P2P listener were still open
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not others, f"tasks left running: {others}"
    assert not (config.datadir / "node.json").exists()


async def test_a_taken_rpc_port_closes_what_was_opened_before_the_error(tmp_path: Path) -> None:
    validator = PrivateKey.generate()
    p2p_port = free_port()
    threads_before = node_threads()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = config_for(tmp_path, validator, taken.getsockname()[1], p2p_port)
        node = Node(config, validator_key=validator)
        with pytest.raises(ConfigError, match=r"cannot listen for RPC on 127\.0\.0\.1:\d+: .*--rpc-port"):
            await node.start()
    assert_nothing_left(config, p2p_port)
    assert node_threads() <= threads_before, "the block, verification and watchdog threads ended"
    await node.stop()  # a stop after a failed start has nothing to undo

    again = Node(replace(config, rpc=RpcConfig(port=0)), validator_key=validator)
    await again.start()
    try:
        assert again.network is not None and again.network.manager.listen_port == p2p_port
        decided = await again.head_waiters.wait_for_height(1, 10)
        assert decided, "the node started on the same data and P2P port decides blocks"
    finally:
        await again.stop()
    assert_nothing_left(config, p2p_port)


async def test_a_taken_p2p_port_closes_the_databases(tmp_path: Path) -> None:
    validator = PrivateKey.generate()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        p2p_port = taken.getsockname()[1]
        config = config_for(tmp_path, validator, 0, p2p_port)
        with pytest.raises(ConfigError, match=r"cannot listen for peers on 127\.0\.0\.1:\d+: .*--p2p-port"):
            await Node(config, validator_key=validator).start()
    assert_nothing_left(config, p2p_port)
