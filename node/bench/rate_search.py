"""The highest offered load a network keeps within a finality bound: a search over rates.

Each step offers one rate for a short window and measures it (a `Step`). A rate holds when the
finality p99 of the transactions submitted in the window stays within the bound, the network
finalized at least `keep_up` of the offered rate, and it refused at most `refused` of what was
sent (a refused transaction has no latency, so refusals would otherwise hide saturation).

From `start` the rate is multiplied by `factor` while it holds (divided while it does not), until
one rate holds and another does not; then the gap between the highest rate that held and the
lowest that did not is bisected, `bisections` times or until it is narrower than `resolution`.
Every rate tested during bisection lies inside the gap, so the answer is the highest rate that
held, and no tested rate above it held. `max_steps` bounds the total time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One measured window at one offered rate."""

    rate: float  # offered, tx/s
    finalized: float  # finalized, tx/s
    p50: float  # finality latency, s (inf: some sampled transactions were never seen finalized)
    p99: float
    refused: float  # fraction of the sent transactions the nodes refused


@dataclass(frozen=True)
class Bounds:
    p99_s: float = 2.0
    keep_up: float = 0.9
    refused: float = 0.01


def holds(step: Step, bounds: Bounds) -> bool:
    """Whether the network kept up with `step.rate` within the bounds (a NaN figure does not hold)."""
    return step.p99 <= bounds.p99_s and step.finalized >= bounds.keep_up * step.rate and step.refused <= bounds.refused


@dataclass(frozen=True)
class Search:
    steps: tuple[Step, ...]
    bounds: Bounds

    @property
    def ceiling(self) -> Step | None:
        """The step at the highest rate that held, if any did."""
        held = [step for step in self.steps if holds(step, self.bounds)]
        return max(held, key=lambda step: step.rate, default=None)

    @property
    def lowest_failed(self) -> Step | None:
        """The step at the lowest rate that did not hold, if any did not."""
        failed = [step for step in self.steps if not holds(step, self.bounds)]
        return min(failed, key=lambda step: step.rate, default=None)


def search_ceiling(
    measure: Callable[[float], Step],
    *,
    start: float = 2000.0,
    factor: float = 1.25,
    bisections: int = 3,
    resolution: float = 100.0,
    max_steps: int = 8,
    floor: float = 100.0,
    bounds: Bounds | None = None,
) -> Search:
    """Measure rates (in the order described in the module doc) and return every step."""
    if factor <= 1 or start <= 0 or max_steps < 1:
        raise ValueError("the search needs factor > 1, start > 0 and at least one step")
    bounds = bounds or Bounds()
    steps: list[Step] = []

    def run(rate: float) -> bool:
        step = measure(float(round(rate)))
        steps.append(step)
        return holds(step, bounds)

    good: float | None = None
    bad: float | None = None
    rate = start
    while len(steps) < max_steps:
        if run(rate):
            good = rate
            if bad is not None:
                break
            rate *= factor
        else:
            bad = rate
            if good is not None:
                break
            rate /= factor
            if rate < floor:
                break
    for _ in range(bisections):
        if good is None or bad is None or bad - good <= resolution or len(steps) >= max_steps:
            break
        rate = (good + bad) / 2
        if run(rate):
            good = rate
        else:
            bad = rate
    return Search(tuple(steps), bounds)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value at `fraction` of a sorted list (nearest rank); NaN for an empty one."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(len(sorted_values) * fraction) - 1)]
