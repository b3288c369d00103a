"""`aichain-node licence …`: offers (for owners), and licences (for buyers): buy, list, show, top up, end.

For example:

    aichain-node licence offer net@2 price=10,duration=30d,per-use=0.1 --from alice   # an owner
    aichain-node licence withdraw-offer net 3 --from alice
    aichain-node licence buy net@2 --from bob                 # the cheapest open offer
    aichain-node licence buy net@2 --offer 3 --deposit 5 --from bob
    aichain-node licence list --from bob
    aichain-node licence show net@2 --account 0x…
    aichain-node licence top-up net@2 --deposit 2 --from bob  # more per-use deposit
    aichain-node licence end net@2 --from bob                 # stop it now
    aichain-node licence withdraw net@2 --from bob            # the deposit, a day after the end
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import typer

from aichain_node.client import Client
from aichain_node.licence_advice import licence_state, when
from aichain_node.terms import ModelRef, Offer
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
    sent_to,
)
from cli.model_common import ModelArgument, connect, guarded, offer_line
from core.keys import address_hex
from core.units import format_amount, parse_amount

licence_app = typer.Typer(
    help="Offer licences (owners); buy, top up and end them, and see the ones an account holds (buyers).",
    no_args_is_help=True,
)

AccountOption = typer.Option(None, "--account", help="Whose licences: an address or a key name [the --from key's]")


_STATES = {
    "valid": "valid",
    "expired": "not valid: it has ended (a new one costs the price again)",
    "deposit spent": "not valid: its per-use deposit is spent (licence top-up adds to it)",
}


def _describe(licence: dict[str, Any], state: str | None = None) -> str:
    """One licence (`licence_view`); `state` from `licence_state` says why one is not valid."""
    expires = f"expires {when(licence['expires_ms'])}" if licence["expires_ms"] else "never expires"
    text = f"{licence['model']}@{licence['version']}  offer {licence['offer']}, {expires}, "
    text += _STATES.get(state or "", "valid" if licence["valid"] else "not valid")
    if licence["uses_charged"] or licence["deposit"]:
        text += f"; {licence['uses_charged']} use(s) charged, deposit {format_amount(licence['deposit'])} left"
    return text


def _states_of(node: Client, licences: list[dict[str, Any]]) -> list[str]:
    """Why each licence is (not) valid, read at the head: the head once, each model's offers once."""
    if all(licence["valid"] for licence in licences):
        return ["valid"] * len(licences)
    head_ms = int(guarded(node.head)["timestamp_ms"])
    offers: dict[str, list[dict[str, Any]]] = {}
    states = []
    for licence in licences:
        model = licence["model"]
        if not licence["valid"] and model not in offers:
            offers[model] = guarded(functools.partial(node.models.offers, model))
        states.append(licence_state(licence, offers.get(model, []), head_ms))
    return states


def _state_of(node: Client, licence: dict[str, Any]) -> str:
    return _states_of(node, [licence])[0]


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
    """Buy a licence to a version, or extend the one you hold under the same offer.

    Pays the price (split among the owners, and the upstream owners' royalty) and publishes your
    encryption key so the owner's node can release the model's content key to you. A purchase the
    chain would refuse (a licence that never expires, or one running under another offer) is refused
    here first, before it costs gas."""
    ref = guarded(lambda: ModelRef.parse(model))
    units = guarded(lambda: parse_amount(deposit)) if deposit is not None else 0
    with connect(rpc, sender, keystore, password_file) as node:
        licence = guarded(lambda: node.models.buy(ref, offer=offer, deposit=units))
        where = sent_to(node)
    lines = [
        f"bought {_describe(licence)}",
        f"paid {format_amount(licence['price'])}"
        + (f" + {format_amount(licence['deposit_sent'])} deposit" if licence["deposit_sent"] else ""),
    ]
    lines.append(f"next: aichain-node model pull {licence['model']}@{licence['version']} --from {sender}")
    emit(licence, as_json, "\n".join([*lines, where]))


@licence_app.command("offer")
def offer_cmd(
    model: str = ModelArgument,
    terms: str = typer.Argument(
        ...,
        help="price=AIC[,duration=30d|12h|0][,per-use=AIC][,max=N][,allow=0x…+0x…][,royalty-upstream=10%]",
    ),
    sender: str = typer.Option(..., "--from", help="An owner's key"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Offer licences to a version (owners only).

    The terms say its price, how long a licence runs (0: for ever), a price per recorded use paid from
    the buyer's deposit, how many may buy, who may buy, and the share paid to the owners of the models
    it derives from."""
    ref = guarded(lambda: ModelRef.parse(model))
    offer = guarded(lambda: Offer.parse(terms))
    with connect(rpc, sender, keystore, password_file) as node:
        number = guarded(lambda: node.models.make_offer(ref, offer))
        made = next(o for o in guarded(lambda: node.models.offers(ref.name)) if o["offer"] == number)
        where = sent_to(node)
    emit(made, as_json, f"{offer_line(made)}\nbuyers: aichain-node licence buy {ref.name}@{made['version']}\n{where}")


@licence_app.command("withdraw-offer")
def withdraw_offer(
    model: str = typer.Argument(..., help="Model name"),
    offer: int = typer.Argument(..., help="The offer's number (see `aichain-node model info MODEL`)"),
    sender: str = typer.Option(..., "--from", help="An owner's key"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Sell no more licences under an offer (owners only); licences already sold stay as they are."""
    with connect(rpc, sender, keystore, password_file) as node:
        guarded(lambda: node.models.withdraw_offer(model, offer))
        now = next(o for o in guarded(lambda: node.models.offers(model)) if o["offer"] == offer)
        where = sent_to(node)
    emit(now, as_json, f"{offer_line(now)}\n{where}")


@licence_app.command("top-up")
def top_up(
    model: str = ModelArgument,
    deposit: str = typer.Option(..., "--deposit", help="AIC to add to your per-use deposit"),
    sender: str = typer.Option(..., "--from", help="The licensee's key"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Add to the deposit a per-use licence charges its uses from.

    A licence whose deposit no longer covers a use is valid again once topped up: no new price is paid."""
    ref = guarded(lambda: ModelRef.parse(model))
    units = guarded(lambda: parse_amount(deposit))
    with connect(rpc, sender, keystore, password_file) as node:
        licence = guarded(lambda: node.models.top_up(ref, units))
        state = _state_of(node, licence)
        where = sent_to(node)
    emit(licence, as_json, f"topped up {_describe(licence, state)}\n{where}")


@licence_app.command("end")
def end(
    model: str = ModelArgument,
    sender: str = typer.Option(..., "--from", help="The licensee's key"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """End your licence now.

    What is left of its deposit can be withdrawn a day later: until then, the owners may still charge
    the uses you made."""
    ref = guarded(lambda: ModelRef.parse(model))
    with connect(rpc, sender, keystore, password_file) as node:
        licence = guarded(lambda: node.models.end_licence(ref))
        where = sent_to(node)
    name = f"{licence['model']}@{licence['version']}"
    lines = [f"ended {name} at {when(licence['expires_ms'])}"]
    if licence["deposit"]:
        lines.append(f"deposit {format_amount(licence['deposit'])}: aichain-node licence withdraw {name} after a day")
    emit(licence, as_json, "\n".join([*lines, where]))


@licence_app.command("withdraw")
def withdraw(
    model: str = ModelArgument,
    sender: str = typer.Option(..., "--from", help="The licensee's key"),
    rpc: str | None = RpcOption,
    keystore: Path | None = KeystoreOption,
    password_file: Path | None = PasswordFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Take back what is left of a licence's per-use deposit, a day after the licence ended."""
    ref = guarded(lambda: ModelRef.parse(model))
    with connect(rpc, sender, keystore, password_file) as node:
        amount = guarded(lambda: node.models.withdraw_deposit(ref))
        where = sent_to(node)
    emit({"model": ref.name, "withdrawn": amount}, as_json, f"withdrew {format_amount(amount)}\n{where}")


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
        lines = [_describe(licence, state) for licence, state in zip(found, _states_of(node, found), strict=True)]
    emit(found, as_json, "\n".join(lines) if found else f"{address_hex(who)} holds no licences")


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
            fail(guarded(lambda: node.models.why_not_licensed(model, who)))
        state = _state_of(node, licence)
        advice = None if state == "valid" else guarded(lambda: node.models.why_not_licensed(model, who))
    emit(licence, as_json, _describe(licence, state) + (f"\n{advice}" if advice else ""))
