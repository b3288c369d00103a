"""`PUT /artifacts`: an upload streamed into the artifact store.

The body is stored as a single-file artifact, or, with Content-Type `application/x-tar`, as a
tar stream whose regular files (sorted by path) become one directory artifact. The answer is
201 with the manifest summary (JSON). `?pin=false` leaves it unpinned. A client that knows the
id may announce it (`node.artifacts.http_headers`): a mismatch answers 422 and keeps nothing
that was new. `?encrypt=true` (with the id announced) stores it encrypted under a new content
key that stays on this node (AES-256-GCM per chunk; the id stays the plaintext's); a client
that keeps the key itself (to post envelopes on its own) sends it in `X-Content-Key` (base64),
and names the account that will publish it in `X-Content-Publisher` (`node.artifacts.access`).

An upload spends this node's disk: it is an admin route (`node.rpc.admin`), answered 403 with what
to do, before its body is read, unless the caller may administer the node.

Hashing and writing run on the uploads' own pool of `max_uploads` threads, which pull the body
from the event loop as they need it; the loop only moves buffers. Slow or idle clients cannot
starve the others (`UploadLimits`):
- at most `max_uploads` uploads at once: one more is answered 503 with `Retry-After` before its
  body is read;
- an upload body must keep arriving: no gap longer than `idle_timeout_s`, and after the first
  `grace_s` seconds at least `min_bytes_s` bytes a second on average; otherwise 408 and nothing is
  stored, and its thread is free again.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import logging
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from aiohttp import web

from core.artifact import Manifest, format_id
from core.errors import AichainError, ArtifactError, ArtifactKeyConflict
from core.sealing import new_content_key
from node.artifacts.access import ArtifactAccess, publisher_header
from node.artifacts.http_headers import digest_headers, error, expected_id
from node.artifacts.manifest_json import manifest_summary
from node.artifacts.upload_body import BodyReader, UploadLimits, UploadTooSlow
from node.rpc.admin import AdminGate
from storage.artifact_store import ArtifactStore

log = logging.getLogger("aichain.artifacts")

RETRY_AFTER_S = 5


class Uploads:
    def __init__(
        self, store: ArtifactStore, access: ArtifactAccess | None, limits: UploadLimits, admin: AdminGate
    ) -> None:
        self.store = store
        self.admin = admin
        self.access = access
        self.limits = limits
        self.uploading = 0
        self.refused = {"busy": 0, "too_slow": 0, "admin": 0}  # uploads answered 503, 408 and 403
        self._ingest = ThreadPoolExecutor(max_workers=limits.max_uploads, thread_name_prefix="artifact-ingest")

    def counts(self) -> dict[str, int]:
        """What /metrics shows of the uploads: in progress, and refused by reason."""
        return {"uploading": self.uploading, **self.refused}

    async def close(self, app: web.Application | None = None) -> None:
        self._ingest.shutdown(wait=False, cancel_futures=True)

    def _on_ingest(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._ingest, functools.partial(fn, *args))

    async def upload(self, request: web.Request) -> web.StreamResponse:
        refusal = self.admin.refusal(request.remote, request.headers.get("Authorization"))
        if refusal is not None:
            self.refused["admin"] += 1
            response = error(403, f"an upload (PUT /artifacts) administers this node and is refused: {refusal}")
            response.force_close()  # the body is not read: the connection cannot carry another request
            return response
        if self.uploading >= self.limits.max_uploads:
            self.refused["busy"] += 1
            response = error(
                503,
                f"all {self.limits.max_uploads} upload slots of this node are taken; try again in {RETRY_AFTER_S} s",
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            response.force_close()  # the body is not read: the connection cannot carry another request
            return response
        self.uploading += 1
        try:
            return await self._upload(request)
        finally:
            self.uploading -= 1

    async def _upload(self, request: web.Request) -> web.Response:
        expected = expected_id(request)
        pin = request.query.get("pin", "true").lower() not in ("false", "0", "no")
        encrypt = request.query.get("encrypt", "false").lower() in ("true", "1", "yes")
        if encrypt and expected is None:
            return error(
                400,
                "encrypt=true needs the plaintext's id in X-Artifact-Id: the chunks' encryption "
                "binds it, and it is checked as the bytes arrive",
            )
        seal = None
        try:
            publisher = publisher_header(request.headers.get("X-Content-Publisher")) if encrypt else None
        except ValueError as exc:
            return error(400, f"{exc} (the account that will publish the artifact, 0x + 40 hex digits)")
        already_stored = encrypt and expected is not None and self.store.has(expected)
        if already_stored and expected is not None and not self.store.manifest(expected).encrypted:
            return error(
                409,
                f"{format_id(expected)} is already stored here unencrypted (the same bytes were added "
                "or published in the clear), so anyone can fetch them: they cannot be made private. "
                "Nothing was stored",
            )
        plaintext_of_sealed = not encrypt and expected is not None and self.store.has(expected)
        if plaintext_of_sealed and expected is not None and self.store.manifest(expected).encrypted:
            response = _stored_encrypted(expected)
            response.force_close()  # the body is not read
            return response
        if encrypt and expected is not None:
            try:
                given = request.headers.get("X-Content-Key")
                key = base64.b64decode(given, validate=True) if given is not None else new_content_key()
            except ValueError:
                key = b""
            if len(key) != 32:
                return error(
                    400, "X-Content-Key must be a 32-byte AES-256 key in base64 (or left out: the node then makes one)"
                )
            held = self.store.content_key(expected) if already_stored else None
            if already_stored and held != key:
                response = error(
                    409,
                    f"{format_id(expected)} is already stored here encrypted under "
                    f"{'another' if held else 'a content key this node does not hold'}; an upload "
                    "cannot replace it (envelopes already sealed open that copy). Nothing was "
                    "stored",
                )
                response.force_close()  # the body is not read
                return response
            seal = (key, expected)
        is_tar = request.content_type == "application/x-tar"
        reader = BodyReader(request, asyncio.get_running_loop(), self.limits)  # type: ignore[abstract]  # only read() is used
        pin_now = pin and expected is None  # with an announced id: pinned only once the bytes match it
        try:
            if is_tar:
                manifest = await self._on_ingest(self._ingest_tar, reader, pin_now, seal)
            else:
                manifest = await self._on_ingest(
                    functools.partial(self.store.add_stream, pin=pin_now, seal=seal), reader
                )
        except UploadTooSlow as exc:
            self.refused["too_slow"] += 1
            log.info("upload from %s refused: %s", request.remote, exc)
            response = error(408, f"{exc}; nothing was stored")
            response.force_close()
            return response
        except (TimeoutError, ConnectionError) as exc:
            return error(408, f"the upload stopped arriving ({str(exc) or 'timeout'}); nothing was stored")
        except web.RequestPayloadError:
            encoding = request.headers.get("Content-Encoding", "").strip()[:40]
            what = f"valid {encoding!r} data (Content-Encoding)" if encoding else "readable (broken chunked framing)"
            return error(400, f"the body is not {what}; nothing was stored")
        except OSError as exc:  # a full or failing disk: the chunks written so far are unreferenced (gc)
            log.error("upload failed: %s", exc)
            return error(507, f"the artifact store could not write: {exc.strerror or exc}; nothing was stored")
        except tarfile.TarError as exc:
            return error(400, f"the body is not a readable tar stream: {exc}")
        except ArtifactKeyConflict as exc:  # another upload of the same bytes stored them first
            return error(409, str(exc))
        except ArtifactError as exc:
            return error(422 if "as announced" in str(exc) else 400, str(exc))
        except AichainError as exc:
            return error(400, str(exc))
        if expected is not None and manifest.id != expected:
            if not self.store.is_pinned(manifest.id):  # not kept before this upload either
                await self._on_ingest(self.store.remove, manifest.id)
            return error(
                422,
                f"the body hashes to {manifest.artifact_id}, not {format_id(expected)} as announced; "
                "nothing new was kept",
            )
        if not manifest.encrypted and self.store.manifest(manifest.id).encrypted:
            # The store keeps the manifest it had: these plaintext chunks are unreferenced, and gc removes them.
            return _stored_encrypted(manifest.id)
        if expected is not None and pin:
            self.store.pin(manifest.id)
        if seal is not None and publisher is not None and self.access is not None:
            await asyncio.to_thread(self.access.bindings.bind, manifest.id, publisher)
        log.info(
            "artifact %s stored (%d bytes, %d chunks%s)",
            manifest.artifact_id,
            manifest.size,
            len(manifest.chunks),
            ", encrypted" if manifest.encrypted else "",
        )
        return web.json_response(manifest_summary(manifest), status=201, headers=digest_headers(manifest.id, None))

    def _ingest_tar(self, reader: BodyReader, pin: bool, seal: tuple[bytes, bytes] | None) -> Manifest:
        with tarfile.open(fileobj=reader, mode="r|", bufsize=1 << 20) as archive:

            def members() -> Iterator[tuple[str, BinaryIO]]:
                for member in archive:
                    if member.isdir():
                        continue
                    if not member.isfile():
                        raise AichainError(f"{member.name}: only regular files and directories may be in the tar")
                    stream = archive.extractfile(member)
                    assert isinstance(stream, io.BufferedReader)  # tarfile's ExFileObject, for a regular file
                    yield member.name.removeprefix("./"), stream

            return self.store.add_files(members(), pin=pin, seal=seal)


def _stored_encrypted(artifact: bytes) -> web.Response:
    """The bytes are stored here encrypted (a private model's): a plaintext copy would be served to anyone."""
    return error(
        409,
        f"{format_id(artifact)} is already stored here encrypted (a private model's bytes), so a copy in the "
        "clear was not kept: a public version naming it could never be pulled. Publish it with --private "
        f"(licensees get its key), or remove the node's copy first (`aichain-node artifact rm {format_id(artifact)}`)",
        reason="stored_encrypted",
    )
