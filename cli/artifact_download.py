"""Artifact bytes over the node's HTTP endpoints, for the CLI: connections, refusals, resumable downloads.

A download streams to `<dest>.part`, resumes a part an interrupted run left (with `Range`), and
is renamed to `dest` only when its SHA-256 is the one expected. A private artifact's plaintext
(`secret`) is written readable by this user only; its requests carry a signed read (`sign`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlparse

from aichain_node.transfer import PRIVATE_FILE_MODE, Progress, private_dir
from cli.artifact_private import Signer
from cli.common import fail, rpc_url

BLOCK = 1024 * 1024


def open_connection(rpc: str | None) -> http.client.HTTPConnection:
    url = urlparse(rpc_url(rpc))
    if url.scheme == "https":
        return http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
    return http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)


def response_of(connection: http.client.HTTPConnection, what: str) -> http.client.HTTPResponse:
    try:
        return connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        fail(f"{what}: the node did not answer ({exc}); is it running? (--rpc / AICHAIN_RPC)")


def refuse(answer: http.client.HTTPResponse, what: str) -> None:
    body = answer.read()
    try:
        message = json.loads(body).get("error", body.decode(errors="replace"))
    except ValueError:
        message = body.decode(errors="replace")
    fail(f"{what}: HTTP {answer.status}: {message.strip()}")


def download(
    rpc: str | None,
    path: str,
    dest: Path,
    digest: bytes,
    advance: Progress,
    sign: Signer | None = None,
    secret: bool = False,
) -> None:
    """Stream `path` (unquoted) to `dest` via `<dest>.part`, resuming a part left by an interrupted download.

    With `sign`, each request carries a signed read; a `secret` (private) file is written 0600."""
    if secret and not dest.parent.exists():
        private_dir(dest.parent)  # a directory artifact's subdirectory (its root was made private by the caller)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    hasher = hashlib.sha256()
    have = 0
    if part.exists():
        with part.open("rb") as stream:
            while block := stream.read(BLOCK):
                hasher.update(block)
                have += len(block)
        advance(have)
    connection = open_connection(rpc)
    headers = {"Range": f"bytes={have}-"} if have else {}
    if sign is not None:
        headers.update(sign(path, headers.get("Range", "")))
    try:
        connection.request("GET", quote(path), headers=headers)
    except OSError as exc:
        fail(f"getting {dest}: {exc}; is the node running? (--rpc / AICHAIN_RPC)")
    answer = response_of(connection, f"getting {dest}")
    if answer.status == 416 and have:  # the part is already whole
        answer.read()
    elif answer.status not in (200, 206):
        refuse(answer, f"getting {dest}")
    else:
        if answer.status == 200 and have:  # the node sent everything: start over
            hasher, have = hashlib.sha256(), 0
        with open_part(part, append=bool(have), secret=secret) as out:
            try:
                while block := answer.read(BLOCK):
                    out.write(block)
                    hasher.update(block)
                    advance(len(block))
            except (OSError, http.client.HTTPException) as exc:
                fail(f"getting {dest}: the transfer broke off ({exc}); run the same command again to resume")
            out.flush()
            os.fsync(out.fileno())
    if hasher.digest() != digest:
        part.unlink(missing_ok=True)
        fail(
            f"getting {dest}: the bytes received hash to sha256:{hasher.hexdigest()}, not sha256:{digest.hex()}; "
            "nothing was kept"
        )
    os.replace(part, dest)


def open_part(part: Path, *, append: bool, secret: bool) -> BinaryIO:
    """The part file to write; a private artifact's readable by this user only, even if it existed wider."""
    if not secret:
        return part.open("ab" if append else "wb")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(part, flags, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "ab" if append else "wb")


__all__ = ["BLOCK", "download", "open_connection", "refuse", "response_of"]
