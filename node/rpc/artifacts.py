"""The `artifact_` RPC namespace: what this node stores, and keeping it (pins, checks, gc, removal).

The bytes themselves move over plain HTTP (node/artifacts_http.py), which streams.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from core.artifact import parse_id
from node.artifacts_http import manifest_summary
from node.rpc import params as p
from node.rpc.registry import MethodRegistry, Param

if TYPE_CHECKING:
    from node.node import Node


def artifact_id(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected an artifact id, sha256:<64 hex digits>")
    return parse_id(value)


ID = Param("id", artifact_id, doc="artifact id, sha256:<hex>")


def register_artifacts(registry: MethodRegistry, node: Node) -> None:
    store = node.artifacts

    @registry.method("artifact_list", doc="The artifacts stored on this node, with their sizes and pins.",
                     example={"params": [], "result": [{"id": "sha256:9f86…", "size": 4, "pinned": True}]})  # fmt: skip
    def artifact_list() -> list[dict[str, Any]]:
        return [{**manifest_summary(info.manifest), "pinned": info.pinned} for info in store.artifacts()]

    @registry.method("artifact_info", ID, doc="An artifact's manifest: size, chunks, Merkle root, files.",
                     example={"params": ["sha256:9f86…"], "result": {"id": "sha256:9f86…", "chunks": 1}})  # fmt: skip
    def artifact_info(artifact: bytes) -> dict[str, Any]:
        manifest = store.manifest(artifact)
        return {**manifest_summary(manifest), "pinned": store.is_pinned(artifact),
                "chunk_ids": ["0x" + c.hex() for c in manifest.chunks]}  # fmt: skip

    @registry.method("artifact_pin", ID, doc="Keep an artifact through garbage collection.")
    def artifact_pin(artifact: bytes) -> bool:
        store.pin(artifact)
        return True

    @registry.method("artifact_unpin", ID, doc="Let garbage collection remove an artifact.")
    def artifact_unpin(artifact: bytes) -> bool:
        store.unpin(artifact)
        return True

    @registry.method(
        "artifact_verify",
        ID,
        doc="Re-read and re-hash every chunk of an artifact: what is damaged.",
        example={"params": ["sha256:9f86…"],
                 "result": {"id": "sha256:9f86…", "ok": False, "bad_chunks": [3], "digest_ok": False}},
    )  # fmt: skip
    async def artifact_verify(artifact: bytes) -> dict[str, Any]:
        report = await asyncio.to_thread(store.verify, artifact)
        return {"id": report.artifact, "ok": report.ok, "chunks": report.chunks, "bad_chunks": report.bad_chunks,
                "digest_ok": report.digest_ok}  # fmt: skip

    @registry.method(
        "artifact_gc",
        doc="Remove unpinned artifacts and chunk files no artifact lists.",
        example={"params": [], "result": {"artifacts_removed": 1, "chunks_removed": 3, "bytes_freed": 9}},
    )
    async def artifact_gc() -> dict[str, int]:
        report = await asyncio.to_thread(store.gc)
        return {"artifacts_removed": report.artifacts_removed, "chunks_removed": report.chunks_removed,
                "bytes_freed": report.bytes_freed}  # fmt: skip

    @registry.method(
        "artifact_remove",
        ID,
        Param("erase", p.boolean, default=False, doc="keep a tombstone: the node will not fetch it again unless asked"),
        doc="Delete an artifact's bytes from this node now (chunks other artifacts list stay).",
        example={"params": ["sha256:9f86…", True], "result": {"bytes_freed": 4}},
    )
    async def artifact_remove(artifact: bytes, erase: bool) -> dict[str, int]:
        return {"bytes_freed": await asyncio.to_thread(store.remove, artifact, tombstone=erase)}
