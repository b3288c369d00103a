"""`aichain-node bench vm`: this VM beside py-evm on the same loop, and licence purchases in blocks.

The loop: both VMs run the program of `LOOP` below, with n = iterations (node/bench/evm_loop.py
is its EVM form). Each counts its own instructions exactly. Ours: every instruction of the
compiled loop costs 1 gas (checked here), so the gas a call uses is the number of instructions
it executed. The figure is the median of `repeats` runs; the ratio is ours over py-evm's.

Licence purchases (three owners, one upstream royalty): see node/bench/licences.py. Each is
printed beside one core's Ed25519 verifications/s, the cost every signed purchase has before
any execution.
"""

from __future__ import annotations

import statistics
import time

from node.bench import limits
from node.bench.evm_loop import run_evm_loop
from node.bench.licences import measure_block_execution, measure_purchases
from node.bench.report import Report
from vm.bytecode import GAS
from vm.compiler import compile_contract
from vm.contracts import CallContext, install, run_call
from vm.state import StateView

LOOP = '''
@view
def loop(n: int) -> int:
    total = 0
    i = 0
    while i < n:
        total = total + i
        i = i + 1
    return total
'''
ADDRESS = b"\x0b" * 20


class _Nothing:
    def get(self, key: bytes) -> bytes | None:
        return None


def run_our_loop(iterations: int) -> tuple[int, float, int]:
    """(instructions, seconds, result) of one run of the loop in this VM."""
    module = compile_contract(LOOP)
    function = module.function("loop")
    assert function is not None
    ops = set(function.code[0::2])
    assert all(GAS[op] == 1 for op in ops), "the loop's instructions must cost 1 gas each to count them by gas"
    view = StateView(_Nothing())
    install(view, ADDRESS, module)
    ctx = CallContext(b"\x00" * 20, 1, 0, read_only=True)
    started = time.perf_counter()
    result, used, _ = run_call(view, ctx, b"\x00" * 20, ADDRESS, "loop", [iterations], 0, 10**12)
    seconds = time.perf_counter() - started
    if result != iterations * (iterations - 1) // 2:
        raise RuntimeError(f"the loop computed {result}, not {iterations * (iterations - 1) // 2}")
    return used, seconds, result


def run_vm_bench(
    iterations: int = 200_000, repeats: int = 3, licence_blocks: int = 6, block_txs: int = 2000,
    end_to_end_s: float = 15.0,
) -> Report:  # fmt: skip
    report = Report(f"aichain-node bench vm: summing loop of {iterations:,} iterations (median of {repeats}), "
                    "licence purchases")  # fmt: skip
    ours = [run_our_loop(iterations) for _ in range(repeats)]
    evm = [run_evm_loop(iterations) for _ in range(repeats)]
    our_rate = statistics.median(i / s for i, s, _ in ours)
    evm_rate = statistics.median(r.instructions_per_s for r in evm)
    report.add("VM instructions/s", our_rate, "instr/s", "py-evm instructions/s, same loop, same run", evm_rate,
               target=">= 2x py-evm")  # fmt: skip
    report.notes["instructions per run"] = f"this VM {ours[0][0]:,}; py-evm {evm[0].instructions:,}"
    our_s, evm_s = statistics.median(s for _, s, _ in ours), statistics.median(r.seconds for r in evm)
    report.notes["seconds per run (median)"] = f"this VM {our_s:.3f}; py-evm {evm_s:.3f}"
    if licence_blocks:
        _licence_figures(report, licence_blocks, block_txs, end_to_end_s)
    return report


def _licence_figures(report: Report, blocks: int, block_txs: int, end_to_end_s: float) -> None:
    verify_rate = limits.ed25519_verifications_per_s()
    limit_name = "Ed25519 verifications/s, one core (libsodium)"
    in_blocks = measure_block_execution(blocks, block_txs)
    report.add("licence purchases executed in blocks /s", in_blocks["rate"], "tx/s", limit_name, verify_rate,
               target=">= 2000 tx/s")  # fmt: skip
    report.notes["purchases in blocks"] = (
        f"{in_blocks['succeeded']:,}/{in_blocks['purchases']:,} succeeded; {blocks} blocks of {block_txs:,}, "
        f"each executed + rooted + committed in {statistics.median(in_blocks['block_s']) * 1000:.0f} ms (median)"
    )
    if end_to_end_s > 0:
        e2e = measure_purchases(duration=end_to_end_s)
        report.add("licence purchases through a running validator /s", e2e["tps"], "tx/s", limit_name, verify_rate)
        report.notes["purchases end to end"] = (
            f"{int(e2e['succeeded']):,}/{int(e2e['included']):,} succeeded; {e2e['elapsed']:.1f} s; admission, "
            "Ed25519 and execution share the interpreter lock"
        )
