"""The node's wall clock, in milliseconds since the Unix epoch: the unit of block, transaction and
mempool times."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
