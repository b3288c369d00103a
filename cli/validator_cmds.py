"""`aichain-node validator …`: the validator set and governance votes to change it."""

from __future__ import annotations

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
    rpc_guarded,
    run_guarded,
)
from core.keys import address_hex
from core.transaction import Transaction, TxKind
from vm.gas import intrinsic_gas
from vm.validators import ADD, REMOVE, encode_vote

validator_app = typer.Typer(
    help="The validator set, and votes to change it (a change needs more than 2/3 of the power; "
    "it takes effect two blocks after the deciding vote).",
    no_args_is_help=True,
)


@validator_app.command("list")
def list_validators(rpc: str | None = RpcOption, as_json: bool = JsonOption) -> None:
    """The current validators with their voting power."""
    rows = rpc_guarded(client(rpc).rpc, "validator_list")
    human = "\n".join(f"{r['address']}  power {r['power']}  key {r['public_key']}" for r in rows)
    emit(rows, as_json, human)


def _vote(
    action: int,
    public_key: str,
    power: int,
    sender: str,
    rpc: str | None,
    keystore: Path | None,
    password_file: Path | None,
    as_json: bool,
) -> None:
    try:
        key_bytes = bytes.fromhex(public_key.removeprefix("0x"))
    except ValueError:
        fail("the validator public key must be 64 hex digits (see `aichain-node keys show`)")
    if len(key_bytes) != 32:
        fail("the validator public key must be 32 bytes (64 hex digits)")
    key = run_guarded(load_key, sender, keystore, password_file)
    node = client(rpc)
    status = rpc_guarded(node.rpc, "node_status")
    nonce = rpc_guarded(node.rpc, "state_getAccount", address_hex(key.address))["pending_nonce"]
    data = encode_vote(action, key_bytes, power)
    tx = Transaction(
        status["chain_id"], key.public_key, nonce, intrinsic_gas(data), 1, TxKind.VALIDATOR_VOTE, b"", 0, data
    ).signed_by(key)
    tx_hash = rpc_guarded(node.send_transaction, tx)
    receipt = rpc_guarded(node.rpc, "tx_wait", tx_hash, 60, timeout=90)
    if receipt is None:
        fail(f"vote {tx_hash} was accepted but is not in a block after 60 s")
    events = receipt.get("events", [])
    emit(
        {"hash": tx_hash, "receipt": receipt},
        as_json,
        f"{tx_hash}: {receipt['status']}"
        + (f" ({receipt['error']})" if receipt.get("error") else "")
        + "".join(f"\n  {e['name']}: {e['fields']}" for e in events),
    )
    if receipt["status"] != "success":
        raise typer.Exit(1)


@validator_app.command("propose-add")
def propose_add(
    public_key: str = typer.Argument(..., help="The new validator's Ed25519 public key (hex)"),
    power: int = typer.Option(10, "--power", help="Its voting power"),
    sender: str = typer.Option(..., "--from", help="Your validator key (name, path or address)"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Vote to add a validator (or change its power)."""
    _vote(ADD, public_key, power, sender, rpc, keystore, password_file, as_json)


@validator_app.command("propose-remove")
def propose_remove(
    public_key: str = typer.Argument(..., help="The validator's Ed25519 public key (hex)"),
    sender: str = typer.Option(..., "--from", help="Your validator key (name, path or address)"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Vote to remove a validator."""
    _vote(REMOVE, public_key, 0, sender, rpc, keystore, password_file, as_json)
