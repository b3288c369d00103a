"""How far a fetch of an artifact from peers has come, as `artifact_fetchStatus` reports it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from core.artifact import format_id


@dataclass(slots=True)
class FetchStatus:
    artifact: bytes
    state: str = "finding"  # finding, fetching, checking, done, failed
    size: int = 0
    chunks: int = 0
    chunks_done: int = 0
    bytes_fetched: int = 0
    error: str = ""
    from_peers: dict[str, int] = field(default_factory=dict)  # peer node key -> chunks it sent that were kept
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None  # when it was done or failed: its seconds stop there

    def to_json(self) -> dict[str, Any]:
        elapsed = max((self.ended or time.monotonic()) - self.started, 1e-9)
        return {
            "id": format_id(self.artifact),
            "state": self.state,
            "size": self.size,
            "chunks": self.chunks,
            "chunks_done": self.chunks_done,
            "bytes_fetched": self.bytes_fetched,
            "error": self.error,
            "from_peers": dict(self.from_peers),
            "seconds": round(elapsed, 3),
            "bytes_per_s": round(self.bytes_fetched / elapsed),
        }
