"""The wall clock in whole milliseconds since the Unix epoch: the unit of the timestamps the node
keeps and signs (block headers, signed reads, when a transaction arrived, when an artifact was
erased). Read here only, so that every part rounds it the same way.

The consensus machine and the VM never read it: the time reaches them as an input (the
proposer's timestamp, the block's time), so that replaying a block gives the same result.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch by the system clock, rounded down. The system clock can be
    stepped: measure durations with `time.monotonic`, not with differences of this."""
    return time.time_ns() // 1_000_000
