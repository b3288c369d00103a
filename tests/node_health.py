"""What an adversarial test checks of a real node after throwing things at it.

`Health.of(node)` reads the event-loop figures from `/metrics` and the resident set size from
`/proc/<pid>/status`; `after.stalls_since(before)` counts loop wake-ups blocked for more than
100 ms in between (the CPU-wait share taken off, so a busy machine does not count as the
node's fault); `tracebacks(text)` finds Python tracebacks and ERROR lines in a node's log.
"""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass

from tests.harness import NodeProcess

STALL_BUCKET = "0.1"  # the histogram bucket of "blocked at most 100 ms"


@dataclass(frozen=True)
class Health:
    ticks: float  # loop wake-ups measured since start
    within_100ms: float  # of them, blocked at most 100 ms
    within_50ms: float  # of them, blocked at most 50 ms
    blocked_max_s: float
    lag_max_s: float
    rss_kib: int

    @classmethod
    def of(cls, node: NodeProcess) -> Health:
        assert node.proc is not None
        return cls.at(node.url, node.proc.pid)

    @classmethod
    def at(cls, url: str, pid: int) -> Health:
        """The figures of the node serving RPC at `url` and running as process `pid`."""
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
            text = response.read().decode()
        samples = _samples(text)
        return cls(
            ticks=samples["aichain_event_loop_blocked_seconds_count"],
            within_100ms=samples[f'aichain_event_loop_blocked_seconds_bucket{{le="{STALL_BUCKET}"}}'],
            within_50ms=samples['aichain_event_loop_blocked_seconds_bucket{le="0.05"}'],
            blocked_max_s=samples["aichain_event_loop_blocked_max_seconds"],
            lag_max_s=samples["aichain_event_loop_lag_max_seconds"],
            rss_kib=rss_kib(pid),
        )

    def stalls_since(self, before: Health) -> float:
        """Wake-ups blocked for more than 100 ms between `before` and this snapshot."""
        return (self.ticks - self.within_100ms) - (before.ticks - before.within_100ms)

    def over_50ms_since(self, before: Health) -> float:
        """Wake-ups blocked for more than 50 ms between `before` and this snapshot."""
        return (self.ticks - self.within_50ms) - (before.ticks - before.within_50ms)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


_TRACEBACK = re.compile(r"^Traceback \(most recent call last\)|^\S+ ERROR |\bERROR\b.*Error handling request", re.M)


def tracebacks(log_text: str) -> list[str]:
    """Lines of a node log that are tracebacks or ERROR records (each with the line after it)."""
    lines = log_text.splitlines()
    return [" | ".join(lines[i : i + 2]) for i, line in enumerate(lines) if _TRACEBACK.search(line)]


def stall_lines(log_text: str) -> list[str]:
    return [line for line in log_text.splitlines() if "event loop blocked" in line]
