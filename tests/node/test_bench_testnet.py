"""`bench testnet`: the search for the highest rate within the finality bound (fake measurements),
the batches each client thread sends, and the consensus step timings read from /metrics."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from node.bench.rate_search import Bounds, Step, holds, percentile, search_ceiling
from node.bench.report import Report
from node.bench.testnet_load import BATCH, parse_step_metrics, step_means, worker_batches


def network(capacity: float, noise: dict[float, float] | None = None) -> tuple[list[float], Callable[[float], Step]]:
    """A fake network: below `capacity` it keeps up with p99 0.8 s; above, it falls behind."""
    tried: list[float] = []

    def measure(rate: float) -> Step:
        tried.append(rate)
        if rate <= capacity:
            return Step(rate, rate, 0.5, 0.8 + (noise or {}).get(rate, 0.0), 0.0)
        return Step(rate, capacity, 2.0, 2.0 + rate / capacity, 0.0)

    return tried, measure


def test_search_steps_up_then_bisects_to_the_ceiling() -> None:
    tried, measure = network(2900)
    search = search_ceiling(measure, start=2000, factor=1.25, bisections=3, resolution=100, max_steps=10)
    assert tried[:3] == [2000, 2500, 3125]  # up while it holds, until it fails
    assert all(2500 < rate < 3125 for rate in tried[3:])  # then only inside the gap
    assert search.ceiling is not None and 2800 <= search.ceiling.rate <= 2900
    assert search.lowest_failed is not None and search.lowest_failed.rate > 2900
    assert search.lowest_failed.rate - search.ceiling.rate <= 625 / 2**3 + 1


def test_search_steps_down_when_the_start_fails() -> None:
    tried, measure = network(1100)
    search = search_ceiling(measure, start=2000, factor=1.25, bisections=0, max_steps=10)
    assert tried == [2000, 1600, 1280, 1024]
    assert search.ceiling is not None and search.ceiling.rate == 1024


def test_search_stops_at_max_steps_and_at_the_floor() -> None:
    tried, measure = network(10**9)
    search = search_ceiling(measure, start=1000, factor=2, max_steps=4)
    assert tried == [1000, 2000, 4000, 8000]
    assert search.ceiling is not None and search.ceiling.rate == 8000 and search.lowest_failed is None
    tried, measure = network(50)
    search = search_ceiling(measure, start=400, factor=2, max_steps=10, floor=100)
    assert tried == [400, 200, 100] and search.ceiling is None


def test_a_noisy_step_inside_the_gap_never_lifts_the_ceiling_above_a_failure() -> None:
    # 2812 fails by noise although 2900 is within capacity: the answer stays below every failure.
    tried, measure = network(2900, noise={2812: 5.0})
    search = search_ceiling(measure, start=2000, factor=1.25, bisections=4, resolution=10, max_steps=12)
    assert 2812 in tried
    assert search.ceiling is not None and search.lowest_failed is not None
    assert search.ceiling.rate < search.lowest_failed.rate
    assert not any(holds(s, search.bounds) and s.rate > search.lowest_failed.rate for s in search.steps)


def test_a_rate_holds_only_within_every_bound() -> None:
    bounds = Bounds(p99_s=2.0, keep_up=0.9, refused=0.01)
    assert holds(Step(3000, 2950, 0.8, 1.9, 0.0), bounds)
    assert not holds(Step(3000, 2950, 0.8, 2.1, 0.0), bounds)  # too slow at the tail
    assert not holds(Step(3000, 2500, 0.8, 1.5, 0.0), bounds)  # fell behind
    assert not holds(Step(3000, 2950, 0.8, 1.5, 0.05), bounds)  # refusals hide latency
    assert not holds(Step(3000, 2950, math.nan, math.nan, 0.0), bounds)  # nothing measured
    assert not holds(Step(3000, 2950, 0.8, math.inf, 0.0), bounds)  # a sample never finalized


def test_search_rejects_a_factor_that_cannot_move() -> None:
    with pytest.raises(ValueError):
        search_ceiling(network(1)[1], factor=1.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.99) == 99.0 and percentile(values, 0.5) == 50.0
    assert percentile([1.0, math.inf], 0.99) == math.inf
    assert math.isnan(percentile([], 0.5))


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 5])
def test_each_sender_always_reaches_the_same_worker_in_nonce_order(workers: int) -> None:
    senders, nonces = 20 * BATCH, 3
    total = senders * nonces  # nonce-major: index = nonce * senders + sender
    owner: dict[int, int] = {}
    covered: list[int] = []
    for worker in range(workers):
        offsets = worker_batches(senders, total, workers, worker)
        assert offsets == sorted(offsets)
        for offset in offsets:
            for index in range(offset, offset + BATCH):
                assert owner.setdefault(index % senders, worker) == worker
                covered.append(index)
    assert sorted(covered) == list(range(total))
    with pytest.raises(ValueError):
        worker_batches(senders + 1, total, workers, 0)


METRICS_BEFORE = """\
# HELP aichain_consensus_step_seconds Seconds from the start of a height until it first reached a step
aichain_consensus_step_seconds_bucket{le="0.01",step="proposal arrived"} 1.0
aichain_consensus_step_seconds_count{step="proposal arrived"} 10.0
aichain_consensus_step_seconds_sum{step="proposal arrived"} 1.0
aichain_consensus_step_seconds_count{step="decided"} 10.0
aichain_consensus_step_seconds_sum{step="decided"} 5.0
aichain_blocks_proposed_total{how="prebuilt"} 3.0
process_cpu_seconds_total 12.5
"""
METRICS_AFTER = """\
aichain_consensus_step_seconds_count{step="proposal arrived"} 20.0
aichain_consensus_step_seconds_sum{step="proposal arrived"} 3.0
aichain_consensus_step_seconds_count{step="decided"} 20.0
aichain_consensus_step_seconds_sum{step="decided"} 11.0
aichain_consensus_step_seconds_count{step="written"} 5.0
aichain_consensus_step_seconds_sum{step="written"} 4.0
aichain_blocks_proposed_total{how="prebuilt"} 7.0
aichain_blocks_proposed_total{how="built"} 2.0
process_cpu_seconds_total 20.0
"""


def test_step_means_of_a_window_are_the_difference_of_two_readings() -> None:
    before, after = parse_step_metrics(METRICS_BEFORE), parse_step_metrics(METRICS_AFTER)
    assert before["count proposal arrived"] == 10.0 and before["proposed prebuilt"] == 3.0
    means = step_means(after, before)
    assert list(means) == ["proposal arrived", "decided", "written", "proposed prebuilt", "proposed built", "cpu"]
    assert means["proposal arrived"] == pytest.approx(0.2)
    assert means["decided"] == pytest.approx(0.6)
    assert means["written"] == pytest.approx(0.8)
    assert means["proposed prebuilt"] == 4.0 and means["proposed built"] == 2.0
    assert means["cpu"] == pytest.approx(7.5)  # the CPU seconds the node spent in the window
    assert step_means(after)["decided"] == pytest.approx(0.55)  # since the start


def test_the_cli_takes_a_number_or_auto_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import node.bench.testnet as bench
    from cli.main import app

    calls: list[tuple[str, tuple[object, ...]]] = []

    def fake(name: str) -> Callable[..., Report]:
        def run(*args: object, **kwargs: object) -> Report:
            calls.append((name, args))
            return Report(name)

        return run

    monkeypatch.setattr(bench, "run_testnet_bench", fake("fixed"))
    monkeypatch.setattr(bench, "run_testnet_ceiling", fake("auto"))
    runner = CliRunner()
    assert runner.invoke(app, ["bench", "testnet", "--rate", "3500"]).exit_code == 0
    assert runner.invoke(app, ["bench", "testnet", "--rate", "auto", "--start-rate", "2500"]).exit_code == 0
    assert calls == [("fixed", (4, 60.0, 3500.0, 1000)), ("auto", (4, 15.0, 5.0, 2500.0, 1000))]
    refused = runner.invoke(app, ["bench", "testnet", "--rate", "fast"])
    assert refused.exit_code == 2 and "auto" in refused.output
