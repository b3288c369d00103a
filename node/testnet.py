"""Local testnets: N nodes on 127.0.0.1, each a separate `aichain-node` process.

`init` writes, under one directory: `genesis.json`, `testnet.json` (the nodes, their ports
and keys), and per node `nodeI/` with `validator.pem`, `node_key.pem` and `node.toml`. Keys are
unencrypted: these networks are for testing only. `start` launches every node with its
log in `nodeI/node.log` and its pid in `nodeI/node.pid`; `stop` sends SIGTERM (then SIGKILL
after a grace period); `status` asks each node over RPC.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aichain_node import Client, NodeUnreachable
from core.errors import ConfigError
from core.genesis import ChainParams, Genesis
from core.keys import PrivateKey, write_key_file
from core.units import UNIT
from core.validators import Validator, ValidatorSet
from node.devnet import DEV_ACCOUNT_KEY, GENESIS_TIME_MS
from vm.gas import TX_BASE

MANIFEST = "testnet.json"


@dataclass(frozen=True)
class TestnetNode:
    name: str
    dir: Path
    rpc_port: int
    p2p_port: int
    node_key: str
    validator: bool

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def bootnode(self) -> str:
        return f"{self.node_key}@127.0.0.1:{self.p2p_port}"


def free_port_block(count: int) -> int:
    """A base port such that base .. base+count-1 are all free on 127.0.0.1 (below the ephemeral range)."""
    for _ in range(500):
        base = random.randrange(20_000, 32_000 - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise ConfigError(f"no block of {count} free ports on 127.0.0.1")


def init_testnet(
    root: Path,
    validators: int,
    *,
    full_nodes: int = 0,
    chain_id: int = 7778,
    rpc_base_port: int = 26700,
    p2p_base_port: int = 26600,
    block_time_ms: int = 1000,
    empty_block_interval_ms: int = 10_000,
    allocations: dict[bytes, int] | None = None,
    max_block_txs: int = 20_000,
) -> list[TestnetNode]:
    if validators < 1:
        raise ConfigError("a testnet needs at least one validator")
    if (root / MANIFEST).exists():
        raise ConfigError(f"{root} already holds a testnet; remove it or choose another --dir")
    root.mkdir(parents=True, exist_ok=True)
    keys = [PrivateKey.generate() for _ in range(validators)]
    genesis = Genesis(
        chain_id=chain_id,
        chain_name=f"aichain-testnet-{validators}",
        timestamp_ms=GENESIS_TIME_MS,
        validators=ValidatorSet(tuple(Validator(k.public_key, 10) for k in keys)),
        allocations=tuple(
            sorted(
                {  # the dev account, and gas money for each validator's governance votes
                    DEV_ACCOUNT_KEY.address: 1_000_000_000 * UNIT,
                    **{k.address: 1_000 * UNIT for k in keys},
                    **(allocations or {}),
                }.items()
            )
        ),
        params=ChainParams(
            block_time_ms=block_time_ms,
            empty_block_interval_ms=empty_block_interval_ms,
            max_block_txs=max_block_txs,  # the default gas limit, or room for that many transfers
            block_gas_limit=max(ChainParams().block_gas_limit, max_block_txs * TX_BASE),
        ),
        validator_names=tuple((k.address, f"node{i}") for i, k in enumerate(keys)),
    )
    genesis.save(root / "genesis.json")
    nodes: list[TestnetNode] = []
    node_keys = [PrivateKey.generate() for _ in range(validators + full_nodes)]
    for i, node_key in enumerate(node_keys):
        nodes.append(
            TestnetNode(
                f"node{i}",
                root / f"node{i}",
                rpc_base_port + i,
                p2p_base_port + i,
                node_key.public_key.hex(),
                i < validators,
            )
        )
    for i, node in enumerate(nodes):
        node.dir.mkdir(parents=True, exist_ok=True)
        write_key_file(node.dir / "node_key.pem", node_keys[i], None)
        if node.validator:
            write_key_file(node.dir / "validator.pem", keys[i], None)
        peers = [other.bootnode for other in nodes if other is not node]
        (node.dir / "node.toml").write_text(  # paths relative to this file: the directory can move
            'datadir = "."\ngenesis = "../genesis.json"\n'
            + ('validator_key = "validator.pem"\n' if node.validator else "")
            + 'node_key = "node_key.pem"\n\n'
            f'[rpc]\naddr = "127.0.0.1"\nport = {node.rpc_port}\n\n'
            f'[p2p]\naddr = "127.0.0.1"\nport = {node.p2p_port}\nbootnodes = {json.dumps(peers)}\n'
        )
    manifest = [
        {
            "name": n.name,
            "dir": n.dir.name,
            "rpc_port": n.rpc_port,
            "p2p_port": n.p2p_port,
            "node_key": n.node_key,
            "validator": n.validator,
        }
        for n in nodes
    ]
    (root / MANIFEST).write_text(json.dumps({"chain_id": chain_id, "nodes": manifest}, indent=2) + "\n")
    return nodes


def load_testnet(root: Path) -> list[TestnetNode]:
    try:
        doc = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"no testnet in {root}; create one with `aichain-node testnet init --dir {root}`") from exc
    return [
        TestnetNode(n["name"], root / n["dir"], n["rpc_port"], n["p2p_port"], n["node_key"], n["validator"])
        for n in doc["nodes"]
    ]


def _alive(pid: int) -> bool:
    """Whether `pid` runs. A node this process started and that has exited is reaped here:
    a zombie child still answers `kill(pid, 0)`, and would look alive forever."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child (started by another `testnet start`): its parent or init reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _pid(node: TestnetNode) -> int | None:
    try:
        pid = int((node.dir / "node.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def chain_id_of(root: Path) -> int:
    """The chain id the testnet was made with (its testnet.json)."""
    try:
        return int(json.loads((root / MANIFEST).read_text())["chain_id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{root / MANIFEST} is missing or names no chain id: {exc}") from exc


def start_node(node: TestnetNode, extra: list[str] | None = None) -> int:
    """Launch one node (detached, its own session); return its pid."""
    running = _pid(node)
    if running is not None:
        return running
    cli = str(Path(sys.executable).with_name("aichain-node"))
    log = (node.dir / "node.log").open("ab")
    proc = subprocess.Popen(
        [cli, "start", "--config", str(node.dir / "node.toml"), *(extra or [])],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    (node.dir / "node.pid").write_text(str(proc.pid))
    return proc.pid


def wait_ready(nodes: list[TestnetNode], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for node in nodes:
        while True:
            try:
                with Client(node.rpc_url, timeout=2) as client:
                    client.rpc("node_status")
                break
            except NodeUnreachable:
                if time.monotonic() > deadline:
                    log = node.dir / "node.log"
                    raise ConfigError(f"{node.name} did not answer on {node.rpc_url}; see {log}") from None
                time.sleep(0.1)


def stop_node(node: TestnetNode, grace: float = 15.0) -> bool:
    pid = _pid(node)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        while _alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.02)
    (node.dir / "node.pid").unlink(missing_ok=True)
    return True


def node_status(node: TestnetNode) -> dict[str, Any]:
    row: dict[str, Any] = {"name": node.name, "rpc": node.rpc_url, "running": _pid(node) is not None}
    try:
        with Client(node.rpc_url, timeout=2) as client:
            status = client.rpc("node_status")
            consensus = client.rpc("consensus_status")
    except (NodeUnreachable, Exception) as exc:  # a node that is down or starting
        row["error"] = str(exc)
        return row
    row.update(
        head=status["head_height"],
        finalized=status["finalized_height"],
        peers=status["peers"],
        round=consensus["round"],
        step=consensus["step"],
        validator=status["validator"],
    )
    return row
