"""Transport-free JSON-RPC 2.0 protocol: request parsing, parameter binding, dispatch, batches.

Follows https://www.jsonrpc.org/specification strictly and knows nothing of blockchain methods;
those are registered on a `MethodRegistry` by other modules. Rules:

* Bytes that are not UTF-8 JSON (a leading BOM is ignored; NaN/Infinity are not JSON; a number
  of more than 4300 digits is refused) -> -32700 "parse error" with id null. Bodies over
  `RpcLimits.max_body_bytes`, or with more than `RpcLimits.max_json_values` values (counted,
  before parsing, by their separators `,` and `:`, those inside strings included) -> -32600,
  id null: parsing is work on the event loop, and its cost is the number of values.
* A request is an object with "jsonrpc" exactly "2.0", "method" a string, "params" (optional) an
  array or an object, and "id" (optional) a string, a number or null. Anything else -> -32600
  "invalid request"; its id is echoed when it has a valid one, null otherwise. Other members are
  ignored.
* A request without an "id" member is a notification: its method runs but nothing is answered,
  not even an error. `"id": null` is NOT a notification (it is answered, with id null).
* A batch is a non-empty array of requests, at most `RpcLimits.max_batch` long; otherwise one
  -32600 error object (not an array) answers it. Elements are handled one after another, in
  order, each independently; invalid elements get their own error, notifications get nothing,
  and a batch of notifications only gets no response at all (None). The loop gets a turn between
  elements (a batch of 1000 slow methods never holds it), and once the answers of a batch pass
  `RpcLimits.max_batch_response_bytes` the elements after are not run: each gets -32600
  saying so (as geth's --rpc.batch-response-max-size).
* Unknown method -> -32601 naming it. An admin method (registered with `admin=True`) called by a
  request that may not administer the node (`caller.admin_refusal`) -> -32040 saying why, before
  its params are read. Params nested more than `RpcLimits.max_param_depth`
  arrays or objects deep -> -32602 before any method sees them (no parser recurses that far).
  Parameters are bound by `Param` declarations, given by
  position (array) or by name (object); too many, missing required, unknown names or values
  rejected by a parser -> -32602 naming the parameter, its position and the reason. A null or
  absent optional parameter takes its default (as geth does).
* Handler raising `RpcError` -> that error; `core.errors.AichainError` -> its `rpc_code`,
  `str(exc)` and `data` (omitted when empty); any other exception -> -32603 "internal error"
  (traceback logged, never sent). A result that is not JSON-serialisable -> -32603 as well.
* Every error answered is reported to `on_error(code)` (the node counts them in /metrics,
  `aichain_rpc_errors_total{code}`: e.g. -32040, admin calls refused).
* Responses are `{"jsonrpc":"2.0","id":..,"result":..}` or
  `{"jsonrpc":"2.0","id":..,"error":{"code":..,"message":..[,"data":..]}}`, compact, ASCII-only
  JSON; integers of any size are JSON numbers. Batch responses keep the requests' order.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from core.errors import AdminRefused, AichainError
from node.rpc.caller import admin_refusal
from node.rpc.errors import (
    JSONRPC_VERSION,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RpcError,
    body_too_large,
    dumps,
)
from node.rpc.registry import MethodRegistry

__all__ = ["Dispatcher", "RpcLimits"]

MiB: Final = 1024 * 1024

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RpcLimits:
    """Bounds on what one call may ask of the server."""

    max_body_bytes: int = 5 * MiB
    max_batch: int = 1000
    max_json_values: int = 250_000  # about 30 ms of parsing on the event loop
    max_batch_response_bytes: int = 25 * MiB
    max_param_depth: int = 32  # contract values nest 8 deep; nothing a method takes nests further

    def __post_init__(self) -> None:
        if (
            min(
                self.max_body_bytes,
                self.max_batch,
                self.max_json_values,
                self.max_param_depth,
                self.max_batch_response_bytes,
            )
            < 1
        ):
            raise ValueError("RpcLimits values must be positive")


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    params: list[Any] | dict[str, Any] | None
    id: Any
    notification: bool


_Answer = tuple[dict[str, Any], bytes]  # a response object and its encoding


class Dispatcher:
    """Answers JSON-RPC requests with the methods of a registry (see the module docstring)."""

    def __init__(
        self,
        registry: MethodRegistry,
        limits: RpcLimits = RpcLimits(),
        logger: logging.Logger | None = None,
        on_error: Callable[[int], None] | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits
        self.log = logger or _log
        self.on_error = on_error  # told the code of every error answered

    async def handle_bytes(self, body: bytes) -> bytes | None:
        """Answer a raw body; None means no response at all (notifications only)."""
        if len(body) > self.limits.max_body_bytes:
            return self._error(None, body_too_large(self.limits.max_body_bytes))[1]
        values = body.count(b",") + body.count(b":") + 1
        if values > self.limits.max_json_values:
            limit = self.limits.max_json_values
            error = InvalidRequest(
                f"invalid request: the body holds about {values} JSON values, more than the limit "
                f"of {limit} (counted by their separators); split it into several requests",
                {"limit": limit},
            )
            return self._error(None, error)[1]
        try:
            obj = _loads(body)
        except ParseError as exc:
            return self._error(None, exc)[1]
        answer = await self._process(obj)
        if answer is None:
            return None
        if isinstance(answer, list):
            return b"[" + b",".join(encoded for _, encoded in answer) + b"]"
        return answer[1]

    async def _process(self, obj: object) -> _Answer | list[_Answer] | None:
        if not isinstance(obj, list):
            return await self._handle_one(obj)
        if not obj:
            return self._error(None, InvalidRequest("invalid request: empty batch"))
        if len(obj) > self.limits.max_batch:
            return self._error(
                None,
                InvalidRequest(
                    f"invalid request: batch of {len(obj)} requests exceeds the limit of {self.limits.max_batch}",
                    {"limit": self.limits.max_batch},
                ),
            )
        answers = []
        size = 0
        limit = self.limits.max_batch_response_bytes
        for item in obj:
            if size > limit:
                answer = self._over_budget(item, limit)
            else:
                answer = await self._handle_one(item)
                await asyncio.sleep(0)  # the loop's turn: other clients, consensus, timers
            if answer is not None:
                answers.append(answer)
                size += len(answer[1])
        return answers or None

    def _over_budget(self, item: object, limit: int) -> _Answer | None:
        """The answer of a batch element left unrun because the batch's answers passed `limit` bytes."""
        checked = _check_request(item)
        if isinstance(checked, tuple):
            return self._error(*checked)
        if checked.notification:
            return None
        error = InvalidRequest(
            f"invalid request: the answers of this batch passed {limit} bytes, so this request "
            "was not run; send it again in a smaller batch",
            {"limit": limit},
        )
        return self._error(checked.id, error)

    async def _handle_one(self, item: object) -> _Answer | None:
        checked = _check_request(item)
        if isinstance(checked, tuple):
            return self._error(*checked)
        request = checked
        try:
            if _deeper_than(request.params, self.limits.max_param_depth):
                raise InvalidParams(
                    f"invalid params: nested more than {self.limits.max_param_depth} arrays or objects deep",
                    {"limit": self.limits.max_param_depth},
                )
            result = await self._call(request)
        except RpcError as exc:
            error: RpcError = exc
        except AichainError as exc:
            error = RpcError.from_aichain(exc)
        except Exception:
            self.log.exception("internal error in JSON-RPC method %r", request.method)
            error = InternalError()
        else:
            if request.notification:
                return None
            return self._result(request, result)
        if request.notification:
            self.log.debug("notification %r failed: %s", request.method, error)
            return None
        return self._error(request.id, error)

    async def _call(self, request: _Request) -> Any:
        method = self.registry.get(request.method)
        if method is None:
            raise MethodNotFound(f"method not found: {request.method!r}", {"method": request.method})
        if method.admin and (reason := admin_refusal()) is not None:
            raise AdminRefused(f"{method.name} administers this node and is refused: {reason}")
        args = method.bind(request.params)
        result = method.handler(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _result(self, request: _Request, result: Any) -> _Answer:
        response = {"jsonrpc": JSONRPC_VERSION, "id": request.id, "result": result}
        try:
            return response, dumps(response)
        except (TypeError, ValueError, RecursionError):
            self.log.exception("result of JSON-RPC method %r is not JSON-serialisable", request.method)
            return self._error(request.id, InternalError())

    def _error(self, id_: Any, error: RpcError) -> _Answer:
        if self.on_error is not None:
            self.on_error(error.code)
        response = {"jsonrpc": JSONRPC_VERSION, "id": id_, "error": error.to_dict()}
        try:
            return response, dumps(response)
        except (TypeError, ValueError, RecursionError):
            self.log.warning("dropping non-serialisable data of JSON-RPC error %d %r", error.code, error.message)
            response["error"] = RpcError(error.code, error.message).to_dict()
            return response, dumps(response)


# --- helpers -----------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(body: bytes) -> Any:
    """Strict JSON decoding of a body; raises ParseError saying why."""
    try:
        return json.loads(body.decode("utf-8-sig"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ParseError("parse error: body is not valid UTF-8") from None
    except RecursionError:
        raise ParseError("parse error: JSON nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        if "integer string conversion" in str(exc):  # CPython's guard against quadratic int() parsing
            raise ParseError(
                f"parse error: a number has more than {sys.get_int_max_str_digits()} digits; "
                "numbers in requests have at most 78 (256 bits)"
            ) from None
        raise ParseError(f"parse error: {exc}") from None


def _deeper_than(value: object, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels in `value`; iterative, so any depth is safe."""
    level: list[object] = [value]
    for _ in range(limit):
        level = [
            child
            for node in level
            for child in (node if type(node) is list else node.values() if type(node) is dict else ())
            if type(child) is list or type(child) is dict
        ]
        if not level:
            return False
    return bool(level)


def _valid_id(value: object) -> bool:
    """Per the spec an id is a string, a number or null (bools are not numbers here)."""
    if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {list: "an array", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)


def _check_request(item: object) -> _Request | tuple[Any, RpcError]:
    """Validate one request object; on failure return (id to answer with, error)."""
    if not isinstance(item, dict):
        return None, InvalidRequest(f"invalid request: expected a request object, got {_json_kind(item)}")
    has_id = "id" in item
    id_ = item.get("id")
    answer_id = id_ if has_id and _valid_id(id_) else None
    if item.get("jsonrpc") != JSONRPC_VERSION:
        return answer_id, InvalidRequest('invalid request: "jsonrpc" must be exactly "2.0"')
    method = item.get("method")
    if not isinstance(method, str):
        what = "is missing" if "method" not in item else "must be a string"
        return answer_id, InvalidRequest(f'invalid request: "method" {what}')
    params = item.get("params")
    if "params" in item and not isinstance(params, list | dict):
        return answer_id, InvalidRequest('invalid request: "params" must be an array or an object')
    if has_id and not _valid_id(id_):
        return None, InvalidRequest('invalid request: "id" must be a string, a number or null')
    return _Request(method, params, id_, not has_id)
