"""The native token: AIC, counted in integer base units (1 AIC = 10**9 units), unsigned 64-bit."""

from __future__ import annotations

import re

SYMBOL = "AIC"
DECIMALS = 9
UNIT = 10**DECIMALS
U64_MAX = 2**64 - 1
_GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+")


def _digits(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also accepts "²" and "١", which `int` rejects or misreads."""
    return text.isascii() and text.isdigit()


def format_amount(units: int) -> str:
    """`1500000000` -> `1.5 AIC`."""
    whole, frac = divmod(units, UNIT)
    text = f"{whole:,}"
    if frac:
        text += "." + f"{frac:0{DECIMALS}d}".rstrip("0")
    return f"{text} {SYMBOL}"


def parse_amount(text: str) -> int:
    """Parse `1.5`, `1.5AIC`, `1.5 AIC` (whole tokens) or `1500units` (base units) into base units."""
    raw = text.strip().replace("_", "")
    if "," in raw:
        # Commas only as thousands separators ("1,000.25"): "1,5" could mean 1.5 or 15, so it is refused.
        whole_part = raw.split(".", 1)[0].removesuffix(SYMBOL).strip()
        if not _GROUPED.fullmatch(whole_part):
            raise ValueError(f"{text!r}: commas only group thousands (1,000.5); write 1.5 for one and a half")
        raw = raw.replace(",", "")
    if raw.lower().endswith("units"):
        number = raw[: -len("units")].strip()
        if not _digits(number):
            raise ValueError(f"{text!r}: base units must be a whole number")
        value = int(number)
    else:
        if raw.upper().endswith(SYMBOL):
            raw = raw[: -len(SYMBOL)].strip()
        whole, _, frac = raw.partition(".")
        if not (whole or frac) or not _digits(whole or "0") or (frac and not _digits(frac)):
            raise ValueError(f"{text!r} is not an amount: use e.g. 1.5 (AIC) or 1500units")
        if len(frac) > DECIMALS:
            raise ValueError(f"{text!r} has more than {DECIMALS} decimals")
        value = int(whole or "0") * UNIT + int(frac.ljust(DECIMALS, "0") or "0")
    if value > U64_MAX:
        raise ValueError(f"{text!r} exceeds the 64-bit limit of base units")
    return value
