"""Counters of the P2P layer: plain numbers, read by node/metrics.py or tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class P2PMetrics:
    """Cumulative since start, except `peers_inbound`/`peers_outbound` (current)."""

    bytes_in: int = 0
    bytes_out: int = 0
    messages_in: Counter[int] = field(default_factory=Counter)
    messages_out: Counter[int] = field(default_factory=Counter)
    dropped_rate_limited: int = 0
    penalties: Counter[str] = field(default_factory=Counter)
    bans: int = 0
    handshakes_ok: int = 0
    refused_by_us: Counter[str] = field(default_factory=Counter)
    refused_by_peer: Counter[str] = field(default_factory=Counter)
    handshake_errors: int = 0
    disconnects: Counter[str] = field(default_factory=Counter)
    dials: int = 0
    dial_failures: int = 0
    peers_inbound: int = 0
    peers_outbound: int = 0

    @property
    def peers(self) -> int:
        return self.peers_inbound + self.peers_outbound

    def snapshot(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            out[name] = {str(k): v for k, v in value.items()} if isinstance(value, Counter) else value
        out["peers"] = self.peers
        return out
