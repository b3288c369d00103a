"""The interpreter: runs a contract function's bytecode with gas, bounded memory and depth.

Rules:
- every instruction costs its base gas (vm/gas.py) before it runs; what depends on sizes
  (values built, items compared, storage, hashing, events) is charged on top; when gas runs
  out the call stops with `OutOfGas`;
- integers are 256-bit signed: a result outside that range stops the call;
- memory is metered: all values built during one execution together may not exceed
  `MAX_MEMORY` bytes; calls nest at most `MAX_DEPTH` deep (contract calls included);
- `require(cond, msg)` stops the call with `Revert(msg)` when `cond` is falsy;
- every failure is a `VMError` carrying a `Fault` (vm/faults.py): the VM checks operand
  kinds, indexes, keys and bounds itself and says what was wrong in its own words. Code
  reaches the interpreter only after `Module.decode` and the stack rule (vm/stack_check.py),
  so it never pops an empty stack. Any other exception is a bug: it becomes the one fixed
  "internal VM error", logged and counted (`vm.faults.internal_fault`).

A read-only call (RPC) may carry a `Deadline`: its gas is then released in slices and the
deadline is checked at each one, so a call stops within its time budget at no cost to the
instructions in between. Transactions never carry one: what they do must not depend on time.

Effects on the chain (storage, events, transfers, calls to other contracts) go through a
`Host`; the host keeps them in a state overlay that the caller commits or throws away, so
a failed call reverts all of them.
"""

from __future__ import annotations

import time
from typing import Any

from core.contract_values import INT_MAX, INT_MIN, MAX_LIST
from vm import gas as G
from vm import operations as ops
from vm.builtins import BUILTINS
from vm.bytecode import Function, Method, Module, Op, StorageKind
from vm.faults import Fault, InternalVMError, OutOfGas, Revert, VMError, contract_text, internal_fault, kind
from vm.machine import Host
from vm.operations import FLAT, OP

__all__ = [
    "MAX_DEPTH",
    "MAX_MEMORY",
    "Deadline",
    "Host",
    "InternalVMError",
    "Interpreter",
    "OutOfGas",
    "Revert",
    "VMError",
]

MAX_DEPTH = 64  # nested function calls in one execution (contract calls count too)
MAX_MEMORY = 64 * 1024 * 1024  # bytes of values built during one execution
GAS_SLICE = 1_000_000  # gas released at a time to a call with a deadline


class Deadline:
    """The wall-clock budget of a read-only call (never of a transaction)."""

    def __init__(self, seconds: float) -> None:
        self.budget_ms = max(1, round(seconds * 1000))
        self.at = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise VMError(Fault.TIME_BUDGET, ms=self.budget_ms)
        time.sleep(0)  # hand the interpreter lock over: the event loop and the block thread come first


_COST = [G.INSTRUCTION_GAS.get(op, 1) for op in range(256)]
INDEX_SLOW, ALLOC_LIST, ALLOC_ITEM = G.INDEX_SLOW, G.ALLOC_BASE, G.ALLOC_ITEM
SLOAD, SSTORE, MLOAD, MSTORE, MHAS, MDEL = (
    int(op) for op in (Op.SLOAD, Op.SSTORE, Op.MLOAD, Op.MSTORE, Op.MHAS, Op.MDEL)
)
assert (SLOAD, MDEL) == (60, 65) and MDEL - SLOAD == 5, "the loop sends 60 to 65 to `_storage`"
_WRITES = frozenset({SSTORE, MSTORE, MDEL})
SCALAR, MAP = int(StorageKind.SCALAR), int(StorageKind.MAP)
READ_COLD, READ_WORD = G.STORAGE_READ_COLD, G.STORAGE_READ_WORD
APPEND_1 = int(Method.APPEND) << 8 | 1  # the METHOD argument of `list.append(x)`


class Interpreter:
    def __init__(self, module: Module, host: Host, gas: int, depth: int = 0, deadline: Deadline | None = None) -> None:
        self.module = module
        self.host = host
        self.deadline = deadline
        # Gas not yet released to the loop: only a call with a deadline holds some back (see _refuel).
        self.reserve = max(0, gas - GAS_SLICE) if deadline is not None else 0
        self.gas = gas - self.reserve
        self.memory = 0
        self.depth = depth

    @property
    def remaining(self) -> int:
        """Gas left (negative once it ran out)."""
        return self.gas + self.reserve

    def run(self, function: str, args: list[Any], *, internal: bool = False) -> Any:
        """Run a public function (any function with `internal`, e.g. a constructor) and return its result."""
        func = self.module.function(function)
        if func is None or not (func.public or internal):
            raise VMError(Fault.NO_FUNCTION, name=contract_text(function))
        if len(args) != func.n_params:
            raise VMError(Fault.ARG_COUNT, name=func.name, expected=func.n_params, got=len(args))
        try:
            return self._execute(func, list(args), self.depth)
        except VMError:
            raise
        except Exception as exc:  # a bug: one fixed message in the receipt, the traceback in the log
            raise internal_fault(exc, f"function {func.name}") from exc

    # --- gas and memory ----------------------------------------------------------------------

    def _charge(self, gas: int) -> None:
        self.gas -= gas
        if self.gas < 0:
            self._refuel()

    def _refuel(self) -> None:
        """The loop's gas ran below zero: release more from the reserve (checking the deadline), or stop."""
        need = -self.gas
        if self.reserve < need:
            self.gas += self.reserve
            self.reserve = 0
            raise OutOfGas()
        take = min(self.reserve, need + GAS_SLICE)
        self.reserve -= take
        self.gas += take
        if self.deadline is not None:
            self.deadline.check()

    def _alloc(self, size: int) -> None:
        """Meter a value of `size` bytes built at run time: gas and the memory bound."""
        self.memory += size
        if self.memory > MAX_MEMORY:
            raise VMError(Fault.MEMORY, limit=MAX_MEMORY)
        self._charge(G.ALLOC_BASE + G.ALLOC_WORD * (size >> 5))

    def _alloc_items(self, items: int) -> None:
        """Meter a list or dict of `items` entries built at run time (8 bytes of memory each)."""
        self.memory += 8 * items
        if self.memory > MAX_MEMORY:
            raise VMError(Fault.MEMORY, limit=MAX_MEMORY)
        self._charge(G.ALLOC_BASE + G.ALLOC_ITEM * items)

    # --- the loop -----------------------------------------------------------------------------

    def _execute(self, func: Function, locals_: list[Any], depth: int) -> Any:
        if depth >= MAX_DEPTH:
            raise VMError(Fault.DEPTH, limit=MAX_DEPTH)
        locals_.extend([None] * (func.n_locals - len(locals_)))
        code, consts, cost = func.pairs, func.consts, _COST
        stack: list[Any] = []
        push, pop = stack.append, stack.pop
        pc = 0
        gas = self.gas
        try:
            while True:
                op, arg = code[pc]
                pc += 1
                gas -= cost[op]
                if gas < 0:
                    self.gas = gas
                    self._refuel()
                    gas = self.gas
                if op == 2:  # LOAD
                    push(locals_[arg])
                elif op == 3:  # STORE
                    locals_[arg] = pop()
                elif op == 1:  # CONST
                    push(consts[arg])
                elif op == 7:  # JUMP_IF_FALSE
                    if not pop():
                        pc = arg
                elif op == 15:  # INDEX_CONST
                    container = pop()
                    key = consts[arg]
                    if type(container) is list and type(key) is int and -len(container) <= key < len(container):
                        # As `ops.index`, which this skips for an in-range list index: it charges INDEX_SLOW
                        # to `self.gas` (overwritten by the loop's own count at its next sync); `_charge` inline.
                        self.gas -= INDEX_SLOW
                        if self.gas < 0:
                            self._refuel()
                        push(container[key])
                    else:
                        push(ops.index(self, container, key))
                elif op == 14:  # ITER_NEXT
                    sequence = locals_[arg]
                    index = locals_[arg + 1]
                    kind_ = type(sequence)
                    if kind_ is not list and kind_ is not bytes and kind_ is not str:
                        raise VMError(Fault.NOT_ITERABLE, kind=kind(sequence))
                    if type(index) is not int or index < 0:
                        raise VMError(Fault.LOOP_INDEX)
                    if index < len(sequence):
                        push(sequence[index])
                        locals_[arg + 1] = index + 1
                        push(True)
                    else:
                        push(False)
                elif op == 6:  # JUMP
                    pc = arg
                elif op == 4:  # POP
                    pop()
                elif op == 13:  # BUILTIN
                    self.gas = gas
                    argc = arg & 0xFF
                    if argc:
                        args = stack[-argc:]
                        del stack[-argc:]
                    else:
                        args = []
                    push(BUILTINS[arg >> 8](self, args, depth))
                    gas = self.gas
                elif op == 20:  # ADD
                    b = pop()
                    a = pop()
                    if type(a) is int and type(b) is int:
                        r = a + b
                        if not INT_MIN <= r <= INT_MAX:
                            raise VMError(Fault.OVERFLOW, op="+")
                    else:
                        self.gas = gas
                        r = ops.add(self, a, b)
                        gas = self.gas
                    push(r)
                elif op == 8:  # JUMP_IF_TRUE
                    if pop():
                        pc = arg
                elif op == 50:  # BUILD_LIST
                    if arg:
                        items = stack[-arg:]
                        del stack[-arg:]
                    else:
                        items = []
                    # `_alloc_items(arg)` inline: the memory bound, then the charge (through `_charge` only
                    # when it would run the loop's gas below zero: out of gas leaves the gas as it was before).
                    self.memory += 8 * arg
                    if self.memory > MAX_MEMORY:
                        raise VMError(Fault.MEMORY, limit=MAX_MEMORY)
                    charge = ALLOC_LIST + ALLOC_ITEM * arg
                    if gas >= charge:
                        gas -= charge
                        self.gas = gas
                    else:
                        self.gas = gas
                        self._charge(charge)
                        gas = self.gas
                    push(items)
                elif op == 42:  # LT
                    b = pop()
                    a = pop()
                    if type(a) is int and type(b) is int:
                        push(a < b)
                    else:
                        push(ops.order(self, op, a, b))
                elif op == 52:  # INDEX
                    key = pop()
                    container = pop()
                    if type(container) is list and type(key) is int and -len(container) <= key < len(container):
                        push(container[key])
                    else:
                        push(ops.index(self, container, key))
                elif op == 22:  # MUL
                    self.gas = gas  # as when it ran in `_slow`: the charges of `ops.index` start from this
                    b = pop()
                    a = pop()
                    if type(a) is int and type(b) is int:
                        r = a * b
                        if not INT_MIN <= r <= INT_MAX:
                            raise VMError(Fault.OVERFLOW, op="*")
                        push(r)
                    else:  # `ops.arith` says what is wrong (it charges nothing for these)
                        push(a)
                        push(b)
                        ops.arith(self, op, stack)
                elif op == 23:  # FLOORDIV
                    self.gas = gas
                    b = pop()
                    a = pop()
                    if type(a) is int and type(b) is int and b:
                        r = a // b
                        if not INT_MIN <= r <= INT_MAX:
                            raise VMError(Fault.OVERFLOW, op="//")
                        push(r)
                    else:
                        push(a)
                        push(b)
                        ops.arith(self, op, stack)
                elif op == 44 or op == 45:  # GT, GE
                    b = pop()
                    a = pop()
                    if type(a) is int and type(b) is int:
                        push(a > b if op == 44 else a >= b)  # GT
                    else:
                        push(ops.order(self, op, a, b))
                elif op == 21:  # SUB
                    b = pop()
                    r = ops.to_int(pop()) - ops.to_int(b)
                    if not INT_MIN <= r <= INT_MAX:
                        raise VMError(Fault.OVERFLOW, op="-")
                    push(r)
                elif op == 40:  # EQ
                    b = pop()
                    a = pop()
                    if type(a) in FLAT and type(b) in FLAT:
                        push(a == b)
                    else:
                        self.gas = gas
                        push(ops.equal(self, a, b, 0))
                        gas = self.gas
                elif op == 41:  # NE
                    b = pop()
                    a = pop()
                    if type(a) in FLAT and type(b) in FLAT:
                        push(a != b)
                    else:
                        self.gas = gas
                        push(not ops.equal(self, a, b, 0))
                        gas = self.gas
                elif op == 11:  # RETURN
                    return pop()
                elif op == 9:  # AND_JUMP
                    if not stack[-1]:
                        pc = arg
                    else:
                        pop()
                # The rest run here rather than through `_slow` (a call per instruction), each exactly as
                # it ran there: `self.gas` synced before it, and read back only when it succeeded.
                elif op == 70:  # METHOD
                    self.gas = gas
                    if arg == APPEND_1 and type(obj := stack[-2]) is list and len(obj) < MAX_LIST:
                        item = pop()
                        pop()
                        self._alloc_items(1)  # as `ops.method`: the memory bound and gas, then the append
                        obj.append(item)
                        push(None)
                    else:
                        ops.method(self, arg >> 8, arg & 0xFF, stack)
                    gas = self.gas
                elif SLOAD <= op <= MDEL:  # storage
                    self.gas = gas
                    self._storage(op, arg, stack, func)
                    gas = self.gas
                elif op == 10:  # OR_JUMP
                    self.gas = gas
                    if stack[-1]:
                        pc = arg
                    else:
                        pop()
                elif op == 12:  # CALL
                    self.gas = gas
                    callee = self.module.functions[arg]
                    n = callee.n_params
                    if n:
                        args = stack[-n:]
                        del stack[-n:]
                    else:
                        args = []
                    push(self._execute(callee, args, depth + 1))
                    gas = self.gas
                else:
                    self.gas = gas
                    pc = self._slow(op, arg, pc, stack, func, depth)
                    gas = self.gas
        finally:
            self.gas = gas

    def _slow(self, op: int, arg: int, pc: int, stack: list[Any], func: Function, depth: int) -> int:
        """Every instruction the loop in `_execute` does not handle itself; returns the next pc."""
        push, pop = stack.append, stack.pop
        if op == OP.DUP:
            push(stack[-1])
        elif op == OP.NOP:
            pass
        elif OP.MUL <= op <= OP.RSHIFT:
            ops.arith(self, op, stack)
        elif op == OP.LE:
            b = pop()
            push(ops.order(self, op, pop(), b))
        elif op == OP.IN or op == OP.NOT_IN:
            container = pop()
            found = ops.contains(self, container, pop())
            push(found if op == OP.IN else not found)
        elif op == OP.BUILD_DICT:  # (BUILD_LIST runs in the loop)
            n = 2 * arg
            items = stack[len(stack) - n :] if n else []
            del stack[len(stack) - n :]
            self._alloc_items(n)
            keys = items[0::2]
            for key in keys:
                ops.hashable(self, key)
            push(dict(zip(keys, items[1::2], strict=True)))
        elif op == OP.STORE_INDEX:
            key = pop()
            container = pop()
            ops.store_index(self, container, key, pop())
        elif op == OP.SLICE:
            stop = pop()
            start = pop()
            seq = pop()
            if type(seq) not in (bytes, str, list):
                raise VMError(Fault.NOT_INDEXABLE, kind=kind(seq))
            result = seq[None if start is None else ops.to_int(start) : None if stop is None else ops.to_int(stop)]
            ops.alloc_value(self, result)
            push(result)
        else:
            raise AssertionError(f"opcode {op} passed Module.decode but has no implementation")
        return pc

    def _storage(self, op: int, var: int, stack: list[Any], func: Function) -> None:
        """Storage instructions: their base gas, then the first touch of a key in the transaction, then size."""
        host = self.host
        decl = self.module.storage[var]
        if op in _WRITES and (func.view or host.read_only):
            raise VMError(Fault.READ_ONLY, name=func.name, why="a view" if func.view else "a read-only call")
        if op in (MLOAD, SLOAD):
            key = None if op == SLOAD else stack.pop()
            value, cold, size = host.storage_get(var, SCALAR if op == SLOAD else MAP, key, decl.zero)
            charge = (READ_COLD if cold else 0) + READ_WORD * (size >> 5)
            if self.gas >= charge:  # `_charge`, inline when it cannot run out
                self.gas -= charge
            else:
                self._charge(charge)
            kind = type(value)
            if kind is list:
                self._alloc_items(len(value))
            elif kind is bytes or kind is str:
                self._alloc(ops.nbytes(value))
            stack.append(value)
        elif op in (SSTORE, MSTORE):
            key = None if op == SSTORE else stack.pop()
            first, size = host.storage_set(var, SCALAR if op == SSTORE else MAP, key, stack.pop())
            self._charge((G.STORAGE_WRITE if first else G.STORAGE_WRITE_WARM) + G.STORAGE_WRITE_WORD * (size >> 5))
        elif op == MHAS:
            present, cold, size = host.storage_has(var, stack.pop())
            self._charge((G.STORAGE_READ_COLD if cold else 0) + G.STORAGE_READ_WORD * (size >> 5))
            stack.append(present)
        else:
            first, size = host.storage_delete(var, stack.pop())
            self._charge((G.STORAGE_DELETE if first else G.STORAGE_WRITE_WARM) + G.STORAGE_WRITE_WORD * (size >> 5))
