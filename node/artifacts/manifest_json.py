"""A manifest as JSON: what the HTTP routes and the `artifact_*` RPC methods show of an artifact."""

from __future__ import annotations

from typing import Any

from core.artifact import KIND_DIRECTORY, Manifest


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
