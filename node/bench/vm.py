"""`aichain-node bench vm`: this VM beside py-evm on the same loop, and licence purchases in blocks.

The loop: both VMs run the program of `LOOP` below, with n = iterations (node/bench/evm_loop.py
is its EVM form). Each counts its own instructions exactly. Ours: the compiled loop is straight
code around one backward jump, so it runs its prologue, n times its body, the last test of its
condition and its epilogue (`loop_instructions`). The figure is the median of `repeats` runs;
the ratio is ours over py-evm's.

Licence purchases (three owners, one upstream royalty): see node/bench/licences.py. Each is
printed beside one core's Ed25519 verifications/s, the cost every signed purchase has before
any execution.

Gas (node/bench/gas_calibration.py): the CPU nanoseconds one gas buys for each kind of work
(instructions, builtins, storage by size, events, payments, calls, deploys, plain transfers),
and the spread, the slowest kind's over the median's; then one block of the slowest contract
kind filled to the default block gas limit, executed, rooted and committed, its seconds beside
the default block time (the rule: at most half of it).
"""

from __future__ import annotations

import statistics
import time

from core.genesis import ChainParams
from node.bench import limits
from node.bench.evm_loop import run_evm_loop
from node.bench.gas_calibration import FUNCTION_KINDS, KINDS, full_block, measure_kinds, spread
from node.bench.licences import measure_block_execution, measure_purchases
from node.bench.report import Report
from vm.bytecode import Function, Op
from vm.compiler import compile_contract
from vm.contracts import CallContext, install, run_call
from vm.state import StateView

LOOP = """
@view
def loop(n: int) -> int:
    total = 0
    i = 0
    while i < n:
        total = total + i
        i = i + 1
    return total
"""
ADDRESS = b"\x0b" * 20


class _Nothing:
    def get(self, key: bytes) -> bytes | None:
        return None


def loop_instructions(function: Function, iterations: int) -> int:
    """Instructions the compiled loop executes for `iterations` (it has exactly one backward jump)."""
    code = function.pairs
    back = [pc for pc, (op, arg) in enumerate(code) if op == Op.JUMP and arg < pc]
    if len(back) != 1:
        raise RuntimeError("the loop should compile to straight code around one backward jump")
    end, start = back[0], code[back[0]][1]
    exit_test = next(pc for pc in range(start, end) if code[pc][0] == Op.JUMP_IF_FALSE)
    after = code[exit_test][1]
    returned = next(pc for pc in range(after, len(code)) if code[pc][0] == Op.RETURN)
    return start + iterations * (end - start + 1) + (exit_test - start + 1) + (returned - after + 1)


def run_our_loop(iterations: int) -> tuple[int, float, int]:
    """(instructions, seconds, result) of one run of the loop in this VM."""
    module = compile_contract(LOOP)
    function = module.function("loop")
    assert function is not None
    view = StateView(_Nothing())
    install(view, ADDRESS, module)
    ctx = CallContext(b"\x00" * 20, 1, 0, read_only=True)
    started = time.perf_counter()
    result, _, _ = run_call(view, ctx, b"\x00" * 20, ADDRESS, "loop", [iterations], 0, 10**15)
    seconds = time.perf_counter() - started
    if result != iterations * (iterations - 1) // 2:
        raise RuntimeError(f"the loop computed {result}, not {iterations * (iterations - 1) // 2}")
    return loop_instructions(function, iterations), seconds, result


def run_vm_bench(
    iterations: int = 200_000,
    repeats: int = 3,
    licence_blocks: int = 6,
    block_txs: int = 2000,
    end_to_end_s: float = 15.0,
    gas: bool = True,
    calibration_gas: int = 20_000_000,
    block_gas_limit: int | None = None,
) -> Report:
    report = Report(
        f"aichain-node bench vm: summing loop of {iterations:,} iterations (median of {repeats}), "
        "licence purchases, gas calibration"
    )
    ours = [run_our_loop(iterations) for _ in range(repeats)]
    evm = [run_evm_loop(iterations) for _ in range(repeats)]
    our_rate = statistics.median(i / s for i, s, _ in ours)
    evm_rate = statistics.median(r.instructions_per_s for r in evm)
    report.add(
        "VM instructions/s",
        our_rate,
        "instr/s",
        "py-evm instructions/s, same loop, same run",
        evm_rate,
        target=">= 2x py-evm",
    )
    report.notes["instructions per run"] = f"this VM {ours[0][0]:,}; py-evm {evm[0].instructions:,}"
    our_s, evm_s = statistics.median(s for _, s, _ in ours), statistics.median(r.seconds for r in evm)
    report.notes["seconds per run (median)"] = f"this VM {our_s:.3f}; py-evm {evm_s:.3f}"
    if licence_blocks:
        _licence_figures(report, licence_blocks, block_txs, end_to_end_s)
    if gas:
        _gas_figures(report, calibration_gas, block_gas_limit or ChainParams().block_gas_limit)
    return report


def _gas_figures(report: Report, calibration_gas: int, block_gas_limit: int) -> None:
    figures = measure_kinds(KINDS, block_gas=calibration_gas, tx_gas=min(1_000_000, calibration_gas))
    median, widest, slowest, fastest = spread(figures)
    report.add("gas: slowest kind's CPU ns per gas over the median kind's", widest, "x", target="<= 2x")
    ranked = sorted(figures, key=lambda f: f.ns_per_gas)
    report.notes["CPU ns per gas, by kind"] = ", ".join(f"{f.name} {f.ns_per_gas:.2f}" for f in ranked)
    report.notes["gas spread"] = (
        f"median {median:.2f} ns/gas; slowest {slowest.name} {slowest.ns_per_gas:.2f}, fastest {fastest.name} "
        f"{fastest.ns_per_gas:.2f} (search and data are priced above their CPU time: docs/decisions.md)"
    )
    contract_kinds = {*FUNCTION_KINDS, "deploys"}
    worst = max((f for f in figures if f.name in contract_kinds), key=lambda f: f.ns_per_gas)
    block_time = ChainParams().block_time_ms / 1000
    # The slowest contract kind by CPU, and new storage keys, the kind that waits most on the disk.
    for kind in dict.fromkeys((worst.name, "storage_write")):
        block = full_block(kind, block_gas_limit)
        report.add(
            f"full block of {kind}, executed + rooted + committed",
            block.seconds,
            "s",
            "default block time",
            block_time,
            target="<= 0.5x block time",
        )
        report.notes[f"full block of {kind}"] = (
            f"{block.txs:,} transactions, {block.gas:,} of the {block_gas_limit:,} gas limit, "
            f"{block.cpu_seconds:.3f} s of CPU"
        )


def _licence_figures(report: Report, blocks: int, block_txs: int, end_to_end_s: float) -> None:
    verify_rate = limits.ed25519_verifications_per_s()
    limit_name = "Ed25519 verifications/s, one core (libsodium)"
    in_blocks = measure_block_execution(blocks, block_txs)
    report.add(
        "licence purchases executed in blocks /s",
        in_blocks["rate"],
        "tx/s",
        limit_name,
        verify_rate,
        target=">= 2000 tx/s",
    )
    per_purchase = in_blocks["gas_per_purchase"]
    report.notes["purchases in blocks"] = (
        f"{in_blocks['succeeded']:,}/{in_blocks['purchases']:,} succeeded; {blocks} blocks of {block_txs:,}, "
        f"each executed + rooted + committed in {statistics.median(in_blocks['block_s']) * 1000:.0f} ms (median); "
        f"{per_purchase:,} gas each, so a block of the default gas limit holds "
        f"{ChainParams().block_gas_limit // per_purchase:,}"
    )
    if end_to_end_s > 0:
        e2e = measure_purchases(duration=end_to_end_s)
        report.add("licence purchases through a running validator /s", e2e["tps"], "tx/s", limit_name, verify_rate)
        report.notes["purchases end to end"] = (
            f"{int(e2e['succeeded']):,}/{int(e2e['included']):,} succeeded; {e2e['elapsed']:.1f} s; admission, "
            "Ed25519 and execution share the interpreter lock"
        )
