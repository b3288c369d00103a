"""The py-evm side of `bench vm`: the EVM computes the loop's sum and its instruction count is exact.

py-evm is installed in the test environment on purpose: nothing here is skipped without it, so
a missing `bench` extra fails loudly instead of silently dropping the EVM comparison.
"""

from __future__ import annotations

import sys

import pytest

from node.bench.evm_loop import (
    INSTALL_HINT,
    INSTRUCTIONS_PER_ITERATION,
    count_evm_loop_instructions,
    evm_loop_bytecode,
    run_evm_loop,
)


@pytest.mark.parametrize("n", [0, 1, 10, 1000])
def test_result_is_the_loop_sum(n: int) -> None:
    assert run_evm_loop(n).result == n * (n - 1) // 2


@pytest.mark.parametrize("n", [0, 1, 2, 10, 300])
def test_instructions_match_what_the_interpreter_dispatched(n: int) -> None:
    assert run_evm_loop(n).instructions == count_evm_loop_instructions(n)


def test_instructions_grow_linearly_with_iterations() -> None:
    # Pinned: the comparison with our VM is quoted per iteration, so a change of loop shape
    # must be deliberate.
    assert INSTRUCTIONS_PER_ITERATION == 15
    small, large = run_evm_loop(1000), run_evm_loop(2000)
    assert large.instructions - small.instructions == 1000 * INSTRUCTIONS_PER_ITERATION
    assert small.instructions == 15 * 1000 + 16


def test_rate_is_positive_and_consistent() -> None:
    result = run_evm_loop(500)
    assert result.iterations == 500
    assert result.seconds > 0
    assert result.instructions_per_s > 0
    assert result.instructions_per_s == pytest.approx(result.instructions / result.seconds)


def test_wide_iteration_counts_use_a_wider_push_but_the_same_instructions() -> None:
    # n = 256 needs PUSH2; the loop must still execute 15 instructions per iteration.
    assert len(evm_loop_bytecode(256)) == len(evm_loop_bytecode(255)) + 1
    assert count_evm_loop_instructions(256) == 15 * 256 + 16
    assert run_evm_loop(256).result == 256 * 255 // 2


def test_rejects_iterations_outside_uint256() -> None:
    with pytest.raises(ValueError):
        evm_loop_bytecode(-1)
    with pytest.raises(ValueError):
        evm_loop_bytecode(2**256)


def test_missing_py_evm_raises_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the lazy import fail as if py-evm were absent.
    monkeypatch.setitem(sys.modules, "eth.vm.forks", None)
    with pytest.raises(RuntimeError, match="aichain-node\\[bench\\]"):
        run_evm_loop(1)
    assert INSTALL_HINT == "pip install 'aichain-node[bench]'"
