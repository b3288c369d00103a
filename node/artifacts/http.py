"""Artifact bytes over HTTP, on the RPC server: streaming uploads and downloads with Range.

Routes:
- `PUT /artifacts`: an upload (`node.artifacts.http_uploads`), an admin route: only for callers
  `admin` trusts (`node.rpc.admin`), 403 for the others;
- `GET`/`HEAD /artifacts/{id}` and `/artifacts/{id}/files/{path}`: a file's bytes, the plaintext
  of a private one only to a signed request allowed to read it (`node.artifacts.http_downloads`,
  `node.artifacts.http_private`);
- `GET`/`HEAD /artifacts/{id}/stored`: the chunks as stored, while a fetch from peers runs too.

Disk work (hashing, writing, reading chunks) runs on threads; the event loop only moves
buffers. Uploads run on their own pool of `max_uploads` threads, downloads read chunks on
another, and everything else (`/metrics`, RPC) keeps the default executor: an upload never
waits for a download's thread, nor a download or a scrape for an upload's.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from node.artifacts.access import ArtifactAccess
from node.artifacts.http_downloads import Downloads, InFlight, Repair
from node.artifacts.http_uploads import Uploads
from node.artifacts.upload_body import UploadLimits
from node.rpc.admin import LOOPBACK_ONLY, AdminGate
from storage.artifact_store import ArtifactStore


def add_artifact_routes(
    app: web.Application,
    store: ArtifactStore,
    in_flight: InFlight | None = None,
    access: ArtifactAccess | None = None,
    limits: UploadLimits | None = None,
    admin: AdminGate = LOOPBACK_ONLY,
    repair: Repair | None = None,
) -> Callable[[], dict[str, int]]:
    """Serve the artifact routes; returns what /metrics reads of them (uploads in progress, refused by
    reason; damaged chunks fetched again while serving, `healed` and `heal_failed`). Without `access`,
    the plaintext of an encrypted artifact is served to no one; with `repair`, a damaged chunk found
    while serving is fetched again from peers."""
    uploads = Uploads(store, access, limits or UploadLimits(), admin)
    downloads = Downloads(store, in_flight or (lambda artifact: None), access, repair)
    app.on_cleanup.append(uploads.close)
    app.on_cleanup.append(downloads.close)
    app.router.add_put("/artifacts", uploads.upload)
    app.router.add_get("/artifacts/{id}", downloads.download)  # GET also answers HEAD
    app.router.add_get("/artifacts/{id}/files/{path:.+}", downloads.download_file)
    app.router.add_get("/artifacts/{id}/stored", downloads.download_stored)

    def counts() -> dict[str, int]:
        healed = downloads.counts()
        return {**uploads.counts(), "healed": healed["healed"], "heal_failed": healed["failed"]}

    return counts
