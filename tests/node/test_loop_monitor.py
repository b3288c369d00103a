"""The event-loop lag monitor: a blocked loop is measured, exported and named in the log."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from node.loop_monitor import LoopMonitor
from node.metrics import NodeMetrics


def _sample(metrics: NodeMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def _hold_the_loop(seconds: float) -> None:
    """Busy work on the loop's thread for `seconds` of its CPU time (on a busy machine it takes longer)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(1000))


async def test_a_blocked_loop_is_measured_and_its_culprit_named(caplog: pytest.LogCaptureFixture) -> None:
    metrics = NodeMetrics()
    monitor = LoopMonitor(metrics)
    monitor.start()
    try:
        await asyncio.sleep(0.1)
        with caplog.at_level(logging.WARNING, logger="aichain.loop"):
            _hold_the_loop(0.3)
            await asyncio.sleep(0.05)
    finally:
        await monitor.stop()
    assert monitor.max_blocked_s >= 0.25
    assert _sample(metrics, "aichain_event_loop_blocked_max_seconds") >= 0.25
    assert _sample(metrics, "aichain_event_loop_lag_max_seconds") >= 0.25
    assert _sample(metrics, "aichain_event_loop_stalls_total") >= 1
    over = _sample(metrics, "aichain_event_loop_blocked_seconds_count") - _sample(
        metrics, "aichain_event_loop_blocked_seconds_bucket", le="0.1"
    )
    assert over >= 1
    stalls = [r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert stalls, caplog.text
    assert any("_hold_the_loop" in message for message in stalls), stalls


async def test_a_loop_that_only_awaits_has_no_stall() -> None:
    metrics = NodeMetrics()
    monitor = LoopMonitor(metrics)
    monitor.start()
    try:
        for _ in range(30):
            await asyncio.sleep(0.01)
    finally:
        await monitor.stop()
    assert _sample(metrics, "aichain_event_loop_stalls_total") == 0
    assert _sample(metrics, "aichain_event_loop_lag_seconds_count") >= 10
    assert monitor.max_blocked_s < 0.1
