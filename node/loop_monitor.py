"""How late the event loop wakes up: the measure of "nothing blocks the loop for more than 100 ms".

Rules:
- A task sleeps `interval_s` (10 ms) again and again; each time it wakes, the overshoot beyond
  the sleep is the loop's lag: how long whatever ran meanwhile kept the loop from its timers.
- Part of a lag can be time the loop's thread spent waiting for a CPU (the machine is busy: other
  processes, not this node). On Linux that wait is read from `/proc/thread-self/schedstat` and
  taken off: what is left is the time the loop was *blocked* (running something, waiting for the
  GIL or in a blocking system call). Both are exported; "blocked" is the one this node answers for.
- A blocked time over `stall_s` (100 ms) is a stall: logged as a warning, with the code the loop
  thread was running when a watchdog thread looked (it samples the loop thread's stack every
  `stall_s / 4` while a wake-up is overdue). A stall inside C code that holds the GIL cannot be
  sampled (the watchdog needs the GIL too); it is reported without a culprit.
- Figures go to `LoopLagMetrics`: histograms of lag and blocked time, their maxima since start
  and the number of stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

log = logging.getLogger("aichain.loop")

INTERVAL_S = 0.01
STALL_S = 0.1
_SCHEDSTAT = Path("/proc/thread-self/schedstat")
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LoopLagMetrics(Protocol):
    """Where the monitor puts its figures (node/metrics.py implements it)."""

    def loop_tick(self, lag_s: float, blocked_s: float) -> None: ...

    def loop_stall(self) -> None: ...


@dataclass
class _Beat:
    """The loop's last wake-up, shared with the watchdog thread (plain attribute reads are atomic)."""

    at: float = 0.0
    culprit: str | None = None


class LoopMonitor:
    """Measures the lag of the running loop until `stop()`. Start it from inside that loop."""

    def __init__(self, metrics: LoopLagMetrics, *, interval_s: float = INTERVAL_S, stall_s: float = STALL_S) -> None:
        self.metrics = metrics
        self.interval_s = interval_s
        self.stall_s = stall_s
        self.max_lag_s = 0.0
        self.max_blocked_s = 0.0
        self._beat = _Beat()
        self._task: asyncio.Task[None] | None = None
        self._watchdog: threading.Thread | None = None
        self._stopped = threading.Event()
        self._loop_thread = 0

    def start(self) -> None:
        self._loop_thread = threading.get_ident()
        self._beat.at = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-monitor")
        self._watchdog = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._watchdog.start()

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._watchdog is not None:
            await asyncio.to_thread(self._watchdog.join, 1.0)

    async def _run(self) -> None:
        # The wait is read once per wake-up, from a file kept open (opened here: `thread-self` is
        # the thread that opens it): 100 opens and closes a second were a few % of a busy loop's CPU.
        schedstat = _SchedStat()
        try:
            waited_before = schedstat.waited_s()
            while True:
                started = time.monotonic()
                self._beat.at = started
                self._beat.culprit = None
                await asyncio.sleep(self.interval_s)
                lag = max(0.0, time.monotonic() - started - self.interval_s)
                waited_after = schedstat.waited_s()
                waited = waited_after - waited_before if waited_after is not None and waited_before is not None else 0.0
                waited_before = waited_after
                blocked = max(0.0, lag - waited)
                self.max_lag_s = max(self.max_lag_s, lag)
                self.max_blocked_s = max(self.max_blocked_s, blocked)
                self.metrics.loop_tick(lag, blocked)
                if blocked > self.stall_s:
                    self.metrics.loop_stall()
                    culprit = self._beat.culprit
                    log.warning(
                        "event loop blocked for %.0f ms (lag %.0f ms, %.0f ms of it waiting for a CPU)%s",
                        blocked * 1000,
                        lag * 1000,
                        waited * 1000,
                        f"; it was running {culprit}" if culprit else "",
                    )
        finally:
            schedstat.close()

    def _watch(self) -> None:
        """While a wake-up is overdue by more than `stall_s`, note what the loop thread runs (once per beat)."""
        period = self.stall_s / 4
        while not self._stopped.wait(period):
            beat = self._beat
            overdue = time.monotonic() - beat.at - self.interval_s
            if overdue > self.stall_s and beat.culprit is None:
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None:
                    beat.culprit = _where(frame)


class _SchedStat:
    """Seconds the opening thread has spent runnable but waiting for a CPU (Linux schedstat), or None."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open(_SCHEDSTAT, os.O_RDONLY)
        except OSError:
            self._fd = None

    def waited_s(self) -> float | None:
        if self._fd is None:
            return None
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _where(frame: FrameType) -> str:
    """The innermost frame of this project's code on the stack (and the innermost one, if elsewhere)."""
    innermost = frame
    current: FrameType | None = frame
    while current is not None:
        path = current.f_code.co_filename
        if path.startswith(_PROJECT) and "site-packages" not in path and not path.endswith("loop_monitor.py"):
            break
        current = current.f_back
    text = _describe(current or innermost)
    if current is not None and current is not innermost:
        text += f" (in {_describe(innermost)})"
    return text


def _describe(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    short = os.path.relpath(path, _PROJECT) if path.startswith(_PROJECT) else os.path.basename(path)
    return f"{frame.f_code.co_qualname} at {short}:{frame.f_lineno}"
