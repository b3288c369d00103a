"""What to tell an account that may not use a version: why, and the one step that helps.

A licence that expired, a per-use deposit that is spent, and no licence at all need different
steps (buy again, top up, buy), and a version without an open offer cannot be bought at all.
These rules read only views (`licence_view`, `offer_view`) and the head's time, so the SDK's
errors and the CLI say the same thing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.units import format_amount


def when(ms: int) -> str:
    """A block time (ms since the epoch) as people read it."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def may_take(offer: dict[str, Any], who_hex: str) -> bool:
    """An open offer that `who_hex` is allowed to take and that has a licence left."""
    return (
        offer["open"]
        and (not offer["allow"] or who_hex in offer["allow"])
        and (offer["max_licensees"] == 0 or offer["licensees"] < offer["max_licensees"])
    )


def licence_state(licence: dict[str, Any], offers: list[dict[str, Any]], head_ms: int) -> str:
    """`valid`, `expired` (or ended) or `deposit spent`, for a licence (`licence_view`) at the head's time."""
    if licence["valid"]:
        return "valid"
    if licence["expires_ms"] and licence["expires_ms"] <= head_ms:
        return "expired"
    terms = next((o for o in offers if o["offer"] == licence["offer"]), None)
    if terms is not None and terms["per_use_price"] > licence["deposit"]:
        return "deposit spent"
    return "expired"


def why_not(
    name: str, version: int, who_hex: str, licence: dict[str, Any] | None, offers: list[dict[str, Any]], head_ms: int
) -> str:
    """Why `who_hex` may not use `name@version`, and what to do (`offers`: the model's, from `offer_view`)."""
    ref = f"{name}@{version}"
    if licence is not None:
        state = licence_state(licence, offers, head_ms)
        if state == "deposit spent":
            terms = next(o for o in offers if o["offer"] == licence["offer"])
            return (
                f"{who_hex}'s licence to {ref} (offer {licence['offer']}) is metered per use, and its deposit "
                f"({format_amount(licence['deposit'])} left) does not cover one more use at "
                f"{format_amount(terms['per_use_price'])}: add to it with "
                f"`aichain-node licence top-up {ref} --deposit AMOUNT` (buying again would charge the price again)"
            )
        if state == "expired":
            return (
                f"{who_hex}'s licence to {ref} (offer {licence['offer']}) ended at {when(licence['expires_ms'])}: "
                f"a new one costs the offer's price again (`aichain-node licence buy {ref}`)"
            )
    takeable = [o for o in offers if o["version"] == version and may_take(o, who_hex)]
    if takeable:
        cheapest = min(takeable, key=lambda o: (o["price"], o["offer"]))
        return (
            f"{who_hex} holds no licence to {ref}: buy one with `aichain-node licence buy {ref}` "
            f"(offer {cheapest['offer']}, {format_amount(cheapest['price'])})"
        )
    elsewhere = sorted({o["version"] for o in offers if o["version"] != version and may_take(o, who_hex)})
    hint = (
        "versions with an offer you may take: " + ", ".join(f"{name}@{v}" for v in elsewhere)
        if elsewhere
        else f"ask its owners to make one (`aichain-node licence offer {ref} price=…`)"
    )
    return f"{who_hex} holds no licence to {ref}, and {ref} has no open offer {who_hex} may take: {hint}"


__all__ = ["licence_state", "may_take", "when", "why_not"]
