"""How people write models and licence terms: `name@version`, `price=…,duration=…`, owners' shares.

    ModelRef.parse("resnet@3")       # version 3; "resnet" alone means the latest version
    Offer.parse("price=10,duration=30d,per-use=0.01,royalty-upstream=10%,max=100")

Amounts are AIC (`12.5`) or base units (`1000units`), as everywhere in aichain-node;
durations are seconds or `30s`, `15m`, `12h`, `30d`, `0` (perpetual); royalties a percentage
(`10%`) or basis points (`1000bps`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypedDict

from core.errors import InvalidAddress
from core.keys import parse_address
from core.units import parse_amount

BPS = 10_000
_DURATION = re.compile(r"^([0-9]+)\s*([smhdw]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class TermsError(ValueError):
    """A model reference, an offer or an owner list that cannot be read (the message says how to write it)."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int | None = None  # None: the latest version

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, sep, version = text.strip().rpartition("@")
        if not sep:
            name, version = text.strip(), ""
        if not name or (sep and not version):
            raise TermsError(f"{text!r}: write a model as NAME or NAME@VERSION (e.g. resnet@2)")
        if version == "":
            return cls(name, None)
        if not (version.isascii() and version.isdigit()) or int(version) < 1:
            raise TermsError(f"{text!r}: a version is a number from 1 (e.g. {name}@1)")
        return cls(name, int(version))

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def parse_duration(text: str) -> int:
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise TermsError(f"duration {text!r}: write seconds or 30s, 15m, 12h, 30d, 2w (0: perpetual)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def parse_bps(text: str) -> int:
    value = text.strip().lower()
    try:
        if value.endswith("%"):
            bps = round(float(value[:-1]) * 100)  # "inf%" raises OverflowError
        elif value.endswith("bps"):
            bps = int(value[:-3])
        else:
            bps = int(value)
    except (ValueError, OverflowError):
        raise TermsError(f"royalty {text!r}: write a percentage (10%) or basis points (1000bps)") from None
    if not 0 <= bps <= BPS:
        raise TermsError(f"royalty {text!r}: between 0% and 100%")
    return bps


def _amount(text: str, what: str) -> int:
    try:
        return parse_amount(text)
    except ValueError as exc:
        raise TermsError(f"{what} {text!r}: {exc}") from None


class _Terms(TypedDict, total=False):
    """The fields of an `Offer` that a written offer sets."""

    price: int
    duration_s: int
    per_use_price: int
    max_licensees: int
    allow: tuple[bytes, ...]
    upstream_bps: int


@dataclass(frozen=True)
class Offer:
    """Licence terms an owner offers for one version (the licensing contract's make_offer)."""

    price: int = 0  # base units
    duration_s: int = 0  # 0: perpetual
    per_use_price: int = 0  # 0: not metered
    max_licensees: int = 0  # 0: unlimited
    allow: tuple[bytes, ...] = field(default=())  # empty: open to anyone
    upstream_bps: int = 0  # share of every payment to the parent models' owners

    @classmethod
    def parse(cls, text: str) -> Offer:
        values: _Terms = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip().lower().replace("_", "-")
            if not sep:
                raise TermsError(
                    f"offer term {part!r}: write key=value (price=10,duration=30d,per-use=0.1,"
                    "royalty-upstream=10%,max=100,allow=0x…+0x…)"
                )
            if key == "price":
                values["price"] = _amount(value, "price")
            elif key == "duration":
                values["duration_s"] = parse_duration(value)
            elif key in ("per-use", "per-use-price"):
                values["per_use_price"] = _amount(value, "per-use price")
            elif key in ("max", "max-licensees"):
                if not (value.strip().isascii() and value.strip().isdigit()):
                    raise TermsError(f"max licensees {value!r}: a whole number (0: unlimited)")
                values["max_licensees"] = int(value)
            elif key in ("royalty-upstream", "upstream"):
                values["upstream_bps"] = parse_bps(value)
            elif key == "allow":
                try:
                    values["allow"] = tuple(parse_address(a) for a in value.split("+") if a)
                except (ValueError, InvalidAddress) as exc:
                    raise TermsError(f"allow-list {value!r}: addresses joined by '+': {exc}") from None
            else:
                raise TermsError(
                    f"unknown offer term {key!r}: the terms are price, duration, per-use, royalty-upstream, max, allow"
                )
        return cls(**values)


def parse_owners(specs: list[str]) -> list[tuple[bytes, int]]:
    """`0xADDR:60%` (or `:6000bps`, or a bare address for an equal share) → [(address, bps)] summing to 10,000."""
    owners: list[tuple[bytes, int | None]] = []
    for spec in specs:
        address, _, share = spec.partition(":")
        try:
            who = parse_address(address)
        except (ValueError, InvalidAddress) as exc:
            raise TermsError(f"owner {spec!r}: {exc}") from None
        try:
            owners.append((who, parse_bps(share) if share else None))
        except TermsError as exc:
            raise TermsError(
                f"owner {spec!r}: the share is a percentage (60%) or basis points (6000bps); {exc}"
            ) from None
    if len({who for who, _ in owners}) != len(owners):
        raise TermsError(f"owner shares {specs}: each owner once")
    given = sum(s for _, s in owners if s is not None)
    unset = [i for i, (_, s) in enumerate(owners) if s is None]
    result = [(who, share or 0) for who, share in owners]
    if unset:
        each, extra = divmod(BPS - given, len(unset))
        for n, i in enumerate(unset):
            result[i] = (result[i][0], each + (1 if n < extra else 0))
    if sum(s for _, s in result) != BPS or any(s <= 0 for _, s in result):
        raise TermsError(f"owner shares {specs}: each positive, together 100% (10000bps)")
    return result


__all__ = ["ModelRef", "Offer", "TermsError", "parse_bps", "parse_duration", "parse_owners"]
