"""The py-evm half of `aichain-node bench vm`: the same summing loop our VM runs, on the reference EVM.

The rule: both VMs run this program, with n = iterations, and each reports how many of its
own instructions it executed and how long its interpreter took:

    total = 0
    i = 0
    while i < n:
        total = total + i
        i = i + 1
    return total

What is measured here is the wall time of py-evm's real interpreter loop
(`<latest fork>Computation.apply_computation`) executing the contract, on a fresh in-memory
state. Building the state, the message and the bytecode is setup and is not timed, because
our VM's figure leaves its own setup out too. The contract RETURNs `total` as one 32-byte
word, so the caller can check that the EVM really computed n*(n-1)/2 rather than trust a
rate. `instructions` is exact: derived from the loop's fixed shape, checked on every run
against the gas py-evm charged (an independent count taken by py-evm itself), and checked in
the tests against a count of the opcodes the interpreter dispatched (`count_evm_loop_instructions`).

`total` and `i` live on the stack, not in memory: that is what solc does with the locals of
a loop this small (DUPn/SWAPn on stack slots), so it is the EVM's fastest honest form of the
program. Keeping them in memory would add an offset PUSH and an MLOAD/MSTORE per access and
measure memory traffic instead of the loop. The test sits at the top of the loop, as in the
source; the exit condition is ISZERO(i < n), as a compiler emits for `while`.

Executed per iteration (INSTRUCTIONS_PER_ITERATION = 15, 55 gas):
JUMPDEST PUSH n DUP2 LT ISZERO PUSH2 end JUMPI DUP1 SWAP2 ADD SWAP1 PUSH1 1 ADD PUSH2 loop JUMP.
In all: 15n + 16 instructions (2 before the loop, the final failing test's 7, 7 to return).

py-evm is an optional dependency (`pip install 'aichain-node[bench]'`): it is imported inside
the functions that run it, so this module imports without it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eth.abc import ComputationAPI

INSTALL_HINT = "pip install 'aichain-node[bench]'"

# mnemonic -> (opcode byte, static gas). The gas is written out from the yellow paper rather
# than read from py-evm so that the per-run gas check is a count py-evm did not derive from us.
_OPS: dict[str, tuple[int, int]] = {
    "ADD": (0x01, 3),
    "LT": (0x10, 3),
    "ISZERO": (0x15, 3),
    "POP": (0x50, 2),
    "MSTORE": (0x52, 3),
    "JUMP": (0x56, 8),
    "JUMPI": (0x57, 10),
    "JUMPDEST": (0x5B, 1),
    "PUSH0": (0x5F, 2),
    **{f"PUSH{k}": (0x5F + k, 3) for k in range(1, 33)},
    "DUP1": (0x80, 3),
    "DUP2": (0x81, 3),
    "SWAP1": (0x90, 3),
    "SWAP2": (0x91, 3),
    "RETURN": (0xF3, 0),
}
# Memory grows once, to one word, for the MSTORE of the result: 3 * words + words**2 // 512.
_MEMORY_GAS = 3

Instruction = tuple[str, bytes]  # (mnemonic, immediate)


@dataclass(frozen=True)
class _Program:
    prologue: tuple[Instruction, ...]
    check: tuple[Instruction, ...]  # loop head: `i < n`, leaves the loop when false
    body: tuple[Instruction, ...]  # `total = total + i; i = i + 1`, back to the head
    epilogue: tuple[Instruction, ...]

    def code(self) -> bytes:
        return b"".join(_assemble(seg) for seg in (self.prologue, self.check, self.body, self.epilogue))


def _assemble(segment: tuple[Instruction, ...]) -> bytes:
    return b"".join(bytes([_OPS[mnemonic][0]]) + immediate for mnemonic, immediate in segment)


def _push(value: int, width: int | None = None) -> Instruction:
    # n gets the narrowest PUSHk (k >= 1, never PUSH0, so every n costs the same gas);
    # jump targets get a fixed PUSH2 so that code offsets do not depend on their values.
    k = width if width is not None else max(1, (value.bit_length() + 7) // 8)
    return f"PUSH{k}", value.to_bytes(k, "big")


def _program(iterations: int) -> _Program:
    if not isinstance(iterations, int) or isinstance(iterations, bool):
        raise TypeError(f"iterations must be an int, not {type(iterations).__name__}")
    if not 0 <= iterations < 2**256:
        raise ValueError(f"iterations must be in [0, 2**256), got {iterations}")

    prologue: tuple[Instruction, ...] = (("PUSH0", b""), ("PUSH0", b""))  # stack: total=0, i=0
    loop = len(_assemble(prologue))

    def check(end: int) -> tuple[Instruction, ...]:
        return (
            ("JUMPDEST", b""),
            _push(iterations),  # total, i, n
            ("DUP2", b""),  # total, i, n, i
            ("LT", b""),  # total, i, i<n
            ("ISZERO", b""),
            _push(end, 2),
            ("JUMPI", b""),  # total, i
        )

    body: tuple[Instruction, ...] = (
        ("DUP1", b""),  # total, i, i
        ("SWAP2", b""),  # i, i, total
        ("ADD", b""),  # i, total+i
        ("SWAP1", b""),  # total, i
        _push(1),
        ("ADD", b""),  # total, i+1
        _push(loop, 2),
        ("JUMP", b""),
    )
    # PUSH2 has a fixed width, so the head's length does not depend on where `end` lands.
    end = loop + len(_assemble(check(0))) + len(_assemble(body))
    epilogue: tuple[Instruction, ...] = (
        ("JUMPDEST", b""),
        ("POP", b""),  # total
        ("PUSH0", b""),
        ("MSTORE", b""),  # memory[0:32] = total
        _push(32),
        ("PUSH0", b""),
        ("RETURN", b""),  # return memory[0:32]
    )
    return _Program(prologue, check(end), body, epilogue)


def _instructions(program: _Program, iterations: int) -> int:
    loop = len(program.check) + len(program.body)
    return len(program.prologue) + iterations * loop + len(program.check) + len(program.epilogue)


def _gas(program: _Program, iterations: int) -> int:
    def cost(segment: tuple[Instruction, ...]) -> int:
        return sum(_OPS[mnemonic][1] for mnemonic, _ in segment)

    loop = cost(program.check) + cost(program.body)
    return cost(program.prologue) + iterations * loop + cost(program.check) + cost(program.epilogue) + _MEMORY_GAS


_SHAPE = _program(0)
INSTRUCTIONS_PER_ITERATION = len(_SHAPE.check) + len(_SHAPE.body)


@dataclass(frozen=True)
class EvmLoopResult:
    iterations: int
    instructions: int  # EVM opcodes executed, RETURN included
    seconds: float  # apply_computation only
    instructions_per_s: float
    result: int  # `total` as the contract returned it


def evm_loop_bytecode(iterations: int) -> bytes:
    """EVM runtime code that returns sum(range(iterations)) as one big-endian 32-byte word."""
    return _program(iterations).code()


def _py_evm() -> Any:
    """The latest fork's state class, or a RuntimeError that says how to install py-evm."""
    try:
        from eth.vm.forks import LATEST_VM
    except ImportError as exc:
        raise RuntimeError(
            f"py-evm is not installed ({exc}); the EVM side of `aichain-node bench vm` needs it: {INSTALL_HINT}"
        ) from exc
    return LATEST_VM.get_state_class()


def _execute(
    iterations: int, opcodes: dict[int, Callable[..., None]] | None = None
) -> tuple[ComputationAPI, float, _Program]:
    """Run the loop once on a fresh state; only `apply_computation` is inside the timer."""
    state_class = _py_evm()
    from eth.constants import BLANK_ROOT_HASH
    from eth.db.atomic import AtomicDB
    from eth.vm.execution_context import ExecutionContext
    from eth.vm.message import Message
    from eth_typing import Address, BlockNumber, Hash32

    program = _program(iterations)
    computation_class = state_class.computation_class
    if opcodes is not None:
        computation_class = type(f"Counting{computation_class.__name__}", (computation_class,), {"opcodes": opcodes})

    context = ExecutionContext(
        coinbase=Address(b"\x00" * 20),
        timestamp=0,
        block_number=BlockNumber(0),
        difficulty=0,
        mix_hash=Hash32(b"\x00" * 32),
        gas_limit=2**63 - 1,
        prev_hashes=(),
        chain_id=1,
        base_fee_per_gas=0,
        excess_blob_gas=0,
    )
    state = state_class(AtomicDB(), context, BLANK_ROOT_HASH)
    sender, contract = Address(b"\x01" * 20), Address(b"\x02" * 20)
    expected_gas = _gas(program, iterations)
    # Headroom, so that if the gas table were wrong the run still finishes and the check
    # below names the difference instead of failing as an opaque out-of-gas.
    message = Message(
        gas=2 * expected_gas + 1_000_000, to=contract, sender=sender, value=0, data=b"", code=program.code()
    )
    tx_context = state.get_transaction_context_class()(gas_price=0, origin=sender)

    started = time.perf_counter()
    computation = computation_class.apply_computation(state, message, tx_context)
    seconds = time.perf_counter() - started

    if computation.is_error:
        raise RuntimeError(f"py-evm failed to run the loop (n={iterations}): {computation.error!r}")
    # Every loop iteration costs the same gas and the code has no other branch, so gas used
    # fixes the number of iterations run, and with it the number of instructions.
    if computation.get_gas_used() != expected_gas:
        raise RuntimeError(
            f"py-evm charged {computation.get_gas_used()} gas for n={iterations}, the loop's shape says "
            f"{expected_gas}: it did not execute the instructions counted"
        )
    return computation, seconds, program


def run_evm_loop(iterations: int) -> EvmLoopResult:
    """Execute the loop on py-evm's interpreter and time it (one run; the caller takes medians)."""
    computation, seconds, program = _execute(iterations)
    instructions = _instructions(program, iterations)
    return EvmLoopResult(
        iterations=iterations,
        instructions=instructions,
        seconds=seconds,
        instructions_per_s=instructions / seconds,
        result=int.from_bytes(computation.output, "big"),
    )


def count_evm_loop_instructions(iterations: int) -> int:
    """Opcodes py-evm's interpreter actually dispatches for the loop, counted by wrapping each one.

    The wrapper costs time, so the benchmark never runs with it; this exists so that tests can
    check `EvmLoopResult.instructions` against the interpreter itself.
    """
    base = _py_evm().computation_class
    dispatched = 0

    def counted(fn: Callable[..., None]) -> Callable[..., None]:
        def wrapper(computation: ComputationAPI) -> None:
            nonlocal dispatched
            dispatched += 1
            fn(computation=computation)

        return wrapper

    _execute(iterations, {op: counted(fn) for op, fn in base.opcodes.items()})
    return dispatched
