"""`bench vm`: our loop counts its instructions exactly and beats py-evm on the same program."""

from __future__ import annotations

from node.bench.licences import measure_block_execution, measure_purchases
from node.bench.vm import run_our_loop, run_vm_bench


def test_our_loop_computes_the_sum_and_counts_13_instructions_per_iteration() -> None:
    small, _, result = run_our_loop(100)
    large, _, _ = run_our_loop(1100)
    assert result == 100 * 99 // 2
    assert large - small == 1000 * 13


def test_bench_vm_reports_both_vms_and_their_ratio() -> None:
    report = run_vm_bench(iterations=3000, repeats=1, licence_blocks=0, gas=False)
    figure = report.figures[0]
    assert figure.value > 0 and figure.limit and figure.limit > 0
    assert figure.value > 2 * figure.limit, "the VM must stay at least 2x py-evm on the loop"
    assert len(report.figures) == 1


def test_licence_purchases_in_blocks_all_succeed_and_pay_the_upstream_royalty() -> None:
    result = measure_block_execution(blocks=2, block_txs=150)
    assert result["purchases"] == 300 and result["succeeded"] == 300  # counted from the upstream owner's income
    assert 200_000 < result["gas_per_purchase"] < 500_000
    assert result["rate"] > 0 and len(result["block_s"]) == 2


def test_licence_purchases_through_a_running_validator_all_succeed() -> None:
    result = measure_purchases(duration=2.0, buyers=100, rate_hint=300, block_time_ms=200)
    assert result["included"] > 0 and result["succeeded"] == result["included"]
    assert result["tps"] > 0


def test_bench_vm_reports_the_gas_spread_and_full_blocks_beside_the_block_time() -> None:
    report = run_vm_bench(
        iterations=3000, repeats=1, licence_blocks=0, calibration_gas=2_000_000, block_gas_limit=20_000_000
    )
    spread, *blocks = report.figures[1:]
    assert spread.unit == "x" and spread.value >= 1
    assert blocks and all(f.limit == 1.0 and f.value > 0 and f.name.startswith("full block of ") for f in blocks)
    assert "storage_write" in report.notes["CPU ns per gas, by kind"]
