"""The `artifact_` RPC namespace: what this node stores, and keeping it (pins, checks, gc, removal).

The methods that keep it (pin, unpin, verify, gc, remove, fetch) are admin methods: they spend this
node's disk, CPU and bandwidth, so only callers `node.rpc.admin` trusts may use them. Reading what is
stored (list, info, fetchStatus) is open to all.

The bytes themselves move over plain HTTP (node/artifacts/http.py), which streams. No method here
returns an artifact's bytes: a private one's plaintext is only for signed owners and licensees
(`node.artifacts.access`); `artifact_verify` decrypts to check the digest but answers only yes or no.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from core.artifact import format_id, parse_id
from core.errors import ArtifactError, ArtifactNotFound
from node.artifacts.manifest_json import manifest_summary
from node.rpc import params as p
from node.rpc.registry import MethodRegistry, Param

if TYPE_CHECKING:
    from node.artifacts.exchange import ArtifactExchange
    from storage.artifact_store import ArtifactStore


def artifact_id(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected an artifact id, sha256:<64 hex digits>")
    return parse_id(value)


ID = Param("id", artifact_id, doc="artifact id, sha256:<hex>")


def register_artifacts(registry: MethodRegistry, store: ArtifactStore, peers: ArtifactExchange | None) -> None:
    """The `artifact_` methods over `store`; `peers` fetches from other nodes (None: P2P is off)."""

    def exchange() -> ArtifactExchange:
        if peers is None:
            raise ArtifactError("this node runs without P2P (p2p.enabled = false): it cannot fetch from peers")
        return peers

    @registry.method(
        "artifact_list",
        doc="The artifacts stored on this node, with their sizes and pins.",
        example={"params": [], "result": [{"id": "sha256:9f86…", "size": 4, "pinned": True}]},
    )
    def artifact_list() -> list[dict[str, Any]]:
        return [{**manifest_summary(info.manifest), "pinned": info.pinned} for info in store.artifacts()]

    @registry.method(
        "artifact_info",
        ID,
        doc="An artifact's manifest: size, chunks, Merkle root, files.",
        example={"params": ["sha256:9f86…"], "result": {"id": "sha256:9f86…", "chunks": 1}},
    )
    def artifact_info(artifact: bytes) -> dict[str, Any]:
        manifest = store.manifest(artifact)
        return {
            **manifest_summary(manifest),
            "pinned": store.is_pinned(artifact),
            "chunk_ids": ["0x" + c.hex() for c in manifest.chunks],
        }

    @registry.method("artifact_pin", ID, doc="Keep an artifact through garbage collection.", admin=True)
    def artifact_pin(artifact: bytes) -> bool:
        store.pin(artifact)
        return True

    @registry.method("artifact_unpin", ID, doc="Let garbage collection remove an artifact.", admin=True)
    def artifact_unpin(artifact: bytes) -> bool:
        store.unpin(artifact)
        return True

    @registry.method(
        "artifact_verify",
        ID,
        Param("repair", p.boolean, default=False, doc="fetch the damaged chunks again from peers"),
        admin=True,
        doc="Re-read and re-hash every chunk of an artifact: what is damaged; with repair, fetch it again from peers.",
        example={
            "params": ["sha256:9f86…", True],
            "result": {"id": "sha256:9f86…", "ok": False, "bad_chunks": [3], "digest_ok": False, "repaired": [3]},
        },
    )
    async def artifact_verify(artifact: bytes, repair: bool) -> dict[str, Any]:
        report = await asyncio.to_thread(store.verify, artifact)
        answer: dict[str, Any] = {
            "id": report.artifact,
            "ok": report.ok,
            "chunks": report.chunks,
            "bad_chunks": report.bad_chunks,
            "digest_ok": report.digest_ok,
        }
        if repair and report.bad_chunks:
            answer["repaired"] = await exchange().repair(artifact, report.bad_chunks)
        return answer

    @registry.method(
        "artifact_gc",
        admin=True,
        doc="Remove unpinned artifacts and chunk files no artifact lists.",
        example={"params": [], "result": {"artifacts_removed": 1, "chunks_removed": 3, "bytes_freed": 9}},
    )
    async def artifact_gc() -> dict[str, int]:
        report = await asyncio.to_thread(store.gc)
        return {
            "artifacts_removed": report.artifacts_removed,
            "chunks_removed": report.chunks_removed,
            "bytes_freed": report.bytes_freed,
        }

    @registry.method(
        "artifact_remove",
        ID,
        Param("erase", p.boolean, default=False, doc="keep a tombstone: the node will not fetch it again unless asked"),
        admin=True,
        doc="Delete an artifact's bytes from this node now (chunks other artifacts list stay).",
        example={"params": ["sha256:9f86…", True], "result": {"bytes_freed": 4}},
    )
    async def artifact_remove(artifact: bytes, erase: bool) -> dict[str, int]:
        return {"bytes_freed": await asyncio.to_thread(store.remove, artifact, tombstone=erase)}

    @registry.method(
        "artifact_fetch",
        ID,
        Param("pin", p.boolean, default=True, doc="keep it through garbage collection"),
        Param("force", p.boolean, default=False, doc="fetch it even if it was erased here"),
        Param("wait_s", p.quantity, default=0, doc="wait up to this many seconds (at most 600) for it to finish"),
        admin=True,
        doc="Fetch an artifact from peers: chunks from every peer that has it, each checked on arrival; "
        "resumes what an earlier attempt stored. Returns the fetch's status (poll artifact_fetchStatus).",
        example={
            "params": ["sha256:9f86…", True, False, 0],
            "result": {"id": "sha256:9f86…", "state": "fetching", "chunks": 256, "chunks_done": 12},
        },
    )
    async def artifact_fetch(artifact: bytes, pin: bool, force: bool, wait_s: int) -> dict[str, Any]:
        fetcher = exchange()
        status = fetcher.start_fetch(artifact, pin=pin, force=force)
        if wait_s:
            await fetcher.wait(artifact, min(wait_s, 600))
        return status.to_json()

    @registry.method(
        "artifact_fetchStatus",
        ID,
        doc="How a fetch started by artifact_fetch is going (state: finding, fetching, checking, done, failed). "
        "While chunks are arriving it includes the artifact's `manifest`: GET /artifacts/{id}/stored?follow=true "
        "then streams the chunks as they land.",
        example={
            "params": ["sha256:9f86…"],
            "result": {"id": "sha256:9f86…", "state": "done", "bytes_fetched": 1073741824, "bytes_per_s": 2.1e8},
        },
    )
    def artifact_fetch_status(artifact: bytes) -> dict[str, Any]:
        fetcher = exchange()
        status = fetcher.status.get(artifact)
        if status is None:
            raise ArtifactNotFound(f"no fetch of {format_id(artifact)} was started since the node started")
        flight = fetcher.in_flight.get(artifact)
        if flight is None:
            return status.to_json()
        return {**status.to_json(), "manifest": manifest_summary(flight.manifest)}  # readable with ?follow=true
