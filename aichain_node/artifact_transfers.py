"""Artifact bytes between a node and this machine: upload, download, fetch. `AsyncClient` holds one
`ArtifactTransfers` and offers its calls.

Every download is checked here against the id the caller trusts before the file gets its name.
A private (encrypted) artifact arrives as ciphertext (`download_stored`, decrypted here with the
content key), or as plaintext from the node that keeps its key, in requests signed by this
account for that node alone (`download`/`download_plaintext` with `read_as`); either way its
plaintext is written readable by this user only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from aichain_node.errors import AccessRefused, ArtifactMismatch, NodeUnreachable, StoredEncrypted, error_from_rpc
from aichain_node.transfer import DigestMismatch, StoredDownload, describe_mismatch, local_id, private_file, tar_stream
from core.artifact import format_id, parse_id
from core.errors import AdminRefused, ArtifactNotFound
from core.keys import PrivateKey, address_hex
from core.read_request import sign_read
from core.sealing import ChunkDecryptionFailed

STREAM_BLOCK = 1 << 20
FETCH_WAIT_S = 3600  # how long `stored_summary` waits for the node's fetch from its peers
FETCH_POLL_S = 0.1
Progress = Callable[[int], None]  # told how many more bytes moved
ReadAs = tuple[str, int]  # (model, version): the licence or ownership a signed read of private plaintext relies on


class Node(Protocol):
    """What transfers need of the client: the node's URL and the HTTP session to it, its JSON-RPC, and for a
    signed read the account that signs it, the chain and the node it is for (`AsyncClient`)."""

    @property
    def url(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    def session(self) -> aiohttp.ClientSession: ...
    def admin_headers(self) -> dict[str, str]: ...
    def key_or_fail(self) -> PrivateKey: ...
    async def chain_id(self) -> int: ...
    async def node_key(self) -> bytes: ...
    async def rpc(self, method: str, *params: Any, timeout: float | None = None) -> Any: ...


class ArtifactTransfers:
    """Uploads, downloads and fetches of artifacts on the client's node, reads of private plaintext signed
    by its account."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def upload(
        self,
        source: Path | bytes,
        *,
        pin: bool = True,
        encrypt: bool = False,
        progress: Progress | None = None,
        content_key: bytes | None = None,
        artifact_id: bytes | None = None,
        publisher: bytes | None = None,
    ) -> dict[str, Any]:
        """Store a file (or bytes) on the node; its manifest summary (`id`, `size`, …).

        With `encrypt`, the node keeps it encrypted under a content key (the id stays the
        plaintext's): `content_key` if given, else one the node makes; the file is hashed here
        first, since the node must be told the id (unless the caller gives it, `artifact_id`).
        `publisher` is the account that will publish the versions naming it: the node releases
        its key, and serves its plaintext, for those versions only."""
        query = f"?pin={'true' if pin else 'false'}" + ("&encrypt=true" if encrypt else "")
        headers = {"Content-Type": "application/octet-stream", **self.node.admin_headers()}  # an admin route
        if encrypt:
            if artifact_id is not None:
                digest = artifact_id
            elif isinstance(source, bytes):
                digest = await asyncio.to_thread(_sha256_of, source)
            else:
                digest = await asyncio.to_thread(local_id, source)
            headers["X-Artifact-Id"] = format_id(digest)
            if content_key is not None:
                headers["X-Content-Key"] = base64.b64encode(content_key).decode()
            if publisher is not None:
                headers["X-Content-Publisher"] = address_hex(publisher)
        if isinstance(source, Path) and source.is_dir():
            headers["Content-Type"] = "application/x-tar"
            body: AsyncIterator[bytes] = tar_stream(source, progress)
        else:
            headers["Content-Length"] = str(len(source) if isinstance(source, bytes) else os.path.getsize(source))
            body = _body(source, progress)
        try:
            async with self.node.session().put(
                self.node.url + "/artifacts" + query, data=body, headers=headers
            ) as response:
                answer = await response.json(content_type=None)
        except aiohttp.ClientConnectionError as exc:
            raise NodeUnreachable(f"the upload to {self.node.url} broke off: {exc}") from exc
        if response.status == 403:
            raise AdminRefused(str(answer.get("error")))
        if response.status == 409 and answer.get("reason") == "stored_encrypted":
            raise StoredEncrypted(str(answer.get("error")))
        if response.status != 201:
            raise ArtifactMismatch(f"the node refused the upload (HTTP {response.status}): {answer.get('error')}")
        result: dict[str, Any] = answer
        return result

    async def read_headers(
        self, artifact: bytes, read_as: ReadAs, method: str, path: str, range_header: str = ""
    ) -> dict[str, str]:
        """The headers of one signed read of a private artifact's plaintext (`core.read_request`), by this
        account, relying on its licence to (or ownership of) `read_as` = (model, version), for this client's
        node alone (`node_key`)."""
        key = self.node.key_or_fail()
        audience = await self.node.node_key()
        chain_id = await self.node.chain_id()
        signed = sign_read(
            key,
            chain_id,
            artifact,
            read_as[0],
            read_as[1],
            method,
            path,
            range_header,
            audience=audience,
            timestamp_ms=int(time.time() * 1000),
        )
        headers = {"Authorization": signed.header()}
        if range_header:
            headers["Range"] = range_header
        return headers

    async def download(
        self, artifact: str | bytes, dest: Path, *, progress: Progress | None = None, read_as: ReadAs | None = None
    ) -> Path:
        """Stream an artifact the node stores into `dest`, checking its SHA-256 against the id.

        The bytes go to `dest.part` first and are renamed only when the digest matches, so a
        wrong or cut-off download never sits under the real name. The plaintext of a private
        artifact is served only to a signed request: `read_as` = (model, version) names the licence
        (or ownership) it relies on; it is written readable by this user only."""
        digest = parse_id(artifact) if isinstance(artifact, str) else artifact
        part = dest.with_name(dest.name + ".part")
        hasher = hashlib.sha256()
        path = f"/artifacts/{format_id(digest)}"
        headers = {} if read_as is None else await self.read_headers(digest, read_as, "GET", path)
        try:
            async with self.node.session().get(self.node.url + path, headers=headers) as response:
                if response.status != 200:
                    await _raise_for(response)
                with part.open("wb") if read_as is None else private_file(part) as out:
                    async for block in response.content.iter_chunked(STREAM_BLOCK):
                        hasher.update(block)
                        await asyncio.to_thread(out.write, block)
                        if progress is not None:
                            progress(len(block))
        except aiohttp.ClientPayloadError:
            part.unlink(missing_ok=True)
            raise ArtifactMismatch(
                f"the node's stream of {format_id(digest)} ended early (a chunk it holds may be "
                "damaged: `aichain-node artifact verify --repair`); nothing was kept"
            ) from None
        except aiohttp.ClientConnectionError as exc:
            part.unlink(missing_ok=True)
            raise NodeUnreachable(f"the download from {self.node.url} broke off: {exc}") from exc
        if hasher.digest() != digest:
            part.unlink(missing_ok=True)
            raise ArtifactMismatch(
                f"the bytes served for {format_id(digest)} hash to {format_id(hasher.digest())}; nothing was kept"
            )
        part.replace(dest)
        return dest

    async def download_plaintext(
        self,
        summary: dict[str, Any],
        expected: bytes,
        dest: Path,
        read_as: ReadAs,
        *,
        progress: Progress | None = None,
    ) -> Path:
        """A private artifact's plaintext, decrypted by the node that keeps its content key, for an owner or
        licensee of `read_as` = (model, version): each request signed by this account. Written for this
        user only (0600 files, 0700 directories) and put at `dest` once its digests match `expected`.

        Raises `AccessRefused` if the node will not serve it (the node's message says why)."""
        job = StoredDownload(summary, expected, None, dest, private=True)
        artifact = format_id(expected)
        if job.summary["kind"] == "directory":
            paths = [f"/artifacts/{artifact}/files/{entry['path']}" for entry in summary["files"]]
        else:
            paths = [f"/artifacts/{artifact}"]
        await asyncio.to_thread(job.begin)
        try:
            for path in paths:
                headers = await self.read_headers(expected, read_as, "GET", path)
                async with self.node.session().get(self.node.url + quote(path), headers=headers) as response:
                    if response.status != 200:
                        await _raise_for(response)
                    async for block in response.content.iter_chunked(STREAM_BLOCK):
                        await asyncio.to_thread(job.take_plain, block)
                        if progress is not None:
                            progress(len(block))
            return await asyncio.to_thread(job.finish)
        except aiohttp.ClientPayloadError:
            job.abort()
            raise ArtifactMismatch(f"the node's stream of {artifact} ended early; nothing was kept") from None
        except aiohttp.ClientConnectionError as exc:
            job.abort()
            raise NodeUnreachable(f"the download from {self.node.url} broke off: {exc}") from exc
        except DigestMismatch as exc:
            job.abort()
            raise ArtifactMismatch(describe_mismatch(exc, expected)) from None
        except BaseException:
            job.abort()
            raise

    async def download_stored(
        self,
        summary: dict[str, Any],
        expected: bytes,
        dest: Path,
        *,
        content_key: bytes | None = None,
        progress: Progress | None = None,
        follow: bool = False,
    ) -> Path:
        """Stream an artifact's chunks as the node stores them, decrypt them here (with `content_key`),
        and write the file or directory to `dest` once its digests match `expected`, the id the caller
        trusts (the chain's). `summary` is the node's manifest summary (`artifact_info`). With `follow`,
        the node is still fetching it from peers and sends each chunk as it lands.

        Raises `ArtifactMismatch` when the bytes are not that artifact; nothing is left behind."""
        job = StoredDownload(summary, expected, content_key, dest)  # an encrypted one's plaintext: for this user only
        if job.encrypted and content_key is None:
            raise ValueError(f"{format_id(expected)} is encrypted: a content key is needed to read it")
        await asyncio.to_thread(job.begin)
        pending: asyncio.Future[None] | None = None
        try:
            url = f"{self.node.url}/artifacts/{format_id(expected)}/stored" + ("?follow=true" if follow else "")
            async with self.node.session().get(url) as response:
                if response.status != 200:
                    await _raise_for(response)
                for index in range(job.chunks):
                    want = job.stored_size(index)
                    chunk = await response.content.readexactly(want)
                    if pending is not None:
                        await pending  # the previous chunk is decrypted and written while this one arrived
                    pending = asyncio.ensure_future(asyncio.to_thread(job.take, chunk))
                    if progress is not None:
                        progress(want)
                if pending is not None:
                    await pending
                    pending = None
                if await response.content.read(1):
                    raise DigestMismatch(expected, b"", "the node sent more bytes than the artifact holds")
            return await asyncio.to_thread(job.finish)
        except (asyncio.IncompleteReadError, aiohttp.ClientPayloadError):
            await _settle(pending)
            job.abort()
            raise ArtifactMismatch(
                f"the node's stream of {format_id(expected)} ended early (a chunk it holds may be "
                "damaged: `aichain-node artifact verify --repair`); nothing was kept"
            ) from None
        except aiohttp.ClientConnectionError as exc:
            await _settle(pending)
            job.abort()
            raise NodeUnreachable(f"the download from {self.node.url} broke off: {exc}") from exc
        except ChunkDecryptionFailed:
            await _settle(pending)
            job.abort()
            raise ArtifactMismatch(
                f"a chunk of {format_id(expected)} does not decrypt under the content key: the node "
                "served other or altered ciphertext; nothing was kept"
            ) from None
        except DigestMismatch as exc:
            await _settle(pending)
            job.abort()
            raise ArtifactMismatch(describe_mismatch(exc, expected)) from None
        except BaseException:
            await _settle(pending)
            job.abort()
            raise

    async def fetch(self, artifact: str, *, pin: bool = True, wait_s: int = 600) -> dict[str, Any]:
        """Have the node fetch an artifact from its peers (every chunk checked); the fetch's status."""
        result: dict[str, Any] = await self.node.rpc(
            "artifact_fetch", artifact, pin, False, wait_s, timeout=wait_s + self.node.timeout
        )
        return result

    async def stored_summary(
        self,
        artifact: bytes,
        *,
        fetch: bool = True,
        wait_s: int = FETCH_WAIT_S,
        progress: Progress | None = None,
        follow: bool = False,
    ) -> dict[str, Any]:
        """The node's manifest summary of an artifact, having it fetched from peers first if it lacks it
        (`progress` is told of the bytes fetched as they arrive). With `follow`, it is returned as soon
        as the fetch has found the manifest, marked `"following": True`: its chunks can be streamed
        while they arrive (`download_stored(..., follow=True)`)."""
        artifact_id = format_id(artifact)
        try:
            summary: dict[str, Any] = await self.node.rpc("artifact_info", artifact_id)
            return summary
        except ArtifactNotFound:
            if not fetch:
                raise
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        status = await self.fetch(artifact_id, wait_s=0)
        reported = 0
        while status.get("state") not in ("done", "failed") and loop.time() < deadline:
            if follow and "manifest" in status:
                return {**status["manifest"], "following": True}
            await asyncio.sleep(FETCH_POLL_S)
            status = await self.node.rpc("artifact_fetchStatus", artifact_id)
            fetched = int(status.get("bytes_fetched") or 0)
            if progress is not None and fetched > reported:
                progress(fetched - reported)
            reported = max(reported, fetched)
        if status.get("state") != "done":
            why = status.get("error") or f"still {status.get('state')} after {wait_s} s"
            raise ArtifactNotFound(f"{artifact_id} could not be fetched from the node's peers: {why}")
        result: dict[str, Any] = await self.node.rpc("artifact_info", artifact_id)
        return result


async def _raise_for(response: aiohttp.ClientResponse) -> None:
    """The node's refusal of a download as an error: AccessRefused (401/403), else the node's own type."""
    text = (await response.text()).strip()
    try:
        message = str(json.loads(text).get("error", text))
    except (ValueError, AttributeError):
        message = text
    if response.status in (401, 403, 429):
        raise AccessRefused(f"the node refused the plaintext (HTTP {response.status}): {message}", response.status)
    raise error_from_rpc(-32111 if response.status == 404 else -32110, f"HTTP {response.status}: {message[:300]}")


async def _settle(pending: asyncio.Future[None] | None) -> None:
    """Let a chunk still being written finish (or fail) before its download is cleaned up."""
    if pending is not None:
        with contextlib.suppress(BaseException):
            await pending


def _sha256_of(source: Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return hashlib.sha256(source).digest()
    hasher = hashlib.sha256()
    with open(source, "rb") as stream:
        while block := stream.read(STREAM_BLOCK):
            hasher.update(block)
    return hasher.digest()


async def _body(source: Path | bytes, progress: Progress | None) -> AsyncIterator[bytes]:
    if isinstance(source, bytes):
        for offset in range(0, len(source), STREAM_BLOCK):
            block = source[offset : offset + STREAM_BLOCK]
            if progress is not None:
                progress(len(block))
            yield block
        return
    with open(source, "rb") as stream:
        while block := await asyncio.to_thread(stream.read, STREAM_BLOCK):
            if progress is not None:
                progress(len(block))
            yield block


__all__ = ["STREAM_BLOCK", "ArtifactTransfers", "Node", "Progress", "ReadAs"]
