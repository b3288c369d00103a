"""`aichain-node contract …`: compile, deploy, call contracts and read their events.

Arguments on the command line are JSON where they parse as JSON (`25`, `true`, `[1, 2]`,
`"text"`), 0x-hex bytes (`0x0a0a…`), and plain strings otherwise.
"""

from __future__ import annotations

import json
import re
import time
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
    load_key,
    rpc_guarded,
    run_guarded,
)
from core.contract_json import value_from_json, value_to_json
from core.contract_values import encode_call
from core.keys import address_hex, parse_address
from core.transaction import Transaction, TxKind
from core.units import parse_amount
from vm.bytecode import Module
from vm.compiler import CompileError, compile_contract
from vm.contract_tx import encode_deploy
from vm.contracts import contract_address

contract_app = typer.Typer(help="Compile, deploy and call contracts; read their events.", no_args_is_help=True)
GAS_OPTION = typer.Option(5_000_000, "--gas", help="Gas limit of the transaction")
MAX_INT_DIGITS = 78  # 2^255 has 77 digits; a sign makes 78 characters


def _compile(path: Path) -> Module:
    """The compiled contract at `path`; any problem ends the command with one line naming the file and line."""
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        fail(f"no contract source at {path}")
    except OSError as exc:
        fail(f"cannot read the contract source {path}: {exc.strerror or exc}")
    try:
        return compile_contract(source)
    except CompileError as exc:
        fail(f"{path}: {exc}")


def _arg(text: str) -> Any:
    if re.fullmatch(r"-?[0-9]+", text.strip()) and len(text.strip()) > MAX_INT_DIGITS:
        fail(
            f"argument {text[:20]}… has {len(text.strip())} digits: contract integers are 256-bit (at most "
            f"{MAX_INT_DIGITS} digits)"
        )
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    try:
        return value_from_json(value)
    except ValueError as exc:
        fail(f"argument {text!r}: {exc}")


@contract_app.command("compile")
def compile_cmd(
    source: Path = typer.Argument(..., help="Contract source (.py, the contract subset of Python)"),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the bytecode here"),
    as_json: bool = JsonOption,
) -> None:
    """Compile a contract; print its code hash, size and functions (errors name the line)."""
    module = _compile(source)
    code = module.encode()
    if output is not None:
        output.write_bytes(code)
    info = {
        "code_hash": "0x" + module.code_hash.hex(),
        "bytes": len(code),
        "functions": [
            {"name": f.name, "params": f.n_params, "public": f.public, "view": f.view} for f in module.functions
        ],
        "storage": [v.name for v in module.storage],
        "output": str(output) if output else None,
    }
    public = ", ".join(f.name + ("(view)" if f.view else "") for f in module.functions if f.public)
    emit(info, as_json, f"{source}: {len(code)} bytes, code hash {info['code_hash']}\n  public: {public}")


def _send(
    rpc: str | None,
    sender: str,
    keystore: Path | None,
    password_file: Path | None,
    kind: TxKind,
    to: bytes,
    value: int,
    data: bytes,
    gas: int,
) -> tuple[dict[str, Any], bytes, int]:
    """Sign, send and wait for a transaction: (receipt, sender address, nonce)."""
    key = run_guarded(load_key, sender, keystore, password_file)
    node = client(rpc)
    status = rpc_guarded(node.rpc, "node_status")
    genesis = rpc_guarded(node.rpc, "node_genesis")
    nonce = rpc_guarded(node.rpc, "state_getAccount", address_hex(key.address))["pending_nonce"]
    price = int(genesis["params"]["min_gas_price"])
    tx = Transaction(status["chain_id"], key.public_key, nonce, gas, price, kind, to, value, data).signed_by(key)
    started = time.monotonic()
    tx_hash = rpc_guarded(node.send_transaction, tx)
    receipt = rpc_guarded(node.rpc, "tx_wait", tx_hash, 60, timeout=90)
    if receipt is None:
        fail(f"{tx_hash} was accepted but is not in a block after 60 s; check `aichain-node tx get {tx_hash}`")
    receipt["seconds"] = round(time.monotonic() - started, 3)
    receipt["chain_id"], receipt["rpc"] = status["chain_id"], node.url  # which chain it went to
    return receipt, key.address, nonce


def _report(result: dict[str, Any], receipt: dict[str, Any], as_json: bool, first_line: str) -> None:
    """Print what a transaction did; exit 1 if it failed."""
    detail = f"{receipt['status']} in block {receipt.get('block_height')}, gas {receipt['gas_used']}"
    failed = f": {receipt['error']}" if receipt.get("error") else ""
    where = f"\n  sent to chain {receipt['chain_id']} at {receipt['rpc']}"
    emit(result, as_json, f"{first_line}{detail}{failed}{where}")
    if receipt["status"] != "success":
        raise typer.Exit(1)


@contract_app.command("deploy")
def deploy(
    source: Path = typer.Argument(..., help="Contract source to compile and deploy"),
    args: list[str] = typer.Argument(None, help="Constructor arguments"),
    sender: str = typer.Option(..., "--from", help="Deployer key: keystore name, path or address"),
    value: str = typer.Option("0", "--value", help="Native tokens to send to the contract"),
    gas: int = GAS_OPTION,
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Deploy a contract and print its address once the deploy is finalized."""
    module = _compile(source)
    data = run_guarded(encode_deploy, module, [_arg(a) for a in args or []])  # values no contract can take: one line
    receipt, deployer, nonce = _send(
        rpc, sender, keystore, password_file, TxKind.DEPLOY, b"", parse_amount(value), data, gas
    )
    address = address_hex(contract_address(deployer, nonce))
    _report({"address": address, "receipt": receipt}, receipt, as_json, f"{address}\n  ")


@contract_app.command("call")
def call(
    address: str = typer.Argument(..., help="Contract address"),
    function: str = typer.Argument(..., help="Public function"),
    args: list[str] = typer.Argument(None, help="Its arguments"),
    send: bool = typer.Option(False, "--send", help="Send a transaction (needs --from); default: a read-only call"),
    sender: str | None = typer.Option(None, "--from", help="Key to send with (or the caller a read-only call sees)"),
    value: str = typer.Option("0", "--value", help="Native tokens to send with the call (with --send)"),
    gas: int = GAS_OPTION,
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Call a contract: read-only by default (free, nothing changes), or as a transaction with --send."""
    values = [_arg(a) for a in args or []]
    try:
        target = parse_address(address)
    except Exception as exc:
        fail(str(exc))
    if not send:
        params: list[Any] = [address, function, [value_to_json(v) for v in values]]
        if sender is not None:
            key = run_guarded(load_key, sender, keystore, password_file)
            params.append(address_hex(key.address))
        answer = rpc_guarded(client(rpc).rpc, "contract_call", *params)
        emit(answer, as_json, json.dumps(answer["result"]))
        return
    if sender is None:
        fail("--send needs --from KEY")
    data = run_guarded(encode_call, function, values)
    receipt, _, _ = _send(rpc, sender, keystore, password_file, TxKind.CALL, target, parse_amount(value), data, gas)
    _report(receipt, receipt, as_json, "")


@contract_app.command("events")
def events(
    address: str = typer.Argument(..., help="Contract address"),
    name: str | None = typer.Option(None, "--name", help="Only events of this name"),
    from_height: int = typer.Option(1, "--from-height"),
    to_height: int | None = typer.Option(None, "--to-height", help="[head]"),
    rpc: str | None = RpcOption,
    as_json: bool = JsonOption,
) -> None:
    """Events a contract emitted, oldest first."""
    found = rpc_guarded(client(rpc).rpc, "contract_getEvents", address, from_height, to_height, name)
    lines = [f"{e['height']:>8}  {e['name']}  " + " ".join(f"{k}={v}" for k, v in e["fields"].items()) for e in found]
    emit(found, as_json, "\n".join(lines) if lines else "no events")
