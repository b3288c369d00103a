"""The HTTP headers of the artifact routes, read with bounds and written as the RFCs say.

- `X-Artifact-Id` or `Repr-Digest: sha-256=:<base64>:` (RFC 9530) announce the id of an upload;
  a `Repr-Digest` whose sha-256 member is not base64 of 32 bytes is 400 (other algorithms are
  not checked);
- `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` asks for one range; positions of more than 18
  digits are beyond any artifact (never converted); several ranges or other units get the whole
  body, as RFC 9110 allows;
- what is sent carries `ETag: "sha256:<hex>"` and `Repr-Digest` of the whole representation.
"""

from __future__ import annotations

import base64
import re

from aiohttp import web

from core.artifact import Manifest, format_id, parse_id

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)$")
_MAX_POSITION_DIGITS = 18  # 10^18 bytes: far beyond any artifact, and int() of it is cheap
_BEYOND = 1 << 62  # what a longer position means
_REPR_DIGEST = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([^:]*):")

WHOLE = (0, -1)  # a Range this server does not do (several ranges, other units): the whole body, as RFC 9110 allows


def expected_id(request: web.Request) -> bytes | None:
    """The id the client announced for its upload, if it did (HTTPBadRequest if it is malformed)."""
    announced = request.headers.get("X-Artifact-Id")
    if announced:
        try:
            return parse_id(announced)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
    match = _REPR_DIGEST.search(request.headers.get("Repr-Digest", ""))
    if match is None:
        return None  # no sha-256 member: nothing announced (other algorithms are not checked)
    try:
        raw = base64.b64decode(match.group(1), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise web.HTTPBadRequest(
            text="Repr-Digest: sha-256 must be the base64 of 32 bytes between colons, as "
            "sha-256=:<base64>: (RFC 9530); or announce the id in X-Artifact-Id"
        )
    return raw


def digest_headers(digest: bytes, manifest: Manifest | None) -> dict[str, str]:
    headers = {"ETag": f'"{format_id(digest)}"', "Repr-Digest": f"sha-256=:{base64.b64encode(digest).decode()}:"}
    if manifest is not None:
        headers["X-Artifact-Id"] = manifest.artifact_id
    return headers


def parse_range(value: str, length: int) -> tuple[int, int] | None:
    """[start, stop) of one `bytes=a-b`, `bytes=a-` or `bytes=-n` range; None if it cannot be met; `WHOLE` if it is
    a kind of range this server ignores."""
    match = _RANGE.match(value.strip())
    if match is None or match.groups() == ("", ""):
        return WHOLE
    first, last = match.groups()
    if first == "":
        start, stop = max(0, length - _position(last)), length
    else:
        start = _position(first)
        stop = length if last == "" else min(_position(last) + 1, length)
    if start >= length or start >= stop:
        return None
    return start, stop


def _position(digits: str) -> int:
    """A Range position; one of more digits than any artifact's size has is `_BEYOND` (never converted)."""
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else _BEYOND


def error(status: int, message: str, reason: str | None = None) -> web.Response:
    """A JSON error answer; `reason`, a fixed word, lets a client tell one refusal from another."""
    body = {"error": message} if reason is None else {"error": message, "reason": reason}
    return web.json_response(body, status=status)
