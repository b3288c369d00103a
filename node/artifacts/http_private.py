"""The plaintext of an encrypted artifact over HTTP: only to a request signed by an owner or licensee, for this node.

`node.artifacts.access` decides; here its verdict becomes the answer: 401 (unsigned or badly
signed, with `WWW-Authenticate: AichainRead`) or 403 and 429, each with a JSON body saying
what is needed. A server given no access rules serves private plaintext to no one. The
ciphertext (`/stored`) stays public.
"""

from __future__ import annotations

import logging

from aiohttp import web

from core.artifact import Manifest
from node.artifacts.access import AccessDenied, ArtifactAccess
from node.artifacts.http_headers import error

log = logging.getLogger("aichain.artifacts")


def refuse_plaintext(access: ArtifactAccess | None, request: web.Request, manifest: Manifest) -> web.Response | None:
    """The answer refusing this request an encrypted artifact's plaintext, or None if it may have it."""
    if not manifest.encrypted:
        return None
    if access is None:
        return error(403, f"{manifest.artifact_id} is private and this server serves no private plaintext")
    try:
        grant = access.authorize(
            manifest,
            request.method,
            request.path,
            request.headers.get("Range", ""),
            request.headers.get("Authorization"),
        )
    except AccessDenied as exc:
        headers = {"WWW-Authenticate": 'AichainRead realm="aichain"'} if exc.status == 401 else None
        return web.json_response(
            {"error": exc.message, "artifact": manifest.artifact_id, "private": True},
            status=exc.status,
            headers=headers,
        )
    log.info(
        "private %s of %s to %s (%s@%d)",
        request.method,
        request.path,
        "0x" + grant.account.hex(),
        grant.model,
        grant.version,
    )
    return None
