"""`GET`/`HEAD /artifacts/...`: an artifact's bytes streamed from the artifact store.

- `/artifacts/{id}` streams a single-file artifact; `/artifacts/{id}/files/{path}` one file of a
  directory artifact. The plaintext of an encrypted artifact goes only to a request allowed to
  read it (`node.artifacts.http_private`). Both honour one `Range` (206 with Content-Range; 416
  if unsatisfiable) and send Content-Length, `ETag`, `Repr-Digest` (of the whole
  representation) and `Accept-Ranges` (`node.artifacts.http_headers`).
- `/artifacts/{id}/stored` streams the chunks as stored, one after another: for an encrypted
  artifact the ciphertext, which a licensee decrypts on its own machine with the content key
  from its envelope (so the key never reaches a node). `X-Chunk-Size` gives the plaintext chunk
  size; each stored chunk is that plus the 16-byte GCM tag (the last shorter). `?follow=true`
  on an artifact still being fetched from peers streams its chunks in order as they land here
  (the manifest is in `artifact_fetchStatus` meanwhile), so the transfer to this node and from
  it overlap; a fetch that fails ends the body short.

Every chunk is checked against its id as it is read, on the downloads' own pool of threads (a
download never waits for an upload's thread, nor a scrape for a download's). A chunk found
damaged is fetched again from the peers that hold the artifact (`repair`, at most once per chunk
and download, within `HEAL_WAIT_S`) and the response goes on; if that fails, it ends early: the
client sees a short body, never wrong bytes presented as complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aiohttp import web

from core.artifact import KIND_DIRECTORY, Manifest, parse_id
from core.errors import ArtifactErased, ArtifactError, ArtifactNotFound, CorruptChunk
from core.sealing import ChunkDecryptionFailed
from node.artifacts.access import ArtifactAccess
from node.artifacts.http_headers import WHOLE, digest_headers, error, parse_range
from node.artifacts.http_private import refuse_plaintext
from node.artifacts.manifest_json import manifest_summary
from storage.artifact_store import ArtifactStore

if TYPE_CHECKING:
    from node.artifacts.flight import FetchInFlight

log = logging.getLogger("aichain.artifacts")

DOWNLOAD_THREADS = 4
FOLLOW_STALL_S = 120.0  # longest a followed fetch may go without storing a chunk

HEAL_WAIT_S = 60.0  # longest a download waits for a damaged chunk to be fetched again from peers

InFlight = Callable[[bytes], "FetchInFlight | None"]
Repair = Callable[[bytes, list[int]], Awaitable[list[int]]]  # (artifact, chunk indexes) -> those repaired


class Downloads:
    def __init__(
        self, store: ArtifactStore, in_flight: InFlight, access: ArtifactAccess | None, repair: Repair | None = None
    ) -> None:
        self.store = store
        self.in_flight = in_flight
        self.access = access
        self.repair = repair
        self.healed = {"healed": 0, "failed": 0}  # chunks found damaged while serving: fetched again, or not
        self._reads = ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS, thread_name_prefix="artifact-read")

    def counts(self) -> dict[str, int]:
        """What /metrics shows of the downloads: damaged chunks fetched again from peers while serving, or not."""
        return dict(self.healed)

    async def _heal(self, manifest: Manifest, index: int, damage: Exception) -> bool:
        """Fetch chunk `index` again from the peers holding `manifest` after it was found damaged here;
        True once a whole copy is stored (the caller reads it again)."""
        what = f"chunk {index} of {manifest.artifact_id}"
        if self.repair is None:
            log.error("%s is damaged and no peer can be asked for it: %s", what, damage)
            return False
        log.warning("%s is damaged (%s); fetching it again from peers", what, damage)
        try:
            await asyncio.wait_for(self.repair(manifest.id, [index]), HEAL_WAIT_S)
        except Exception as exc:  # no holder, a timeout, only bad copies: the body ends short, as without repair
            self.healed["failed"] += 1
            log.error("%s could not be fetched again: %s", what, str(exc) or "timeout")
            return False
        self.healed["healed"] += 1
        return True

    async def close(self, app: web.Application | None = None) -> None:
        self._reads.shutdown(wait=False, cancel_futures=True)

    def _read(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._reads, functools.partial(fn, *args))

    async def download(self, request: web.Request) -> web.StreamResponse:
        manifest = await self._manifest(request)
        if manifest.kind == KIND_DIRECTORY:
            listing = json.dumps(manifest_summary(manifest))
            return error(
                409,
                f"{manifest.artifact_id} is a directory: get its files at "
                f"/artifacts/{manifest.artifact_id}/files/<path>; its listing: {listing}",
            )
        if manifest.encrypted and self.store.content_key(manifest.id) is None:
            return error(409, f"{manifest.artifact_id} is encrypted and this node has not got its content key")
        refused = refuse_plaintext(self.access, request, manifest)
        if refused is not None:
            return refused
        return await self._send(request, manifest, 0, manifest.size, manifest.id)

    async def download_file(self, request: web.Request) -> web.StreamResponse:
        manifest = await self._manifest(request)
        if manifest.encrypted and self.store.content_key(manifest.id) is None:
            return error(409, f"{manifest.artifact_id} is encrypted and this node has not got its content key")
        refused = refuse_plaintext(self.access, request, manifest)
        if refused is not None:
            return refused
        wanted = request.match_info["path"]
        offset = 0
        for entry in manifest.files:
            if entry.path == wanted:
                return await self._send(request, manifest, offset, offset + entry.size, entry.sha256)
            offset += entry.size
        raise web.HTTPNotFound(text=f"{manifest.artifact_id} has no file {wanted!r}")

    async def download_stored(self, request: web.Request) -> web.StreamResponse:
        """The chunks as stored, one after another: the ciphertext of an encrypted artifact, which anyone
        may have (only a holder of the content key reads it). Each chunk is checked against its id first."""
        flight = None
        if request.query.get("follow", "false").lower() in ("true", "1", "yes"):
            with contextlib.suppress(ValueError):
                artifact = parse_id(request.match_info["id"])
                flight = None if self.store.has(artifact) else self.in_flight(artifact)
        if flight is not None:
            return await self._follow(request, flight)
        manifest = await self._manifest(request)
        length = sum(manifest.stored_size(i) for i in range(len(manifest.chunks)))
        response = web.StreamResponse(status=200, headers=_stored_headers(manifest))
        response.content_length = length
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        chunks = self.store.read_stored(manifest)
        index, healed = 0, set()
        while True:
            try:
                chunk = await self._read(next, chunks, None)
            except CorruptChunk as exc:
                if index not in healed and await self._heal(manifest, index, exc):
                    healed.add(index)
                    chunks = self.store.read_stored(manifest, index)
                    continue
                log.error("download of the stored chunks of %s stopped: %s", manifest.artifact_id, exc)
                if request.transport is not None:
                    request.transport.close()  # a short body, never a damaged chunk
                return response
            if chunk is None:
                break
            await response.write(chunk)
            index += 1
        await response.write_eof()
        return response

    async def _follow(self, request: web.Request, flight: FetchInFlight) -> web.StreamResponse:
        """The stored chunks of an artifact being fetched, each sent once it is on disk here."""
        manifest = flight.manifest
        response = web.StreamResponse(status=200, headers=_stored_headers(manifest))
        response.content_length = sum(manifest.stored_size(i) for i in range(len(manifest.chunks)))
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        flight.follow()
        try:
            for index, chunk_id in enumerate(manifest.chunks):
                try:
                    if not await flight.wait_for(index, FOLLOW_STALL_S):
                        raise ArtifactError(f"the fetch ended without chunk {index}: {flight.error or 'stopped'}")
                    chunk = flight.take(index) or await self._read(self.store.chunks.read, chunk_id)
                except (TimeoutError, ArtifactError, CorruptChunk, OSError) as exc:
                    log.warning(
                        "following the fetch of %s stopped at chunk %d: %s",
                        manifest.artifact_id,
                        index,
                        str(exc) or "no chunk stored for a long time",
                    )
                    if request.transport is not None:
                        request.transport.close()  # a short body, never a damaged one
                    return response
                await response.write(chunk)
        finally:
            flight.unfollow()
        await response.write_eof()
        return response

    async def _manifest(self, request: web.Request) -> Manifest:
        try:
            return self.store.manifest(parse_id(request.match_info["id"]))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        except ArtifactErased as exc:
            raise web.HTTPGone(text=str(exc)) from exc
        except ArtifactNotFound as exc:
            raise web.HTTPNotFound(text=str(exc)) from exc

    async def _send(
        self, request: web.Request, manifest: Manifest, first: int, end: int, digest: bytes
    ) -> web.StreamResponse:
        """Bytes [first, end) of the artifact: a file's whole representation, or the Range of it asked for."""
        length = end - first
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
            **digest_headers(digest, manifest),
        }
        status, start, stop = 200, 0, length
        asked = request.headers.get("Range")
        parsed = parse_range(asked, length) if asked is not None else WHOLE
        if parsed is None:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{length}"})
        if parsed is not WHOLE:  # one satisfiable range: 206
            start, stop = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{length}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = stop - start
        await response.prepare(request)
        if request.method == "HEAD" or stop == start:
            await response.write_eof()
            return response
        at, end_at = first + start, first + stop  # offsets in the artifact: what is sent next, where it ends
        pieces = self.store.read_range(manifest, at, end_at)
        healed: set[int] = set()
        while True:
            try:
                piece = await self._read(next, pieces, None)
            except (CorruptChunk, ChunkDecryptionFailed) as exc:
                index = at // manifest.chunk_size
                if isinstance(exc, CorruptChunk) and index not in healed and await self._heal(manifest, index, exc):
                    healed.add(index)
                    pieces = self.store.read_range(manifest, at, end_at)
                    continue
                log.error("download of %s stopped: %s", manifest.artifact_id, exc)
                if request.transport is not None:
                    request.transport.close()  # a short body, never wrong bytes presented as whole
                return response
            if piece is None:
                break
            await response.write(piece)
            at += len(piece)
        await response.write_eof()
        return response


def _stored_headers(manifest: Manifest) -> dict[str, str]:
    return {
        "Content-Type": "application/octet-stream",
        "X-Artifact-Id": manifest.artifact_id,
        "X-Chunk-Size": str(manifest.chunk_size),
        "X-Encrypted": "true" if manifest.encrypted else "false",
    }
