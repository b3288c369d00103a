"""Declared methods: `Param` (one parameter and its parser) and `MethodRegistry`.

Binding rules: params come by position (array) or by name (object), or are absent. Too many
positional params, an unknown name, a missing required param, or a value its parser rejects
(ValueError, TypeError or AichainError) -> InvalidParams (-32602) naming the param, its position
and the reason. A null or absent optional param takes its default (as geth does).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeVar

from core.errors import AichainError
from node.rpc.errors import InvalidParams, RpcError, is_json

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)


class _Required:
    """Sentinel type of `REQUIRED`."""

    _instance: ClassVar[_Required | None] = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


@dataclass(frozen=True)
class Param:
    """One declared parameter of a method.

    `parse` turns the JSON value into what the handler takes; it raises ValueError, TypeError or
    an AichainError whose message says what was expected, and the caller then gets -32602
    "invalid params: '<name>' (param <i>): <message>". A param with a `default` is optional: when
    it is absent or null the handler gets the default itself (not parsed; keep it immutable).
    Optional params must follow the required ones.
    """

    name: str
    parse: Callable[[Any], Any]
    default: Any = REQUIRED
    doc: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"param name must be a non-empty string, got {self.name!r}")
        if not callable(self.parse):
            raise TypeError(f"param {self.name!r}: parse must be callable")

    @property
    def required(self) -> bool:
        """True when the caller must give this parameter."""
        return self.default is REQUIRED


@dataclass(frozen=True)
class RegisteredMethod:
    """A method as registered: its handler, parameters and documentation. An `admin` method administers
    this node's own resources and is served only to callers `node.rpc.admin` lets do that."""

    name: str
    handler: Handler
    params: tuple[Param, ...]
    doc: str
    example: dict[str, Any] | None
    admin: bool = False

    def bind(self, raw: object) -> list[Any]:
        """Parse `raw` params (list, dict or None when absent) into handler arguments, in order."""
        specs = self.params
        given: dict[int, Any]
        if raw is None:
            given = {}
        elif isinstance(raw, list):
            if len(raw) > len(specs):
                raise InvalidParams(
                    f"invalid params: {self.name} takes at most {len(specs)} param(s), got {len(raw)}",
                    {"expected_at_most": len(specs), "got": len(raw)},
                )
            given = dict(enumerate(raw))
        elif isinstance(raw, dict):
            index = {p.name: i for i, p in enumerate(specs)}
            for key in raw:
                if key not in index:
                    known = ", ".join(repr(p.name) for p in specs) or "none"
                    raise InvalidParams(f"invalid params: unknown param {key!r} (known: {known})", {"param": key})
            given = {index[k]: v for k, v in raw.items()}
        else:  # pragma: no cover - request validation only lets lists and dicts through
            raise InvalidParams("invalid params: params must be an array or an object")

        args: list[Any] = []
        for i, spec in enumerate(specs):
            value = given.get(i)
            if i not in given or (value is None and not spec.required):
                if spec.required:
                    raise InvalidParams(
                        f"invalid params: missing required param {spec.name!r} (param {i})",
                        {"param": spec.name, "position": i},
                    )
                args.append(spec.default)
                continue
            try:
                args.append(spec.parse(value))
            except RpcError:
                raise
            except (ValueError, TypeError, AichainError) as exc:
                reason = str(exc) or type(exc).__name__
                raise InvalidParams(
                    f"invalid params: {spec.name!r} (param {i}): {reason}", {"param": spec.name, "position": i}
                ) from None
        return args

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description: name, doc, params (name, doc, required, default), example, and
        `admin: true` for an admin method."""
        params = []
        for p in self.params:
            entry: dict[str, Any] = {"name": p.name, "doc": p.doc, "required": p.required}
            if not p.required and is_json(p.default):
                entry["default"] = p.default
            params.append(entry)
        out: dict[str, Any] = {"name": self.name, "doc": self.doc, "params": params}
        if self.admin:
            out["admin"] = True
        if self.example is not None:
            out["example"] = self.example
        return out


class MethodRegistry:
    """The methods a dispatcher serves, by name.

    Registration checks what can be checked early: a unique non-empty name, unique `Param`
    names with optional ones last, a handler that accepts one positional argument per param, and
    a JSON-serialisable example dict (conventionally {"params": [...], "result": ...}).
    Handlers may be `async def` or plain functions (plain ones run on the event loop: keep them
    quick and non-blocking).
    """

    def __init__(self) -> None:
        self._methods: dict[str, RegisteredMethod] = {}

    def method(
        self, name: str, *params: Param, doc: str = "", example: dict[str, Any] | None = None, admin: bool = False
    ) -> Callable[[H], H]:
        """Decorator form of `add`; returns the handler unchanged."""

        def register(handler: H) -> H:
            self.add(name, handler, params, doc=doc, example=example, admin=admin)
            return handler

        return register

    def add(
        self,
        name: str,
        handler: Handler,
        params: Sequence[Param] = (),
        doc: str = "",
        example: dict[str, Any] | None = None,
        admin: bool = False,
    ) -> None:
        """Register `handler` as method `name`; the doc defaults to the handler's docstring. `admin`: the
        method administers this node's resources (`node.rpc.admin` decides who may call it)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"method name must be a non-empty string, got {name!r}")
        if name in self._methods:
            raise ValueError(f"method {name!r} is already registered")
        if not callable(handler):
            raise TypeError(f"method {name!r}: handler must be callable")
        params = tuple(params)
        seen: set[str] = set()
        optional_seen = False
        for p in params:
            if not isinstance(p, Param):
                raise TypeError(f"method {name!r}: params must be Param instances, got {p!r}")
            if p.name in seen:
                raise ValueError(f"method {name!r}: duplicate param {p.name!r}")
            seen.add(p.name)
            if p.required and optional_seen:
                raise ValueError(f"method {name!r}: required param {p.name!r} follows an optional one")
            optional_seen = optional_seen or not p.required
        try:
            signature = inspect.signature(handler)
        except (TypeError, ValueError):  # pragma: no cover - some builtins have no signature
            signature = None
        if signature is not None:
            try:
                signature.bind(*range(len(params)))
            except TypeError as exc:
                raise TypeError(f"method {name!r}: handler cannot take {len(params)} positional args: {exc}") from None
        if example is not None and (not isinstance(example, dict) or not is_json(example)):
            raise ValueError(f"method {name!r}: example must be a JSON-serialisable dict")
        text = doc or inspect.getdoc(handler) or ""
        self._methods[name] = RegisteredMethod(name, handler, params, text, example, admin)

    def get(self, name: str) -> RegisteredMethod | None:
        """The method registered as `name`, or None."""
        return self._methods.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __len__(self) -> int:
        return len(self._methods)

    def names(self) -> list[str]:
        """Registered method names, sorted."""
        return sorted(self._methods)

    def describe(self) -> list[dict[str, Any]]:
        """Descriptions of all methods, sorted by name (for docs and an rpc_methods method)."""
        return [self._methods[n].describe() for n in self.names()]
