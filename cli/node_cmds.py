"""`aichain-node init`, `start` and `status`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import JsonOption, RpcOption, client, emit, fail, rpc_guarded
from core.errors import AichainError
from core.genesis import Genesis
from core.keys import PrivateKey, address_hex, write_key_file
from core.units import format_amount
from node.config import NodeConfig, load_config
from node.devnet import DEV_ACCOUNT_KEY, dev_genesis, ensure_dev_setup
from node.keystore import keystore_dir
from node.process_tuning import tune_gc, tune_malloc
from node.wiring import load_wiring

if TYPE_CHECKING:  # the node's modules load when a node starts, not for every command
    from node.node import Node

DatadirOption = typer.Option(None, "--datadir", help="Data directory [~/.aichain; ~/.aichain/dev with --dev]")


def init(
    datadir: Path = typer.Option(..., "--datadir", help="Where to create the node's data"),
    chain_id: int = typer.Option(7777, "--chain-id", help="Chain id of the new network"),
    genesis: Path | None = typer.Option(None, "--genesis", help="Use this genesis file instead of creating one"),
    as_json: bool = JsonOption,
) -> None:
    """Create a data directory: a validator key and (unless --genesis) a one-validator genesis.

    The validator key is written unencrypted for a test network; for a real network, create it
    with `aichain-node keys new` and point `validator_key` at it in node.toml.
    """
    datadir.mkdir(parents=True, exist_ok=True)
    key_path = datadir / "validator.pem"
    if key_path.exists():
        fail(f"{key_path} exists already; this data directory is initialised")
    key = PrivateKey.generate()
    write_key_file(key_path, key, None)
    target = datadir / "genesis.json"
    if genesis is not None:
        try:
            Genesis.load(genesis).save(target)
        except AichainError as exc:
            fail(str(exc))
    else:
        dev_genesis(key, chain_id).save(target)
    info = {"datadir": str(datadir), "validator": address_hex(key.address), "genesis": str(target)}
    emit(info, as_json, f"initialised {datadir}\n  validator {info['validator']}\n  genesis   {target}")


def start(
    dev: bool = typer.Option(False, "--dev", help="Single-validator development chain with a funded dev account"),
    datadir: Path | None = DatadirOption,
    config: Path | None = typer.Option(None, "--config", help="TOML config file (see docs/configuration.md)"),
    rpc_addr: str | None = typer.Option(None, "--rpc-addr", help="RPC listen address [127.0.0.1]"),
    rpc_port: int | None = typer.Option(None, "--rpc-port", help="RPC port [8545; 0 picks a free one]"),
    p2p_port: int | None = typer.Option(None, "--p2p-port", help="P2P port [30303]"),
    block_time_ms: int | None = typer.Option(None, "--block-time-ms", help="Override the genesis block time"),
    log_level: str | None = typer.Option(None, "--log-level", help="debug, info, warning, error"),
    bootnodes: str | None = typer.Option(None, "--bootnodes", help="Comma-separated nodekeyhex@host:port list"),
    as_json: bool = typer.Option(False, "--json", help="Print the startup banner as one JSON line"),
) -> None:
    """Start a node. Stop it with Ctrl-C; it finishes the block it is writing and closes cleanly."""
    overrides = {
        "dev": dev or None,
        "datadir": datadir,
        "rpc.addr": rpc_addr,
        "rpc.port": rpc_port,
        "p2p.port": p2p_port,
        "block_time_ms": block_time_ms,
        "log_level": log_level,
        "p2p.bootnodes": bootnodes,
    }
    try:
        cfg = load_config(config, overrides)
    except AichainError as exc:
        fail(str(exc))
    logging.basicConfig(
        level=cfg.log_level.upper(), format="%(asctime)s %(levelname)-5s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if cfg.dev:
        setup = ensure_dev_setup(cfg, keystore_dir())
        if setup.created:
            typer.echo(f"created a dev chain in {cfg.datadir}")
    elif not cfg.genesis_path.exists():
        fail(f"no genesis at {cfg.genesis_path}: run `aichain-node init --datadir {cfg.datadir}` or use --dev")
    try:
        asyncio.run(_run(cfg, as_json))
    except AichainError as exc:
        fail(str(exc))


async def _run(cfg: NodeConfig, as_json: bool) -> None:
    from node.node import Node

    node = Node(cfg, wiring=load_wiring(os.environ, cfg))  # as shipped, unless a test harness says otherwise
    await node.start()
    tune_gc()  # the process runs a node from now on: what it holds after start-up stays
    tune_malloc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _banner(node, cfg, as_json)
    try:
        await stop.wait()
    finally:
        typer.echo("stopping…", err=True)
        await node.stop()


def _banner(node: Node, cfg: NodeConfig, as_json: bool) -> None:
    if as_json:
        info = node.status()
        if cfg.dev:
            info["dev_account"] = address_hex(DEV_ACCOUNT_KEY.address)
            info["dev_key"] = str(keystore_dir() / "dev.pem")
        typer.echo(json.dumps(info), nl=True)
        sys.stdout.flush()
        return
    lines = [
        f"aichain-node running — chain {node.genesis.chain_id} ({node.genesis.chain_name})",
        f"  data       {cfg.datadir}",
        f"  genesis    {cfg.genesis_path}",
        f"  rpc        {node.rpc_url}   (metrics at {node.rpc_url}/metrics)",
        f"  artifacts  {cfg.artifacts_path}   ({len(node.artifacts.artifacts())} stored; {node.rpc_url}/artifacts)",
        f"  head       block {node.chain.head.height}",
    ]
    if node.validator_address() is not None:
        lines.append(f"  validator  {node.validator_address()}  (key {cfg.validator_key_path})")
    if cfg.dev:
        dev = DEV_ACCOUNT_KEY.address
        balance = node.chain.account(dev).balance
        lines.append(f"  dev account {address_hex(dev)}  balance {format_amount(balance)}")
        lines.append(f"              key {keystore_dir() / 'dev.pem'} (name 'dev'; publicly known, dev only)")
    lines.append("Ctrl-C stops the node.")
    typer.echo("\n".join(lines))


def status(rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """Show the node's chain, head, validator, mempool and peers."""
    info = rpc_guarded(client(rpc).rpc, "node_status")
    human = "\n".join(f"{k:18} {v}" for k, v in info.items())
    emit(info, as_json, human)
