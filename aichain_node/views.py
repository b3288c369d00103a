"""What the system contracts answer, as plain dicts with 0x-hex addresses and `sha256:` ids, ready for JSON."""

from __future__ import annotations

from typing import Any

from core.artifact import format_id
from core.keys import address_hex


def version_view(name: str, number: int, raw: list[Any]) -> dict[str, Any]:
    artifact, parents, trained_on, publisher, height = raw
    return {
        "model": name,
        "version": number,
        "artifact": format_id(artifact),
        "parents": [f"{p[0]}@{p[1]}" for p in parents],
        "datasets": [format_id(d) for d in trained_on],
        "publisher": address_hex(publisher),
        "height": height,
    }


def offer_view(name: str, number: int, raw: list[Any]) -> dict[str, Any]:
    version, price, duration, per_use, max_licensees, allow, upstream_bps, upstream, is_open, licensees = raw
    return {
        "model": name,
        "offer": number,
        "version": version,
        "price": price,
        "duration_s": duration,
        "per_use_price": per_use,
        "max_licensees": max_licensees,
        "allow": [address_hex(a) for a in allow],
        "upstream_bps": upstream_bps,
        "upstream_models": list(upstream),
        "open": bool(is_open),
        "licensees": licensees,
    }


def licence_view(name: str, version: int, who: bytes, raw: list[Any]) -> dict[str, Any]:
    offer, expires, uses, deposit, valid = raw
    return {
        "model": name,
        "version": version,
        "licensee": address_hex(who),
        "offer": offer,
        "expires_ms": expires,
        "uses_charged": uses,
        "deposit": deposit,
        "valid": bool(valid),
    }


def event_field(receipt: dict[str, Any], name: str, field: str) -> Any:
    for event in receipt["events"]:
        if event["name"] == name:
            return event["fields"][field]
    raise KeyError(f"the receipt of {receipt['tx_hash']} has no {name} event")


__all__ = ["event_field", "licence_view", "offer_view", "version_view"]
