"""`bench vm`: our loop counts its instructions exactly and beats py-evm on the same program."""

from __future__ import annotations

from node.bench.vm import run_our_loop, run_vm_bench


def test_our_loop_computes_the_sum_and_counts_13_instructions_per_iteration() -> None:
    small, _, result = run_our_loop(100)
    large, _, _ = run_our_loop(1100)
    assert result == 100 * 99 // 2
    assert large - small == 1000 * 13


def test_bench_vm_reports_both_vms_and_their_ratio() -> None:
    report = run_vm_bench(iterations=3000, repeats=1)
    figure = report.figures[0]
    assert figure.value > 0 and figure.limit and figure.limit > 0
    assert figure.value > 2 * figure.limit, "the VM must stay at least 2x py-evm on the loop"
