"""Contract values as JSON, as the `contract_` RPC namespace and its clients write them.

Integers are numbers, bytes 0x-hex strings, other strings as they are (a string that itself
starts with 0x is written `{"str": "0x…"}`), true/false, null, arrays; a map (memory-only, so
only in a call's result) is an array of [key, value] pairs. The node reads arguments and
writes results with these two functions, and so do the SDK and the CLI.
"""

from __future__ import annotations

from typing import Any

from core.contract_values import MAX_DEPTH
from core.errors import AichainError


class JsonTooLarge(AichainError):
    """A value whose JSON form is over the bounds it was given: too many bytes, or lists nested too deeply."""


def value_from_json(value: Any, depth: int = 0) -> Any:
    """A contract value from its JSON form; `ValueError` saying what is wrong with one that is not."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _hex_bytes(value) if value.startswith(("0x", "0X")) else _text(value)
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise ValueError(f"contract values nest at most {MAX_DEPTH} arrays deep")
        return [value_from_json(v, depth + 1) for v in value]
    if isinstance(value, dict) and set(value) == {"str"} and isinstance(value["str"], str):
        return _text(value["str"])
    raise ValueError("contract values are numbers, 0x-hex bytes, strings, booleans, null or arrays")


def value_to_json(value: Any, *, max_bytes: int | None = None, max_depth: int = 16) -> Any:
    """The JSON form of a contract value. With `max_bytes`, `JsonTooLarge` when it would take more than
    about that many bytes of JSON or nest lists more than `max_depth` deep (a result a node sends back)."""
    return _to_json(value, None if max_bytes is None else [max_bytes], 0, max_bytes or 0, max_depth)


def _to_json(value: Any, budget: list[int] | None, depth: int, max_bytes: int, max_depth: int) -> Any:
    if budget is not None:
        budget[0] -= len(value) * 2 + 4 if isinstance(value, bytes | str) else 8
        if budget[0] < 0:
            raise JsonTooLarge(f"the result is over {max_bytes:,} bytes of JSON: ask for less at a time")
        if depth > max_depth:
            raise JsonTooLarge(f"the result nests more than {max_depth} lists deep")
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return {"str": value}
    if isinstance(value, list):
        return [_to_json(v, budget, depth + 1, max_bytes, max_depth) for v in value]
    if isinstance(value, dict):
        return [[_to_json(k, budget, depth + 1, max_bytes, max_depth),
                 _to_json(v, budget, depth + 1, max_bytes, max_depth)] for k, v in value.items()]  # fmt: skip
    return value


def _hex_bytes(value: str) -> bytes:
    if len(value) % 2:
        raise ValueError("expected 0x-prefixed hex data with an even number of digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise ValueError("expected 0x-prefixed hex data (found a non-hex character)") from exc


def _text(value: str) -> str:
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff): it is not Unicode text") from None
    return value


__all__ = ["JsonTooLarge", "value_from_json", "value_to_json"]
