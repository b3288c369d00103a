"""The native token: AIC, counted in integer base units (1 AIC = 10**9 units), unsigned 64-bit."""

from __future__ import annotations

from core.errors import AmountOverflow

SYMBOL = "AIC"
DECIMALS = 9
UNIT = 10**DECIMALS
U64_MAX = 2**64 - 1


def checked_add(a: int, b: int, what: str = "amount") -> int:
    total = a + b
    if total > U64_MAX:
        raise AmountOverflow(f"{what} would exceed the 64-bit limit ({total} > {U64_MAX})")
    return total


def checked_sub(a: int, b: int, what: str = "amount") -> int:
    if b > a:
        raise AmountOverflow(f"{what} would go below zero ({a} - {b})")
    return a - b


def format_amount(units: int) -> str:
    """`1500000000` -> `1.5 AIC`."""
    whole, frac = divmod(units, UNIT)
    text = f"{whole:,}"
    if frac:
        text += "." + f"{frac:0{DECIMALS}d}".rstrip("0")
    return f"{text} {SYMBOL}"


def parse_amount(text: str) -> int:
    """Parse `1.5`, `1.5AIC`, `1.5 AIC` (whole tokens) or `1500units` (base units) into base units."""
    raw = text.strip().replace("_", "").replace(",", "")
    if raw.lower().endswith("units"):
        number = raw[: -len("units")].strip()
        if not number.isdigit():
            raise ValueError(f"{text!r}: base units must be a whole number")
        value = int(number)
    else:
        if raw.upper().endswith(SYMBOL):
            raw = raw[: -len(SYMBOL)].strip()
        whole, _, frac = raw.partition(".")
        if not (whole or frac) or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
            raise ValueError(f"{text!r} is not an amount: use e.g. 1.5 (AIC) or 1500units")
        if len(frac) > DECIMALS:
            raise ValueError(f"{text!r} has more than {DECIMALS} decimals")
        value = int(whole or "0") * UNIT + int(frac.ljust(DECIMALS, "0") or "0")
    if value > U64_MAX:
        raise ValueError(f"{text!r} exceeds the 64-bit limit of base units")
    return value
