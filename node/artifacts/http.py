"""Artifact bytes over HTTP, on the RPC server: streaming uploads and downloads with Range.

Routes:
- `PUT /artifacts` stores the request body as a single-file artifact, or, with Content-Type
  `application/x-tar`, a tar stream whose regular files (sorted by path) become one directory
  artifact. Answers 201 with the manifest summary (JSON). `?pin=false` leaves it unpinned.
  A client that knows the id may send it in `X-Artifact-Id` (or `Repr-Digest: sha-256=:<base64>:`,
  RFC 9530, for a single file): a mismatch answers 422 and keeps nothing that was new.
  `?encrypt=true` (with the id announced) stores it encrypted under a new content key that
  stays on this node (AES-256-GCM per chunk; the id stays the plaintext's); a client that keeps
  the key itself (to post envelopes on its own) sends it in `X-Content-Key` (base64), and names
  the account that will publish it in `X-Content-Publisher` (`node.artifacts.access`).
- `GET`/`HEAD /artifacts/{id}` streams a single-file artifact;
  `GET`/`HEAD /artifacts/{id}/files/{path}` one file of a directory artifact. The plaintext of an
  encrypted artifact only to a request signed by an owner or licensee, for this node
  (`node.artifacts.access`: 401 unsigned, 403 not allowed here, each with a JSON body saying
  what is needed). Both honour one
  `Range: bytes=a-b` (206 with Content-Range; 416 if unsatisfiable) and send Content-Length,
  `ETag: "sha256:<hex>"`, `Repr-Digest` (of the whole representation) and `Accept-Ranges`.
  Every chunk is checked against its id as it is read; a corrupt chunk ends the response
  early (the client sees a short body, never wrong bytes presented as complete).
- `GET`/`HEAD /artifacts/{id}/stored` streams the chunks as stored, one after another: for an
  encrypted artifact the ciphertext, which a licensee decrypts on its own machine with the
  content key from its envelope (so the key never reaches a node). `X-Chunk-Size` gives the
  plaintext chunk size; each stored chunk is that plus the 16-byte GCM tag (the last shorter).
  `?follow=true` on an artifact still being fetched from peers streams its chunks in order as
  they land here (the manifest is in `artifact_fetchStatus` meanwhile), so the transfer to
  this node and from it overlap; a fetch that fails ends the body short.

Disk work (hashing, writing, reading chunks) runs on threads; the event loop only moves
buffers. Uploads stream: the ingest thread pulls the body from the loop as it needs it.
Slow or idle clients cannot starve the others (`UploadLimits`):
- uploads run on their own pool of `max_uploads` threads, downloads read chunks on another, and
  everything else (`/metrics`, RPC) keeps the default executor: an upload never waits for a
  download's thread, nor a download or a scrape for an upload's;
- at most `max_uploads` uploads at once: one more is answered 503 with `Retry-After` before its
  body is read;
- an upload body must keep arriving: no gap longer than `idle_timeout_s`, and after the first
  `grace_s` seconds at least `min_bytes_s` bytes a second on average; otherwise 408 and nothing is
  stored, and its thread is free again.

Header values are parsed with bounds: Range positions of more than 18 digits are beyond any
artifact (never converted), a `Repr-Digest` whose sha-256 member is not base64 of 32 bytes is 400.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import re
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any

from aiohttp import web

from core.artifact import KIND_DIRECTORY, Manifest, format_id, parse_id
from core.errors import AichainError, ArtifactErased, ArtifactError, ArtifactKeyConflict, ArtifactNotFound, CorruptChunk
from core.sealing import ChunkDecryptionFailed, new_content_key
from node.artifacts.access import AccessDenied, ArtifactAccess, publisher_header
from node.artifacts.upload_body import BodyReader, UploadLimits, UploadTooSlow
from storage.artifact_store import ArtifactStore

if TYPE_CHECKING:
    from node.artifacts.flight import FetchInFlight

log = logging.getLogger("aichain.artifacts")

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)$")
_MAX_POSITION_DIGITS = 18  # 10^18 bytes: far beyond any artifact, and int() of it is cheap
_BEYOND = 1 << 62  # what a longer position means
_REPR_DIGEST = re.compile(r"(?:^|,)\s*sha-256\s*=\s*:([^:]*):")
RETRY_AFTER_S = 5
DOWNLOAD_THREADS = 4


InFlight = Callable[[bytes], "FetchInFlight | None"]
FOLLOW_STALL_S = 120.0  # longest a followed fetch may go without storing a chunk


def add_artifact_routes(app: web.Application, store: ArtifactStore, in_flight: InFlight | None = None,
                        access: ArtifactAccess | None = None,
                        limits: UploadLimits | None = None) -> Callable[[], dict[str, int]]:  # fmt: skip
    """Serve the artifact routes; returns what /metrics reads of the uploads (in progress, refused by
    reason). Without `access`, the plaintext of an encrypted artifact is served to no one."""
    endpoints = _Endpoints(store, in_flight or (lambda artifact: None), access, limits or UploadLimits())
    app.on_cleanup.append(endpoints.close)
    app.router.add_put("/artifacts", endpoints.upload)
    app.router.add_get("/artifacts/{id}", endpoints.download)  # GET also answers HEAD
    app.router.add_get("/artifacts/{id}/files/{path:.+}", endpoints.download_file)
    app.router.add_get("/artifacts/{id}/stored", endpoints.download_stored)
    return lambda: {"uploading": endpoints.uploading, **endpoints.refused}


def _stored_headers(manifest: Manifest) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", "X-Artifact-Id": manifest.artifact_id,
            "X-Chunk-Size": str(manifest.chunk_size), "X-Encrypted": "true" if manifest.encrypted else "false"}


def manifest_summary(manifest: Manifest) -> dict[str, Any]:
    return {
        "id": manifest.artifact_id,
        "kind": "directory" if manifest.kind == KIND_DIRECTORY else "file",
        "size": manifest.size,
        "chunk_size": manifest.chunk_size,
        "chunks": len(manifest.chunks),
        "merkle_root": "0x" + manifest.merkle_root.hex(),
        "encrypted": manifest.encrypted,
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256.hex()} for f in manifest.files],
    }


class _Endpoints:
    def __init__(
        self, store: ArtifactStore, in_flight: InFlight, access: ArtifactAccess | None, limits: UploadLimits
    ) -> None:
        self.store = store
        self.in_flight = in_flight
        self.access = access
        self.limits = limits
        self.uploading = 0
        self.refused = {"busy": 0, "too_slow": 0}  # uploads answered 503 and 408
        self._ingest = ThreadPoolExecutor(max_workers=limits.max_uploads, thread_name_prefix="artifact-ingest")
        self._reads = ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS, thread_name_prefix="artifact-read")

    async def close(self, app: web.Application | None = None) -> None:
        self._ingest.shutdown(wait=False, cancel_futures=True)
        self._reads.shutdown(wait=False, cancel_futures=True)

    def _on_ingest(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._ingest, functools.partial(fn, *args))

    def _read(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._reads, functools.partial(fn, *args))

    async def upload(self, request: web.Request) -> web.StreamResponse:
        if self.uploading >= self.limits.max_uploads:
            self.refused["busy"] += 1
            response = _error(503, f"all {self.limits.max_uploads} upload slots of this node are taken; try again "
                                   f"in {RETRY_AFTER_S} s")  # fmt: skip
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            response.force_close()  # the body is not read: the connection cannot carry another request
            return response
        self.uploading += 1
        try:
            return await self._upload(request)
        finally:
            self.uploading -= 1

    async def _upload(self, request: web.Request) -> web.Response:
        expected = _expected_id(request)
        pin = request.query.get("pin", "true").lower() not in ("false", "0", "no")
        encrypt = request.query.get("encrypt", "false").lower() in ("true", "1", "yes")
        if encrypt and expected is None:
            return _error(400, "encrypt=true needs the plaintext's id in X-Artifact-Id: the chunks' encryption "
                               "binds it, and it is checked as the bytes arrive")  # fmt: skip
        seal = None
        try:
            publisher = publisher_header(request.headers.get("X-Content-Publisher")) if encrypt else None
        except ValueError as exc:
            return _error(400, f"{exc} (the account that will publish the artifact, 0x + 40 hex digits)")
        already_stored = encrypt and expected is not None and self.store.has(expected)
        if already_stored and expected is not None and not self.store.manifest(expected).encrypted:
            return _error(409, f"{format_id(expected)} is already stored here unencrypted (the same bytes were added "
                               "or published in the clear), so anyone can fetch them: they cannot be made private. "
                               "Nothing was stored")  # fmt: skip
        if encrypt and expected is not None:
            try:
                given = request.headers.get("X-Content-Key")
                key = base64.b64decode(given, validate=True) if given is not None else new_content_key()
            except ValueError:
                key = b""
            if len(key) != 32:
                return _error(400, "X-Content-Key must be a 32-byte AES-256 key in base64 (or left out: the node "
                                   "then makes one)")  # fmt: skip
            held = self.store.content_key(expected) if already_stored else None
            if already_stored and held != key:
                response = _error(409, f"{format_id(expected)} is already stored here encrypted under "
                                       f"{'another' if held else 'a content key this node does not hold'}; an upload "
                                       "cannot replace it (envelopes already sealed open that copy). Nothing was "
                                       "stored")  # fmt: skip
                response.force_close()  # the body is not read
                return response
            seal = (key, expected)
        is_tar = request.content_type == "application/x-tar"
        reader = BodyReader(request, asyncio.get_running_loop(), self.limits)
        pin_now = pin and expected is None  # with an announced id: pinned only once the bytes match it
        try:
            if is_tar:
                manifest = await self._on_ingest(self._ingest_tar, reader, pin_now, seal)
            else:
                manifest = await self._on_ingest(functools.partial(self.store.add_stream, pin=pin_now, seal=seal),
                                                 reader)  # fmt: skip
        except UploadTooSlow as exc:
            self.refused["too_slow"] += 1
            log.info("upload from %s refused: %s", request.remote, exc)
            response = _error(408, f"{exc}; nothing was stored")
            response.force_close()
            return response
        except (TimeoutError, ConnectionError) as exc:
            return _error(408, f"the upload stopped arriving ({exc or 'timeout'}); nothing was stored")
        except web.RequestPayloadError:
            encoding = request.headers.get("Content-Encoding", "").strip()[:40]
            what = f"valid {encoding!r} data (Content-Encoding)" if encoding else "readable (broken chunked framing)"
            return _error(400, f"the body is not {what}; nothing was stored")
        except OSError as exc:  # a full or failing disk: the chunks written so far are unreferenced (gc)
            log.error("upload failed: %s", exc)
            return _error(507, f"the artifact store could not write: {exc.strerror or exc}; nothing was stored")
        except tarfile.TarError as exc:
            return _error(400, f"the body is not a readable tar stream: {exc}")
        except ArtifactKeyConflict as exc:  # another upload of the same bytes stored them first
            return _error(409, str(exc))
        except ArtifactError as exc:
            return _error(422 if "as announced" in str(exc) else 400, str(exc))
        except AichainError as exc:
            return _error(400, str(exc))
        if expected is not None and manifest.id != expected:
            if not self.store.is_pinned(manifest.id):  # not kept before this upload either
                await self._on_ingest(self.store.remove, manifest.id)
            return _error(422, f"the body hashes to {manifest.artifact_id}, not {format_id(expected)} as announced; "
                               "nothing new was kept")  # fmt: skip
        if expected is not None and pin:
            self.store.pin(manifest.id)
        if seal is not None and publisher is not None and self.access is not None:
            await asyncio.to_thread(self.access.bindings.bind, manifest.id, publisher)
        log.info("artifact %s stored (%d bytes, %d chunks%s)", manifest.artifact_id, manifest.size,
                 len(manifest.chunks), ", encrypted" if manifest.encrypted else "")  # fmt: skip
        return web.json_response(manifest_summary(manifest), status=201, headers=_digest_headers(manifest.id, None))

    def _ingest_tar(self, reader: BodyReader, pin: bool, seal: tuple[bytes, bytes] | None) -> Manifest:
        with tarfile.open(fileobj=reader, mode="r|", bufsize=1 << 20) as archive:

            def members() -> Iterator[tuple[str, IO[bytes]]]:
                for member in archive:
                    if member.isdir():
                        continue
                    if not member.isfile():
                        raise AichainError(f"{member.name}: only regular files and directories may be in the tar")
                    stream = archive.extractfile(member)
                    assert stream is not None
                    yield member.name.removeprefix("./"), stream

            return self.store.add_files(members(), pin=pin, seal=seal)

    async def download(self, request: web.Request) -> web.StreamResponse:
        manifest = await self._manifest(request)
        if manifest.kind == KIND_DIRECTORY:
            listing = json.dumps(manifest_summary(manifest))
            return _error(409, f"{manifest.artifact_id} is a directory: get its files at "
                               f"/artifacts/{manifest.artifact_id}/files/<path>; its listing: {listing}")  # fmt: skip
        if manifest.encrypted and self.store.content_key(manifest.id) is None:
            return _error(409, f"{manifest.artifact_id} is encrypted and this node has not got its content key")
        refused = self._refuse_plaintext(request, manifest)
        if refused is not None:
            return refused
        return await self._send(request, manifest, 0, manifest.size, manifest.id)

    async def download_file(self, request: web.Request) -> web.StreamResponse:
        manifest = await self._manifest(request)
        if manifest.encrypted and self.store.content_key(manifest.id) is None:
            return _error(409, f"{manifest.artifact_id} is encrypted and this node has not got its content key")
        refused = self._refuse_plaintext(request, manifest)
        if refused is not None:
            return refused
        wanted = request.match_info["path"]
        offset = 0
        for entry in manifest.files:
            if entry.path == wanted:
                return await self._send(request, manifest, offset, offset + entry.size, entry.sha256)
            offset += entry.size
        raise web.HTTPNotFound(text=f"{manifest.artifact_id} has no file {wanted!r}")

    def _refuse_plaintext(self, request: web.Request, manifest: Manifest) -> web.Response | None:
        """The answer refusing this request an encrypted artifact's plaintext, or None if it may have it."""
        if not manifest.encrypted:
            return None
        if self.access is None:
            return _error(403, f"{manifest.artifact_id} is private and this server serves no private plaintext")
        try:
            grant = self.access.authorize(manifest, request.method, request.path, request.headers.get("Range", ""),
                                          request.headers.get("Authorization"))  # fmt: skip
        except AccessDenied as exc:
            headers = {"WWW-Authenticate": 'AichainRead realm="aichain"'} if exc.status == 401 else None
            return web.json_response({"error": exc.message, "artifact": manifest.artifact_id, "private": True},
                                     status=exc.status, headers=headers)  # fmt: skip
        log.info("private %s of %s to %s (%s@%d)", request.method, request.path, "0x" + grant.account.hex(),
                 grant.model, grant.version)  # fmt: skip
        return None

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
        while True:
            try:
                chunk = await self._read(next, chunks, None)
            except CorruptChunk as exc:
                log.error("download of the stored chunks of %s stopped: %s", manifest.artifact_id, exc)
                if request.transport is not None:
                    request.transport.close()  # a short body, never a damaged chunk
                return response
            if chunk is None:
                break
            await response.write(chunk)
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
                    log.warning("following the fetch of %s stopped at chunk %d: %s", manifest.artifact_id, index,
                                exc or "no chunk stored for a long time")  # fmt: skip
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

    async def _send(self, request: web.Request, manifest: Manifest, first: int, end: int,
                    digest: bytes) -> web.StreamResponse:  # fmt: skip
        """Bytes [first, end) of the artifact: a file's whole representation, or the Range of it asked for."""
        length = end - first
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
                   **_digest_headers(digest, manifest)}  # fmt: skip
        status, start, stop = 200, 0, length
        asked = request.headers.get("Range")
        parsed = _parse_range(asked, length) if asked is not None else _WHOLE
        if parsed is None:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{length}"})
        if parsed is not _WHOLE:  # one satisfiable range: 206
            start, stop = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{length}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = stop - start
        await response.prepare(request)
        if request.method == "HEAD" or stop == start:
            await response.write_eof()
            return response
        pieces = self.store.read_range(manifest, first + start, first + stop)
        while True:
            try:
                piece = await self._read(next, pieces, None)
            except (CorruptChunk, ChunkDecryptionFailed) as exc:
                log.error("download of %s stopped: %s", manifest.artifact_id, exc)
                if request.transport is not None:
                    request.transport.close()  # a short body, never wrong bytes presented as whole
                return response
            if piece is None:
                break
            await response.write(piece)
        await response.write_eof()
        return response


def _expected_id(request: web.Request) -> bytes | None:
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
        raise web.HTTPBadRequest(text="Repr-Digest: sha-256 must be the base64 of 32 bytes between colons, as "
                                      "sha-256=:<base64>: (RFC 9530); or announce the id in X-Artifact-Id")  # fmt: skip
    return raw


def _digest_headers(digest: bytes, manifest: Manifest | None) -> dict[str, str]:
    headers = {"ETag": f'"{format_id(digest)}"', "Repr-Digest": f"sha-256=:{base64.b64encode(digest).decode()}:"}
    if manifest is not None:
        headers["X-Artifact-Id"] = manifest.artifact_id
    return headers


_WHOLE = (0, -1)  # a Range this server does not do (several ranges, other units): the whole body, as RFC 9110 allows


def _parse_range(value: str, length: int) -> tuple[int, int] | None:
    """[start, stop) of one `bytes=a-b`, `bytes=a-` or `bytes=-n` range; None if it cannot be met; `_WHOLE` if it is
    a kind of range this server ignores."""
    match = _RANGE.match(value.strip())
    if match is None or match.groups() == ("", ""):
        return _WHOLE
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


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
