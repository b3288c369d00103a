"""`aichain-node licence …`: buy a licence to a model version, list and show the ones held.

For example:

    aichain-node licence buy net@2 --from bob                 # the cheapest open offer
    aichain-node licence buy net@2 --offer 3 --deposit 5 --from bob
    aichain-node licence list --from bob
    aichain-node licence show net@2 --account 0x…
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from aichain_node.client import Client
from aichain_node.terms import ModelRef
from cli.common import (
    JsonOption,
    KeystoreOption,
    PasswordFileOption,
    RpcOption,
    emit,
    fail,
    resolve_address,
    rpc_url,
    sdk_client,
)
from cli.model_common import ModelArgument, connect, guarded
from core.keys import address_hex
from core.units import format_amount, parse_amount

licence_app = typer.Typer(help="Buy licences to models, and see the ones an account holds.", no_args_is_help=True)

AccountOption = typer.Option(None, "--account", help="Whose licences: an address or a key name [the --from key's]")


def _describe(licence: dict[str, Any]) -> str:
    if licence["expires_ms"]:  # block time, in ms since the epoch
        when = datetime.fromtimestamp(licence["expires_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
        expires = f"expires {when}"
    else:
        expires = "never expires"
    state = "valid" if licence["valid"] else "not valid (expired, or its per-use deposit is spent)"
    text = f"{licence['model']}@{licence['version']}  offer {licence['offer']}, {expires}, {state}"
    if licence["uses_charged"] or licence["deposit"]:
        text += f"; {licence['uses_charged']} use(s) charged, deposit {format_amount(licence['deposit'])} left"
    return text


def _whose(
    account: str | None, sender: str | None, keystore: Path | None, password_file: Path | None, rpc: str | None
) -> tuple[Client, bytes]:
    if account is not None:
        return sdk_client(rpc_url(rpc)), guarded(lambda: resolve_address(account, keystore))
    if sender is None:
        fail("say whose licences: --from KEY or --account 0x…")
    node = connect(rpc, sender, keystore, password_file)
    return node, node.address


@licence_app.command("buy")
def buy(
    model: str = ModelArgument,
    offer: int | None = typer.Option(None, "--offer", help="Offer number [the cheapest open offer you may take]"),
    deposit: str | None = typer.Option(
        None, "--deposit", help="Per-use deposit sent with the price, in AIC [10 uses' worth for a per-use offer]"
    ),
    sender: str = typer.Option(..., "--from", help="Buyer key"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Buy a licence: pays the price (split among the owners, and the upstream owners' royalty) and
    publishes your encryption key so the owner's node can release the model's content key to you."""
    ref = guarded(lambda: ModelRef.parse(model))
    units = guarded(lambda: parse_amount(deposit)) if deposit is not None else 0
    with connect(rpc, sender, keystore, password_file) as node:
        licence = guarded(lambda: node.models.buy(ref, offer=offer, deposit=units))
    lines = [
        f"bought {_describe(licence)}",
        f"paid {format_amount(licence['price'])}"
        + (f" + {format_amount(licence['deposit_sent'])} deposit" if licence["deposit_sent"] else ""),
    ]
    lines.append(f"next: aichain-node model pull {licence['model']}@{licence['version']} --from {sender}")
    emit(licence, as_json, "\n".join(lines))


@licence_app.command("list")
def list_cmd(
    sender: str | None = typer.Option(None, "--from", help="Your key (or give --account)"),
    account: str | None = AccountOption,
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Every licence an account has bought, as it stands now."""
    node, who = _whose(account, sender, keystore, password_file, rpc)
    with node:
        found = guarded(lambda: node.models.licences(who))
    emit(found, as_json, "\n".join(map(_describe, found)) if found else f"{address_hex(who)} holds no licences")


@licence_app.command("show")
def show(
    model: str = ModelArgument,
    sender: str | None = typer.Option(None, "--from", help="Your key (or give --account)"),
    account: str | None = AccountOption,
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """The licence an account holds to a version (exit code 1 if none)."""
    node, who = _whose(account, sender, keystore, password_file, rpc)
    with node:
        licence = guarded(lambda: node.models.licence(model, who))
    if licence is None:
        fail(f"{address_hex(who)} holds no licence to {model}: buy one with `aichain-node licence buy {model}`")
    emit(licence, as_json, _describe(licence))
