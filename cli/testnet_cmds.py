"""`aichain-node testnet …`: multi-node networks on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import JsonOption, emit, fail
from core.errors import AichainError
from node import testnet
from node.devnet import ensure_dev_key
from node.keystore import keystore_dir

testnet_app = typer.Typer(help="Local multi-node testnets on 127.0.0.1 (keys for testing only).", no_args_is_help=True)
DirOption = typer.Option(Path("./testnet"), "--dir", help="Testnet directory")


@testnet_app.command("init")
def init(
    validators: int = typer.Option(4, "--validators", help="Number of validators"),
    full_nodes: int = typer.Option(0, "--full-nodes", help="Number of non-validating nodes"),
    directory: Path = DirOption,
    chain_id: int = typer.Option(7778, "--chain-id"),
    rpc_base_port: int = typer.Option(26700, "--rpc-base-port", help="RPC port of node0; node i uses base + i"),
    p2p_base_port: int = typer.Option(26600, "--p2p-base-port", help="P2P port of node0; node i uses base + i"),
    block_time_ms: int = typer.Option(1000, "--block-time-ms"),
    empty_block_interval_ms: int = typer.Option(
        10_000, "--empty-block-interval-ms", help="Longest wait for a block when there are no transactions"
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write keys, a genesis and one config per node. The dev account key (`dev`) is funded."""
    try:
        nodes = testnet.init_testnet(
            directory.resolve(),
            validators,
            full_nodes=full_nodes,
            chain_id=chain_id,
            rpc_base_port=rpc_base_port,
            p2p_base_port=p2p_base_port,
            block_time_ms=block_time_ms,
            empty_block_interval_ms=empty_block_interval_ms,
        )
    except AichainError as exc:
        fail(str(exc))
    dev_key = ensure_dev_key(keystore_dir())
    rows = [{"name": n.name, "rpc": n.rpc_url, "p2p_port": n.p2p_port, "validator": n.validator} for n in nodes]
    human = "\n".join(
        f"{r['name']:7} rpc {r['rpc']}  p2p {r['p2p_port']}  {'validator' if r['validator'] else 'full'}" for r in rows
    )
    hint = f"start it with: aichain-node testnet start --dir {directory}"
    if dev_key is not None:
        hint += f"\nthe funded dev account's key is {dev_key} (name 'dev'; publicly known, test only)"
    emit(rows, as_json, f"testnet in {directory}:\n{human}\n{hint}")


@testnet_app.command("start")
def start(directory: Path = DirOption, as_json: bool = JsonOption) -> None:
    """Start every node of the testnet as its own process (logs in nodeI/node.log).

    Then prints how to point the CLI at it: commands go to AICHAIN_RPC (default: a dev node on
    127.0.0.1:8545, which may be another chain with the same dev key)."""
    root = directory.resolve()
    try:
        nodes = testnet.load_testnet(root)
        pids = {n.name: testnet.start_node(n) for n in nodes}
        testnet.wait_ready(nodes)
        chain_id = testnet.chain_id_of(root)
    except AichainError as exc:
        fail(str(exc))
    rpc = nodes[0].rpc_url
    lines = [f"{name}: pid {pid}" for name, pid in pids.items()]
    lines += [
        f"chain {chain_id} is up; point the CLI at it (commands go to AICHAIN_RPC, else 127.0.0.1:8545):",
        f"  export AICHAIN_RPC={rpc}",
        f"stop it with: aichain-node testnet stop --dir {directory}",
    ]
    emit({"pids": pids, "rpc": rpc, "chain_id": chain_id}, as_json, "\n".join(lines))


@testnet_app.command("status")
def status(directory: Path = DirOption, as_json: bool = JsonOption) -> None:
    """Each node's head, finalized height, peers and consensus round."""
    try:
        nodes = testnet.load_testnet(directory.resolve())
    except AichainError as exc:
        fail(str(exc))
    rows = [testnet.node_status(n) for n in nodes]
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"{r['name']:7} {'down' if not r['running'] else 'not answering'}")
        else:
            lines.append(
                f"{r['name']:7} head {r['head']:>6}  finalized {r['finalized']:>6}  peers {r['peers']}  "
                f"round {r['round']} {r['step']}"
            )
    emit(rows, as_json, "\n".join(lines))


@testnet_app.command("stop")
def stop(directory: Path = DirOption, as_json: bool = JsonOption) -> None:
    """Stop every node cleanly (SIGTERM; SIGKILL after 15 s)."""
    try:
        nodes = testnet.load_testnet(directory.resolve())
    except AichainError as exc:
        fail(str(exc))
    stopped = {n.name: testnet.stop_node(n) for n in nodes}
    emit(stopped, as_json, "\n".join(f"{k}: {'stopped' if v else 'was not running'}" for k, v in stopped.items()))
