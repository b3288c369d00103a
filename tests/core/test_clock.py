"""core.clock: the one reading of the wall clock in milliseconds."""

from __future__ import annotations

import time

from core.clock import now_ms


def test_now_ms_is_the_system_clock_in_whole_milliseconds_rounded_down() -> None:
    before = time.time_ns()
    now = now_ms()
    after = time.time_ns()
    assert type(now) is int
    assert before // 1_000_000 <= now <= after // 1_000_000
