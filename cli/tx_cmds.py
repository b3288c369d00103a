"""`aichain-node tx …`: sign and send transactions, read them back."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from cli.common import (
    JsonOption,
    KeystoreOption,
    PasswordFileOption,
    RpcOption,
    client,
    emit,
    fail,
    load_key,
    resolve_address,
    rpc_guarded,
    run_guarded,
    sent_to,
)
from core.keys import address_hex
from core.transaction import Transaction, TxKind
from core.units import format_amount, parse_amount
from vm.gas import intrinsic_gas

tx_app = typer.Typer(help="Send transactions and look them up.", no_args_is_help=True)


@tx_app.command("transfer")
def transfer(
    to: str = typer.Option(..., "--to", help="Recipient: address (0x + 40 hex) or key name"),
    amount: str = typer.Option(..., "--amount", help="Amount: 1.5 (AIC), '1.5 AIC' or 1500units"),
    sender: str = typer.Option(..., "--from", help="Sender key: name in the keystore (e.g. dev), path, or address"),
    gas_price: int | None = typer.Option(None, "--gas-price", help="Units per gas [chain minimum]"),
    nonce: int | None = typer.Option(None, "--nonce", help="Nonce [next one for the sender]"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the transfer is in a finalized block"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Send native tokens. Prints the transaction hash and, with --wait (default), its receipt."""
    try:
        value = parse_amount(amount)
    except ValueError as exc:
        fail(str(exc))
    recipient = run_guarded(resolve_address, to, keystore)
    key = run_guarded(load_key, sender, keystore, password_file)
    node = client(rpc)
    status = rpc_guarded(node.rpc, "node_status")
    genesis = rpc_guarded(node.rpc, "node_genesis")
    if nonce is None:
        nonce = rpc_guarded(node.rpc, "state_getAccount", address_hex(key.address))["pending_nonce"]
    price = gas_price if gas_price is not None else int(genesis["params"]["min_gas_price"])
    tx = Transaction(
        status["chain_id"], key.public_key, nonce, intrinsic_gas(b""), price, TxKind.TRANSFER, recipient, value, b""
    ).signed_by(key)
    started = time.monotonic()
    tx_hash = rpc_guarded(node.send_transaction, tx)
    result: dict[str, object] = {
        "hash": tx_hash,
        "from": address_hex(key.address),
        "to": address_hex(recipient),
        "value": str(value),
        "nonce": nonce,
        "chain_id": status["chain_id"],
        "rpc": node.url,
    }
    if not wait:
        emit(result, as_json, f"{tx_hash}\n  {sent_to(node)}")
        return
    receipt = rpc_guarded(node.rpc, "tx_wait", tx_hash, 60, timeout=90)
    if receipt is None:
        fail(f"{tx_hash} was accepted but is not in a block after 60 s; check `aichain-node tx get {tx_hash}`")
    result["receipt"] = receipt
    result["seconds"] = round(time.monotonic() - started, 3)
    human = (
        f"{tx_hash}\n  {format_amount(value)} from {result['from']} to {result['to']}\n"
        f"  {receipt['status']} in block {receipt['block_height']} after {result['seconds']} s"
        + (f": {receipt['error']}" if receipt.get("error") else "")
        + f"\n  {sent_to(node)}"
    )
    emit(result, as_json, human)
    if receipt["status"] != "success":
        raise typer.Exit(1)


@tx_app.command("get")
def tx_get(tx_hash: str = typer.Argument(...), rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """A transaction by hash: committed (with its block), pending, or evicted (with the reason)."""
    info = rpc_guarded(client(rpc).rpc, "tx_get", tx_hash)
    if info is None:
        fail(
            f"no transaction {tx_hash} on chain or in the mempool, and this node evicted none by that hash "
            "(sent to another node? send it again)"
        )
    if as_json or info.get("status") != "evicted":
        emit(info, as_json)
        return
    by = f" (by {info['by']})" if info.get("by") else ""
    emit(info, False, f"{tx_hash}\n  evicted uncommitted: {info['reason']}{by}\n  {info['message']}")
    raise typer.Exit(1)


@tx_app.command("receipt")
def tx_receipt(tx_hash: str = typer.Argument(...), rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """The receipt of a committed transaction."""
    info = rpc_guarded(client(rpc).rpc, "tx_getReceipt", tx_hash)
    if info is None:
        fail(f"no receipt for {tx_hash}: not committed (yet?)")
    emit(info, as_json)
