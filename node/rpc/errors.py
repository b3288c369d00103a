"""The JSON-RPC 2.0 error objects as exceptions, and the compact JSON encoding of responses.

`RpcError(code, message, data=None)` is the general form; the five errors the specification
predefines are subclasses that fix their code and take `(message=None, data=None)`:
ParseError -32700, InvalidRequest -32600, MethodNotFound -32601, InvalidParams -32602,
InternalError -32603. Node errors (`core.errors.AichainError`, codes -32000..-32099) map with
`RpcError.from_aichain`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Final

from core.errors import AichainError

JSONRPC_VERSION: Final = "2.0"


def dumps(obj: Any) -> bytes:
    """Compact, ASCII-only, strict (no NaN/Infinity) JSON; raises TypeError/ValueError otherwise."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def is_json(value: object) -> bool:
    """True when `dumps(value)` succeeds."""
    try:
        dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


class RpcError(Exception):
    """A JSON-RPC error object as an exception: `code`, `message` and optional `data`."""

    def __init__(self, code: int, message: str, data: object | None = None) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r}, data={self.data!r})"

    def to_dict(self) -> dict[str, Any]:
        """The "error" member of a response: data omitted when None."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out

    @classmethod
    def from_aichain(cls, exc: AichainError) -> RpcError:
        """Map a node error: code = exc.rpc_code, message = str(exc), data = exc.data or omitted."""
        return cls(exc.rpc_code, str(exc), exc.data or None)


class _PredefinedError(RpcError):
    """Base of the errors the specification predefines; each subclass fixes its code."""

    CODE: ClassVar[int]
    DEFAULT_MESSAGE: ClassVar[str]

    def __init__(self, message: str | None = None, data: object | None = None) -> None:
        super().__init__(self.CODE, message or self.DEFAULT_MESSAGE, data)


class ParseError(_PredefinedError):
    """-32700: the body is not valid JSON."""

    CODE = -32700
    DEFAULT_MESSAGE = "parse error"


class InvalidRequest(_PredefinedError):
    """-32600: valid JSON that is not a valid request object (or an unacceptable batch/body)."""

    CODE = -32600
    DEFAULT_MESSAGE = "invalid request"


class MethodNotFound(_PredefinedError):
    """-32601: no such method."""

    CODE = -32601
    DEFAULT_MESSAGE = "method not found"


class InvalidParams(_PredefinedError):
    """-32602: the parameters do not fit the method."""

    CODE = -32602
    DEFAULT_MESSAGE = "invalid params"


class InternalError(_PredefinedError):
    """-32603: a fault of the server; details are logged, never sent."""

    CODE = -32603
    DEFAULT_MESSAGE = "internal error"


def encode_error(error: RpcError, id_: Any = None) -> bytes:
    """The encoded response for `error` (for transports refusing a body before dispatch)."""
    return dumps({"jsonrpc": JSONRPC_VERSION, "id": id_, "error": error.to_dict()})


def body_too_large(limit: int) -> InvalidRequest:
    """The -32600 error for a body over `limit` bytes."""
    return InvalidRequest(f"invalid request: body exceeds the limit of {limit} bytes", {"limit": limit})
