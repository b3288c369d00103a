"""`aichain-node keys …` and `aichain-node account …`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli.common import (
    JsonOption,
    KeystoreOption,
    PasswordFileOption,
    RpcOption,
    client,
    emit,
    fail,
    password_from,
    resolve_address,
    rpc_guarded,
    run_guarded,
)
from core.errors import AichainError
from core.keys import PrivateKey, address_hex
from core.units import format_amount
from node.keystore import key_path, keystore_dir, list_keys, save_key

keys_app = typer.Typer(help="Create and list keys (password-encrypted PKCS#8 PEM files).", no_args_is_help=True)
account_app = typer.Typer(help="Read accounts: balance, nonce, state proof.", no_args_is_help=True)


@keys_app.command("new")
def keys_new(
    name: str = typer.Argument(..., help="Name of the key in the keystore, e.g. alice"),
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    no_password: bool = typer.Option(False, "--no-password", help="Store unencrypted (test networks only)"),
    as_json: bool = JsonOption,
) -> None:
    """Create a new Ed25519 key and store it encrypted under NAME."""
    password = None if no_password else password_from(password_file, prompt="Password for the new key: ", confirm=True)
    if password is None and not no_password:
        fail("give a password (--password-file, AICHAIN_PASSWORD, or type it) or pass --no-password for a test key")
    key = PrivateKey.generate()
    try:
        path = save_key(name, key, keystore_dir(keystore), password)
    except AichainError as exc:
        fail(str(exc))
    info = {"name": name, "address": address_hex(key.address), "path": str(path), "encrypted": password is not None}
    emit(info, as_json, f"{info['address']}  {name}  ({path})")


@keys_app.command("list")
def keys_list(keystore: Path | None = KeystoreOption, as_json: bool = JsonOption) -> None:
    """List the keys in the keystore (addresses of encrypted keys show as 'encrypted')."""
    rows = [
        {"name": n, "path": str(p), "address": a, "encrypted": a is None}
        for n, p, a in list_keys(keystore_dir(keystore))
    ]
    human = "\n".join(f"{r['address'] or 'encrypted':42}  {r['name']}" for r in rows) or "no keys"
    emit(rows, as_json, human)


@keys_app.command("show")
def keys_show(
    name: str = typer.Argument(..., help="Key name, path or address"),
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a key's address and public key (never the private key)."""
    from cli.common import load_key

    key = run_guarded(load_key, name, keystore, password_file)
    path = key_path(name, keystore_dir(keystore))
    info = {"address": address_hex(key.address), "public_key": "0x" + key.public_key.hex(), "path": str(path)}
    emit(info, as_json, "\n".join(f"{k:11} {v}" for k, v in info.items()))


def _account(who: str, rpc: str | None, keystore: Path | None) -> tuple[bytes, dict[str, Any]]:
    """The address `who` names, and the node's `state_getAccount` answer for it."""
    address = run_guarded(resolve_address, who, keystore)
    return address, rpc_guarded(client(rpc).rpc, "state_getAccount", address_hex(address))


@account_app.command("balance")
def account_balance(
    who: str = typer.Argument(..., help="Address (0x…) or key name"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Balance of an account at the head block."""
    _, info = _account(who, rpc, keystore)
    balance = int(info["balance"])
    data = {
        "address": info["address"],
        "balance": str(balance),
        "balance_aic": format_amount(balance),
        "nonce": info["nonce"],
        "height": info["height"],
    }
    emit(data, as_json, f"{format_amount(balance)}  ({balance} units) at block {info['height']}")


@account_app.command("show")
def account_show(
    who: str = typer.Argument(..., help="Address (0x…) or key name"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    as_json: bool = JsonOption,
) -> None:
    """Balance, nonce and the state proof of an account, verified here against the state root."""
    from storage.state_proof import Proof, verify_proof
    from vm.account import account_key

    address, info = _account(who, rpc, keystore)
    proof = Proof.decode(bytes.fromhex(info["proof"][2:]))
    value = None if info["value"] is None else bytes.fromhex(info["value"][2:])
    ok = verify_proof(bytes.fromhex(info["state_root"][2:]), account_key(address), value, proof)
    info["proof_verified"] = ok
    human = "\n".join(f"{k:14} {v}" for k, v in info.items() if k not in ("proof", "value", "key"))
    emit(info, as_json, human)
    if not ok:
        fail("the proof does NOT verify against the state root")
