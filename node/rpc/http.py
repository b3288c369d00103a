"""JSON-RPC 2.0 over HTTP (aiohttp): one endpoint, the protocol itself lives in `jsonrpc`.

Rules of the endpoint at `path` (default "/"):

* POST carries one request or a batch. Content-Type must be JSON: application/json,
  application/json-rpc, application/jsonrequest or any application/*+json, parameters such as
  charset ignored; other types (text/plain, form types, multipart, octet-stream, ...) -> 415.
  A missing Content-Type is accepted from non-browser clients, but refused (415) when the
  request carries an Origin that CORS does not allow: browsers send such "simple" requests
  cross-site without a preflight, so accepting them would let any web page call a node on
  127.0.0.1 (CSRF).
* Bodies over `RpcLimits.max_body_bytes` -> 413 with a -32600 error body, decided from
  Content-Length before any of the body is read (before "100 Continue" when the client asks
  for it); a body without Content-Length (chunked) is read incrementally and refused as soon
  as it passes the limit. The body must arrive within `read_timeout` seconds (else 408).
  Compressed bodies count decompressed bytes; a body that does not decode as its
  Content-Encoding says (or whose chunked framing is broken) -> 400 with a -32700 error body.
* An answer -> 200 application/json; no answer (notifications only) -> 204 with no body.
  JSON-RPC errors are still HTTP 200, as usual for JSON-RPC over HTTP.
* GET -> 405 (Allow: POST, OPTIONS) with a -32600 error body explaining how to call the
  endpoint; other methods get aiohttp's plain 405. A health check belongs on its own path.
* Each request is stamped with its TCP peer and, by `admin` (`node.rpc.admin.AdminGate`), whether
  it may make admin calls; the dispatcher refuses admin methods to the others (-32040).
* OPTIONS answers CORS preflights. CORS is closed by default: Access-Control-Allow-Origin is
  only sent when the request's Origin is in `cors_origins` (compared case-insensitively,
  without a trailing "/") or `cors_origins` contains "*" (then the header is "*").

All network awaits are aiohttp's own (reading the body, writing the response) and run under
its timeouts plus `read_timeout` for the body; the handler never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiohttp import hdrs, web

# aiohttp's own Expect handler (sends "100 Continue"); private, but stable since aiohttp 1.x.
from aiohttp.web_urldispatcher import _default_expect_handler

from node.rpc.admin import LOOPBACK_ONLY, AdminGate
from node.rpc.caller import set_client
from node.rpc.errors import InvalidRequest, ParseError, RpcError, body_too_large, encode_error
from node.rpc.jsonrpc import Dispatcher

__all__ = ["JSON_CONTENT_TYPES", "add_rpc_routes"]

JSON_CONTENT_TYPES = frozenset({"application/json", "application/json-rpc", "application/jsonrequest"})
_ALLOW = "POST, OPTIONS"
_CORS_ALLOW_HEADERS = "Content-Type, Accept"
_CORS_MAX_AGE = "600"


def add_rpc_routes(
    app: web.Application,
    dispatcher: Dispatcher,
    *,
    path: str = "/",
    cors_origins: Sequence[str] = (),
    read_timeout: float = 30.0,
    admin: AdminGate = LOOPBACK_ONLY,
) -> None:
    """Serve `dispatcher` at `path` on `app` (POST, GET -> 405, OPTIONS), per the module rules."""
    endpoint = _RpcEndpoint(dispatcher, cors_origins, read_timeout, admin)
    resource = app.router.add_resource(path)
    resource.add_route(hdrs.METH_POST, endpoint.post, expect_handler=endpoint.expect)
    resource.add_route(hdrs.METH_GET, endpoint.get)
    resource.add_route(hdrs.METH_OPTIONS, endpoint.options)


class _BodyTooLarge(Exception):
    """The body passed the size limit while being read."""


class _RpcEndpoint:
    """The request handlers of one endpoint."""

    def __init__(
        self, dispatcher: Dispatcher, cors_origins: Sequence[str], read_timeout: float, admin: AdminGate
    ) -> None:
        if isinstance(cors_origins, str):
            raise TypeError("cors_origins must be a sequence of origins, not a string")
        self._dispatcher = dispatcher
        self._admin = admin
        self._read_timeout = read_timeout
        origins = {_normalise_origin(o) for o in cors_origins}
        self._cors_any = "*" in origins
        self._cors_origins = frozenset(origins - {"*"})

    # --- handlers ----------------------------------------------------------------------------------

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """Refuse before "100 Continue" when the headers already condemn the body."""
        refusal = self._precheck(request)
        if refusal is not None:
            return refusal
        await _default_expect_handler(request)  # "100 Continue"
        return None

    async def post(self, request: web.Request) -> web.StreamResponse:
        """Read the body within its limits and hand it to the dispatcher."""
        refusal = self._precheck(request)
        if refusal is not None:
            return refusal
        cors = self._cors_headers(request)
        limit = self._dispatcher.limits.max_body_bytes
        try:
            body = await self._read_body(request, limit)
        except _BodyTooLarge:
            return self._too_large(request, limit)
        except TimeoutError:
            response = _error_response(
                408, InvalidRequest(f"invalid request: body not received within {self._read_timeout:g} s"), cors
            )
            response.force_close()
            return response
        except web.RequestPayloadError:
            response = _error_response(400, unreadable_body(request), cors)
            response.force_close()
            return response
        # The TCP peer, never a forwarding header: per-client limits (read-only contract calls), admin calls.
        admin_refusal = self._admin.refusal(request.remote, request.headers.get(hdrs.AUTHORIZATION))
        set_client(request.remote, admin_refusal)
        answer = await self._dispatcher.handle_bytes(body)
        if answer is None:
            return web.Response(status=204, headers=cors)
        return web.Response(status=200, body=answer, content_type="application/json", headers=cors)

    async def get(self, request: web.Request) -> web.StreamResponse:
        """405: explain how the endpoint is meant to be called."""
        error = InvalidRequest(
            "invalid request: this is a JSON-RPC 2.0 endpoint; send requests with HTTP POST "
            "and Content-Type: application/json"
        )
        return _error_response(405, error, {**self._cors_headers(request), hdrs.ALLOW: _ALLOW})

    async def options(self, request: web.Request) -> web.StreamResponse:
        """CORS preflight (or a plain OPTIONS): 204, with CORS headers only for allowed origins."""
        headers = {hdrs.ALLOW: _ALLOW, **self._cors_headers(request)}
        if hdrs.ACCESS_CONTROL_ALLOW_ORIGIN in headers:
            headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = _ALLOW
            headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = _CORS_ALLOW_HEADERS
            headers[hdrs.ACCESS_CONTROL_MAX_AGE] = _CORS_MAX_AGE
        return web.Response(status=204, headers=headers)

    # --- checks ------------------------------------------------------------------------------------

    def _precheck(self, request: web.Request) -> web.StreamResponse | None:
        """What can be refused from the headers alone: Content-Type (415) and Content-Length (413)."""
        raw_type = request.headers.get(hdrs.CONTENT_TYPE, "").strip()
        media_type = raw_type.split(";", 1)[0].strip().lower()
        if not media_type:
            origin = request.headers.get(hdrs.ORIGIN)
            if origin is not None and not self._origin_allowed(origin):
                return self._unsupported_type(
                    request, "invalid request: cross-origin requests must send Content-Type: application/json"
                )
        elif not _is_json_type(media_type):
            return self._unsupported_type(
                request, f"invalid request: unsupported Content-Type {raw_type!r}; send application/json"
            )
        limit = self._dispatcher.limits.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            return self._too_large(request, limit)
        return None

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        """The whole body, read chunk by chunk; _BodyTooLarge as soon as it passes `limit`."""
        parts: list[bytes] = []
        size = 0
        async with asyncio.timeout(self._read_timeout):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise _BodyTooLarge
                parts.append(chunk)
        return b"".join(parts)

    def _origin_allowed(self, origin: str) -> bool:
        return self._cors_any or _normalise_origin(origin) in self._cors_origins

    def _cors_headers(self, request: web.Request) -> dict[str, str]:
        """CORS response headers for this request: none unless its Origin is allowed."""
        headers: dict[str, str] = {}
        if self._cors_origins and not self._cors_any:
            headers[hdrs.VARY] = hdrs.ORIGIN
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and self._origin_allowed(origin):
            headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*" if self._cors_any else origin
        return headers

    # --- refusals ----------------------------------------------------------------------------------

    def _too_large(self, request: web.Request, limit: int) -> web.StreamResponse:
        response = _error_response(413, body_too_large(limit), self._cors_headers(request))
        response.force_close()  # the rest of the body is not wanted on this connection
        return response

    def _unsupported_type(self, request: web.Request, message: str) -> web.StreamResponse:
        response = _error_response(415, InvalidRequest(message), self._cors_headers(request))
        response.force_close()
        return response


def unreadable_body(request: web.Request) -> ParseError:
    """The error for a body aiohttp could not decode: say which encoding it claimed."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip()[:40]
    if encoding:
        return ParseError(
            f"parse error: the body is not valid {encoding!r} data (Content-Encoding); "
            "send it compressed that way, or uncompressed without the header"
        )
    return ParseError("parse error: the body's chunked framing is broken (Transfer-Encoding: chunked)")


def _error_response(status: int, error: RpcError, headers: dict[str, str]) -> web.Response:
    """An HTTP error carrying a JSON-RPC error object with id null."""
    return web.Response(status=status, body=encode_error(error), content_type="application/json", headers=headers)


def _is_json_type(media_type: str) -> bool:
    return media_type in JSON_CONTENT_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


def _normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()
