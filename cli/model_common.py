"""What the `aichain-node model` and `licence` commands share: the connection to a node as a
key, one-line errors for what a user can meet, progress bars, and how durations read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from aichain_node.client import Client
from aichain_node.terms import TermsError
from cli.artifact_private import parse_node_key
from cli.common import (
    fail,
    load_key,
    resolve_address,
    rpc_url,
    sdk_client,
)
from core.errors import AichainError
from core.units import format_amount

ModelArgument = typer.Argument(..., help="MODEL or MODEL@VERSION (the latest version if none is named)")
FromOption = typer.Option(None, "--from", help="Your key: keystore name or path (signs, and opens your envelopes)")
T = TypeVar("T")


def connect(
    rpc: str | None,
    sender: str | None,
    keystore: Path | None,
    password_file: Path | None,
    node_key: str | None = None,
    admin_token_file: Path | None = None,
) -> Client:
    """A client of the node, as `sender`; `node_key` (0x-hex) pins the node key its signed reads are for;
    `admin_token_file` holds the node's admin token, for its admin calls (uploads, fetches from peers)."""
    key = None if sender is None else load_key(sender, keystore, password_file)
    pinned = None if node_key is None else guarded(lambda: parse_node_key(node_key))
    return sdk_client(rpc_url(rpc), key, node_key=pinned, admin_token_file=admin_token_file)


def guarded(fn: Callable[[], T]) -> T:
    """Run `fn`, turning what a user can meet into one line and exit code 1."""
    try:
        return fn()
    except (AichainError, TermsError) as exc:  # NodeUnreachable too
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or 'a file'}: {exc.strerror or exc}")


@contextmanager
def phases(quiet: bool) -> Iterator[Callable[[str, int | None], Callable[[int], None]]]:
    """A progress display on stderr with one bar per phase (`start(description, total)` → advance)."""
    if quiet:
        yield lambda description, total: lambda n: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:

        def start(description: str, total: int | None) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        yield start


def duration_text(seconds: int) -> str:
    """An offer's licence duration as people write it: `30d`, `12h`, `90m`, `45s`, or `perpetual` (0)."""
    if seconds == 0:
        return "perpetual"
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def owner_spec(spec: str, keystore: Path | None) -> str:
    """`carol:60%` with carol a key name becomes `0x…:60%`; addresses pass as they are."""
    who, colon, share = spec.partition(":")
    if who.lower().startswith("0x"):
        return spec
    return "0x" + guarded(lambda: resolve_address(who, keystore)).hex() + colon + share


def card_lines(card: dict[str, Any] | None) -> list[str]:
    """A model's card (`ModelCard.to_json`) as `model info` prints it, indented."""
    if card is None:
        return ["  (no card recorded)"]
    lines = []
    about = [f"task {card['task']}" if card["task"] else "", f"licence {card['licence']}" if card["licence"] else ""]
    if card["tags"]:
        about.append("tags " + ", ".join(card["tags"]))
    if any(about):
        lines.append("  " + "; ".join(a for a in about if a))
    lines += [f"  {line}" for line in card["description"].splitlines()]
    for kind in ("inputs", "outputs"):
        for tensor in card[kind]:
            dims = ", ".join("?" if d is None else str(d) for d in tensor["shape"])
            lines.append(f"  {kind[:-1]:6} {tensor['name']} {tensor['dtype']} [{dims}]")
    return lines


def offer_line(offer: dict[str, Any]) -> str:
    """One offer (`offer_view`) as `model info` and `licence offer` print it."""
    state = "open" if offer["open"] else "withdrawn"
    terms = [f"price {format_amount(offer['price'])}", duration_text(offer["duration_s"])]
    if offer["per_use_price"]:
        terms.append(f"per use {format_amount(offer['per_use_price'])}")
    if offer["upstream_bps"]:
        terms.append(f"upstream royalty {offer['upstream_bps'] / 100:g}% to {', '.join(offer['upstream_models'])}")
    if offer["max_licensees"]:
        terms.append(f"{offer['licensees']}/{offer['max_licensees']} taken")
    if offer["allow"]:
        terms.append(f"{len(offer['allow'])} allowed address(es)")
    return f"offer {offer['offer']} for @{offer['version']} ({state}): {', '.join(terms)}"
