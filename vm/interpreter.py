"""The interpreter: runs a contract function's bytecode with gas, bounded memory and depth.

Rules:
- every instruction costs its base gas (vm/bytecode.py `GAS`) before it runs; values built
  at run time cost one more gas per 32 bytes (or per item), storage and events by size;
  when gas runs out the call stops with `OutOfGas`;
- integers are 256-bit signed: a result outside that range stops the call (`VMError`);
- memory is metered: all values built during one execution together may not exceed
  `MAX_MEMORY` bytes; calls nest at most `MAX_DEPTH` deep (contract calls included);
- `require(cond, msg)` stops the call with `Revert(msg)` when `cond` is falsy;
- nothing a program does, and no bytecode that passed `Module.decode`, makes a Python
  exception leave `run`: every failure is a `VMError` (or subclass) with a message.

Effects on the chain (storage, events, transfers, calls to other contracts) go through a
`Host`; the host keeps them in a state overlay that the caller commits or throws away, so
a failed call reverts all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, Protocol

from core.errors import AichainError
from core.hashing import sha256
from core.keys import address_of, verify_raw
from vm.bytecode import GAS, Builtin, Function, Method, Module, Op, StorageKind
from vm.values import INT_MAX, INT_MIN, MAX_LIST, MAX_VALUE_BYTES

MAX_DEPTH = 64  # nested function calls in one execution (contract calls count too)
MAX_MEMORY = 64 * 1024 * 1024  # bytes of values built during one execution
GAS_PER_WORD = 1  # per 32 bytes (or per item) of a value built at run time
GAS_SHA256_WORD = 6
GAS_VERIFY = 2_000
GAS_EVENT_BYTE = 8
GAS_EVENT = 100
GAS_STORAGE_READ_WORD = 3
GAS_STORAGE_WRITE_BYTE = 16
GAS_TRANSFER = 2_500
GAS_CALL_CONTRACT = 700


class VMError(AichainError):
    """A contract call failed; its effects are reverted and its gas is spent."""

    rpc_code = -32090


class OutOfGas(VMError):
    rpc_code = -32091


class Revert(VMError):
    """`require` failed: the message says why (the contract's words)."""

    rpc_code = -32092


class Host(Protocol):
    """What a running contract can ask of the chain (implemented over a state overlay)."""

    caller: bytes
    origin: bytes
    value: int
    address: bytes
    block_height: int
    block_time_ms: int
    chain_id: int
    read_only: bool

    def storage_get(self, var: int, kind: int, key: Any, zero: Any) -> Any: ...
    def storage_set(self, var: int, kind: int, key: Any, value: Any) -> int: ...  # returns bytes written
    def storage_has(self, var: int, key: Any) -> bool: ...
    def storage_delete(self, var: int, key: Any) -> None: ...
    def balance(self, address: bytes) -> int: ...
    def transfer(self, to: bytes, amount: int) -> None: ...
    def emit(self, name: str, fields: list[tuple[str, Any]]) -> None: ...
    def call_contract(
        self, address: bytes, function: str, args: list[Any], value: int, gas: int, depth: int
    ) -> tuple[Any, int]:
        """(result, gas used) of a call into another contract sending it `value` units, or raise `VMError`."""
        ...


_COST = [GAS.get(op, 1) for op in range(256)]
# Plain-int copies of the opcodes, methods and storage kinds for dispatch: fetching an IntEnum
# member and comparing an int with it costs ~8x a plain int on CPython 3.11, once per instruction.
OP = SimpleNamespace(**{op.name: int(op) for op in Op})
M = SimpleNamespace(**{method.name: int(method) for method in Method})
SCALAR, MAP = int(StorageKind.SCALAR), int(StorageKind.MAP)


class Interpreter:
    def __init__(self, module: Module, host: Host, gas: int, depth: int = 0) -> None:
        self.module = module
        self.host = host
        self.gas = gas
        self.memory = 0
        self.depth = depth

    def run(self, function: str, args: list[Any], *, internal: bool = False) -> Any:
        """Run a public function (any function with `internal`, e.g. a constructor) and return its result."""
        func = self.module.function(function)
        if func is None or not (func.public or internal):
            raise VMError(f"the contract has no public function {function!r}")
        if len(args) != func.n_params:
            raise VMError(f"{function} takes {func.n_params} arguments, got {len(args)}")
        try:
            return self._execute(func, list(args), self.depth)
        except VMError:
            raise
        except IndexError as exc:
            raise VMError(f"index out of range ({exc})") from exc
        except (TypeError, KeyError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise VMError(f"{type(exc).__name__.replace('Error', ' error').lower()}: {exc}") from exc
        except RecursionError as exc:
            raise VMError("call depth exceeded") from exc
        except MemoryError as exc:
            raise VMError("out of memory") from exc
        except Exception as exc:  # a bug must still be a VM error, never a node crash
            raise VMError(f"internal error: {type(exc).__name__}: {exc}") from exc

    # --- the loop -----------------------------------------------------------------------------

    def _charge(self, gas: int) -> None:
        self.gas -= gas
        if self.gas < 0:
            raise OutOfGas("out of gas")

    def _alloc(self, size: int) -> None:
        """Meter a value of `size` bytes (or items) built at run time: gas and the memory bound."""
        self.memory += size
        if self.memory > MAX_MEMORY:
            raise VMError(f"memory limit of {MAX_MEMORY} bytes exceeded")
        self._charge(GAS_PER_WORD * (size // 32 + 1))

    def _execute(self, func: Function, locals_: list[Any], depth: int) -> Any:
        if depth >= MAX_DEPTH:
            raise VMError(f"call depth limit of {MAX_DEPTH} exceeded")
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
                    raise OutOfGas("out of gas")
                if op == 2:  # LOAD
                    push(locals_[arg])
                elif op == 1:  # CONST
                    push(consts[arg])
                elif op == 3:  # STORE
                    locals_[arg] = pop()
                elif op == 7:  # JUMP_IF_FALSE
                    if not pop():
                        pc = arg
                elif op == 20:  # ADD
                    b = pop()
                    a = pop()
                    r = a + b
                    if type(r) is int:
                        if not INT_MIN <= r <= INT_MAX:
                            raise VMError("integer overflow in +")
                    else:
                        self.gas = gas
                        self._alloc_value(r)
                        gas = self.gas
                    push(r)
                elif op == 42:  # LT
                    b = pop()
                    push(pop() < b)
                elif op == 6:  # JUMP
                    pc = arg
                elif op == 52:  # INDEX
                    key = pop()
                    container = pop()
                    if type(container) is list and type(key) is int:
                        push(container[key])
                    else:
                        push(_index(container, key))
                elif op == 15:  # INDEX_CONST
                    container = pop()
                    key = consts[arg]
                    push(container[key] if type(container) is list else _index(container, key))
                elif op == 13:  # BUILTIN
                    self.gas = gas
                    self._builtin(arg >> 8, arg & 0xFF, stack, depth)
                    gas = self.gas
                elif op == 4:  # POP
                    pop()
                elif op == 14:  # ITER_NEXT
                    sequence = locals_[arg]
                    index = locals_[arg + 1]
                    if type(sequence) not in (list, bytes, str):
                        raise VMError(f"a for loop runs over a list, bytes or a string, not a {_kind(sequence)}")
                    if index < len(sequence):
                        push(sequence[index])
                        locals_[arg + 1] = index + 1
                        push(True)
                    else:
                        push(False)
                elif op == 21:  # SUB
                    b = pop()
                    r = _int(pop()) - _int(b)
                    if not INT_MIN <= r <= INT_MAX:
                        raise VMError("integer overflow in -")
                    push(r)
                elif op == 40:  # EQ
                    b = pop()
                    push(pop() == b)
                elif op == 11:  # RETURN
                    return pop()
                elif op == 8:  # JUMP_IF_TRUE
                    if pop():
                        pc = arg
                elif op == 44:  # GT
                    b = pop()
                    push(pop() > b)
                elif op == 41:  # NE
                    b = pop()
                    push(pop() != b)
                elif op == 45:  # GE
                    b = pop()
                    push(pop() >= b)
                elif op == 9:  # AND_JUMP
                    if not stack[-1]:
                        pc = arg
                    else:
                        pop()
                elif op == 50:  # BUILD_LIST
                    if arg:
                        if len(stack) < arg:
                            raise VMError("stack underflow")
                        items = stack[-arg:]
                        del stack[-arg:]
                    else:
                        items = []
                    self.gas = gas
                    self._alloc(8 * arg)
                    gas = self.gas
                    push(items)
                else:
                    self.gas = gas
                    pc = self._slow(op, arg, pc, stack, func, depth)
                    gas = self.gas
        finally:
            self.gas = gas

    def _slow(self, op: int, arg: int, pc: int, stack: list[Any], func: Function, depth: int) -> int:
        """Every instruction the loop in `_execute` does not handle itself; returns the next pc."""
        push, pop = stack.append, stack.pop
        if op == OP.OR_JUMP:
            if stack[-1]:
                return arg
            pop()
        elif op == OP.CALL:
            callee = self.module.functions[arg]
            n = callee.n_params
            args = stack[len(stack) - n :] if n else []
            if len(args) != n:
                raise VMError("stack underflow")
            del stack[len(stack) - n :]
            push(self._execute(callee, args, depth + 1))
        elif op == OP.DUP:
            push(stack[-1])
        elif op == OP.NOP:
            pass
        elif OP.MUL <= op <= OP.RSHIFT:
            self._arith(op, stack)
        elif op in (OP.LE, OP.IN, OP.NOT_IN):  # EQ, NE, LT, GT, GE run in the loop
            b = pop()
            a = pop()
            if op == OP.LE:
                push(a <= b)
            elif op == OP.IN:
                push(_contains(b, a))
            else:
                push(not _contains(b, a))
        elif op == OP.METHOD:
            self._method(arg >> 8, arg & 0xFF, stack)
        elif op == OP.BUILD_DICT:  # (BUILD_LIST runs in the loop)
            n = 2 * arg
            if len(stack) < n:
                raise VMError("stack underflow")
            items = stack[len(stack) - n :] if n else []
            del stack[len(stack) - n :]
            self._alloc(8 * len(items))
            push(dict(zip(items[0::2], items[1::2], strict=True)))
        elif op == OP.STORE_INDEX:
            key = pop()
            container = pop()
            value = pop()
            if type(container) is dict:
                if key not in container:
                    self._alloc(16)
                    if len(container) >= MAX_LIST:
                        raise VMError(f"dicts hold at most {MAX_LIST} items")
                _hashable(key)
                container[key] = value
            elif type(container) is list:
                container[_int(key)] = value
            else:
                raise VMError(f"cannot assign into a {type(container).__name__}")
        elif op == OP.SLICE:
            stop = pop()
            start = pop()
            seq = _sequence(pop())
            result = seq[None if start is None else _int(start) : None if stop is None else _int(stop)]
            self._alloc_value(result)
            push(result)
        elif OP.SLOAD <= op <= OP.MDEL:
            self._storage(op, arg, stack, func)
        else:
            raise VMError(f"opcode {op} is not executable")
        return pc

    # --- instruction groups -------------------------------------------------------------------

    def _arith(self, op: int, stack: list[Any]) -> None:
        if op in (OP.NEG, OP.NOT, OP.INVERT):
            a = stack.pop()
            if op == OP.NOT:
                stack.append(not a)
                return
            r = -_int(a) if op == OP.NEG else ~_int(a)
        else:
            b = _int(stack.pop())
            a = _int(stack.pop())
            if op == OP.MUL:
                r = a * b
            elif op in (OP.FLOORDIV, OP.MOD):
                if b == 0:
                    raise VMError("division by zero")
                r = a // b if op == OP.FLOORDIV else a % b
            elif op == OP.POW:
                if b < 0:
                    raise VMError("negative exponent")
                if abs(a) > 1 and b > 256:
                    raise VMError("integer overflow in **")
                self._charge(b.bit_length() * 5)
                r = a**b
            elif op == OP.BITAND:
                r = a & b
            elif op == OP.BITOR:
                r = a | b
            elif op == OP.BITXOR:
                r = a ^ b
            else:
                if b < 0:
                    raise VMError("negative shift count")
                if op == OP.LSHIFT:
                    if b > 256 and a:
                        raise VMError("integer overflow in <<")
                    r = a << b
                else:
                    r = a >> min(b, 512)
        if not INT_MIN <= r <= INT_MAX:
            raise VMError(f"integer overflow in {Op(op).name.lower()}")
        stack.append(r)

    def _alloc_value(self, value: Any) -> None:
        kind = type(value)
        if kind is bytes or kind is str:
            if len(value) > MAX_VALUE_BYTES:
                raise VMError(f"bytes and strings are limited to {MAX_VALUE_BYTES} bytes")
            self._alloc(len(value))
        elif kind is list:
            if len(value) > MAX_LIST:
                raise VMError(f"lists hold at most {MAX_LIST} items")
            self._alloc(8 * len(value))
        else:
            raise VMError(f"unsupported operand types for +: {kind.__name__}")

    def _storage(self, op: int, var: int, stack: list[Any], func: Function) -> None:
        host = self.host
        decl = self.module.storage[var]
        if op in (OP.SSTORE, OP.MSTORE, OP.MDEL) and (func.view or host.read_only):
            raise VMError(f"{func.name} may not change storage ({'a view' if func.view else 'a read-only call'})")
        if op == OP.SLOAD:
            value = host.storage_get(var, SCALAR, None, decl.zero)
            self._charge_read(value)
            stack.append(value)
        elif op == OP.SSTORE:
            written = host.storage_set(var, SCALAR, None, stack.pop())
            self._charge(GAS_STORAGE_WRITE_BYTE * written)
        elif op == OP.MLOAD:
            key = stack.pop()
            value = host.storage_get(var, MAP, key, decl.zero)
            self._charge_read(value)
            stack.append(value)
        elif op == OP.MSTORE:
            key = stack.pop()
            written = host.storage_set(var, MAP, key, stack.pop())
            self._charge(GAS_STORAGE_WRITE_BYTE * written)
        elif op == OP.MHAS:
            stack.append(host.storage_has(var, stack.pop()))
        else:
            host.storage_delete(var, stack.pop())

    def _charge_read(self, value: Any) -> None:
        if type(value) in (bytes, str):
            self._alloc(len(value))
            self._charge(GAS_STORAGE_READ_WORD * (len(value) // 32))
        elif type(value) is list:
            self._alloc(8 * len(value))
            self._charge(GAS_STORAGE_READ_WORD * len(value))

    def _builtin(self, which: int, argc: int, stack: list[Any], depth: int) -> None:
        if len(stack) < argc:
            raise VMError("stack underflow")
        args = stack[len(stack) - argc :] if argc else []
        del stack[len(stack) - argc :]
        handler = _BUILTINS.get(which)
        if handler is None:
            raise VMError(f"builtin {which} does not exist")
        stack.append(handler(self, args, depth))

    def _method(self, which: int, argc: int, stack: list[Any]) -> None:
        if len(stack) < argc + 1:
            raise VMError("stack underflow")
        args = stack[len(stack) - argc :] if argc else []
        del stack[len(stack) - argc :]
        obj = stack.pop()
        if which == M.APPEND and type(obj) is list:
            if len(obj) >= MAX_LIST:
                raise VMError(f"lists hold at most {MAX_LIST} items")
            self._alloc(8)
            obj.append(args[0])
            stack.append(None)
        elif which == M.POP and type(obj) is list:
            if not obj:
                raise VMError("pop from an empty list")
            stack.append(obj.pop())
        elif which == M.GET and type(obj) is dict:
            _hashable(args[0])
            stack.append(obj.get(args[0], args[1] if len(args) > 1 else None))
        elif which in (M.KEYS, M.VALUES) and type(obj) is dict:
            self._alloc(8 * len(obj))
            stack.append(list(obj.keys() if which == M.KEYS else obj.values()))
        else:
            raise VMError(f"a {type(obj).__name__} has no method {Method(which).name.lower()}")


# --- builtins --------------------------------------------------------------------------------------


def _b_len(vm: Interpreter, a: list[Any], depth: int) -> Any:
    if type(a[0]) not in (bytes, str, list, dict):
        raise VMError(f"len() of a {type(a[0]).__name__}")
    return len(a[0])


def _b_require(vm: Interpreter, a: list[Any], depth: int) -> Any:
    if not a[0]:
        message = a[1] if len(a) > 1 else "requirement failed"
        raise Revert(message if type(message) is str else repr(message))
    return None


def _b_emit(vm: Interpreter, a: list[Any], depth: int) -> Any:
    if vm.host.read_only:
        raise VMError("a read-only call may not emit events")
    name, rest = a[0], a[1:]
    if type(name) is not str or len(rest) % 2:
        raise VMError("emit(name, field=value, ...) needs a name and named fields")
    fields = []
    size = len(name)
    for key, value in zip(rest[0::2], rest[1::2], strict=True):
        if type(key) is not str or type(value) not in (int, bytes, str, bool):
            raise VMError("event fields are named ints, bytes, strings or bools")
        if type(value) is int and not -(1 << 63) <= value < (1 << 64):
            raise VMError(f"event field {key}: integers in events are limited to 64 bits")
        size += len(key) + (len(value) if type(value) in (bytes, str) else 8)
        fields.append((key, value))
    vm._charge(GAS_EVENT + GAS_EVENT_BYTE * size)
    vm.host.emit(name, fields)
    return None


def _b_balance(vm: Interpreter, a: list[Any], depth: int) -> Any:
    return vm.host.balance(_address(a[0]))


def _b_transfer(vm: Interpreter, a: list[Any], depth: int) -> Any:
    if vm.host.read_only:
        raise VMError("a read-only call may not transfer")
    amount = _int(a[1])
    if amount < 0:
        raise VMError("transfer of a negative amount")
    vm._charge(GAS_TRANSFER)
    vm.host.transfer(_address(a[0]), amount)
    return None


def _b_sha256(vm: Interpreter, a: list[Any], depth: int) -> Any:
    data = a[0]
    if type(data) is str:
        data = data.encode()
    if type(data) is not bytes:
        raise VMError("sha256() takes bytes or a string")
    vm._charge(GAS_SHA256_WORD * (len(data) // 32 + 1))
    return sha256(data)


def _b_verify(vm: Interpreter, a: list[Any], depth: int) -> Any:
    public_key, signature, message = a
    if not all(type(x) is bytes for x in a):
        raise VMError("verify_ed25519(public_key, signature, message) takes bytes")
    vm._charge(GAS_VERIFY + len(message) // 32)
    return verify_raw(public_key, signature, message)


def _b_call(vm: Interpreter, a: list[Any], depth: int) -> Any:
    return _call_contract(vm, _address(a[0]), 0, a[1], a[2:], depth)


def _b_call_with_value(vm: Interpreter, a: list[Any], depth: int) -> Any:
    value = _int(a[1])
    if value < 0:
        raise VMError("call(..., value=amount): the amount is negative")
    if value and vm.host.read_only:
        raise VMError("a read-only call may not send value")
    if value:
        vm._charge(GAS_TRANSFER)
    return _call_contract(vm, _address(a[0]), value, a[2], a[3:], depth)


def _call_contract(vm: Interpreter, address: bytes, value: int, function: Any, args: list[Any], depth: int) -> Any:
    if type(function) is not str:
        raise VMError("call(address, function_name, *args): the function name is a string")
    vm._charge(GAS_CALL_CONTRACT)
    result, used = vm.host.call_contract(address, function, list(args), value, vm.gas, depth + 1)
    vm._charge(used)
    return result


def _b_minmax(pick: Callable[..., Any]) -> Callable[[Interpreter, list[Any], int], Any]:
    def run(vm: Interpreter, a: list[Any], depth: int) -> Any:
        return pick(_int(x) for x in a)

    return run


def _b_to_bytes(vm: Interpreter, a: list[Any], depth: int) -> Any:
    number, length = _int(a[0]), _int(a[1])
    if not 0 <= length <= 32 or number < 0 or number.bit_length() > 8 * length:
        raise VMError(f"to_bytes: {number} does not fit in {length} unsigned bytes (0-32)")
    vm._alloc(length)
    return number.to_bytes(length, "big")


def _b_from_bytes(vm: Interpreter, a: list[Any], depth: int) -> Any:
    if type(a[0]) is not bytes or len(a[0]) > 31:
        raise VMError("from_bytes() takes at most 31 bytes (the result is a signed 256-bit int)")
    return int.from_bytes(a[0], "big")


def _b_str(vm: Interpreter, a: list[Any], depth: int) -> Any:
    value = a[0]
    if type(value) not in (int, str, bool):
        raise VMError(f"str() of a {type(value).__name__}")
    text = str(value)
    vm._alloc(len(text))
    return text


def _b_address_of(vm: Interpreter, a: list[Any], depth: int) -> Any:
    if type(a[0]) is not bytes or len(a[0]) != 32:
        raise VMError("address_of() takes a 32-byte Ed25519 public key")
    return address_of(a[0])


_BUILTINS: dict[int, Callable[[Interpreter, list[Any], int], Any]] = {
    Builtin.LEN: _b_len,
    Builtin.REQUIRE: _b_require,
    Builtin.EMIT: _b_emit,
    Builtin.CALLER: lambda vm, a, d: vm.host.caller,
    Builtin.ORIGIN: lambda vm, a, d: vm.host.origin,
    Builtin.VALUE: lambda vm, a, d: vm.host.value,
    Builtin.SELF: lambda vm, a, d: vm.host.address,
    Builtin.BLOCK_HEIGHT: lambda vm, a, d: vm.host.block_height,
    Builtin.BLOCK_TIME: lambda vm, a, d: vm.host.block_time_ms,
    Builtin.BALANCE: _b_balance,
    Builtin.TRANSFER: _b_transfer,
    Builtin.SHA256: _b_sha256,
    Builtin.VERIFY_ED25519: _b_verify,
    Builtin.CALL_CONTRACT: _b_call,
    Builtin.MIN: _b_minmax(min),
    Builtin.MAX: _b_minmax(max),
    Builtin.ABS: lambda vm, a, d: abs(_int(a[0])) if a[0] != INT_MIN else _overflow(),
    Builtin.TO_BYTES: _b_to_bytes,
    Builtin.FROM_BYTES: _b_from_bytes,
    Builtin.STR: _b_str,
    Builtin.ADDRESS_OF: _b_address_of,
    Builtin.CALL_WITH_VALUE: _b_call_with_value,
    Builtin.CHAIN_ID: lambda vm, a, d: vm.host.chain_id,
}
_BUILTINS = {int(which): handler for which, handler in _BUILTINS.items()}  # int keys: see `OP` above


# --- helpers ---------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _index(container: Any, key: Any) -> Any:
    if type(container) is dict:
        if key not in container:
            raise VMError(f"key {_short(key)} is not in the dict")
        return container[key]
    return _sequence(container)[_int(key)]


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is bool:
        return int(value)
    raise VMError(f"expected an integer, got {type(value).__name__}")


def _overflow() -> Any:
    raise VMError("integer overflow in abs()")


def _address(value: Any) -> bytes:
    if type(value) is not bytes or len(value) != 20:
        raise VMError("expected a 20-byte address")
    return value


def _sequence(value: Any) -> Any:
    if type(value) not in (bytes, str, list):
        raise VMError(f"a {type(value).__name__} cannot be indexed or sliced")
    return value


def _contains(container: Any, item: Any) -> bool:
    kind = type(container)
    if kind is dict:
        _hashable(item)
        return item in container
    if kind is list:
        return item in container
    if kind in (bytes, str) and type(item) is kind:
        return item in container
    raise VMError(f"'in' on a {kind.__name__} with a {type(item).__name__}")


def _hashable(key: Any) -> None:
    if type(key) not in (int, bytes, str, bool) and key is not None:
        raise VMError(f"a {type(key).__name__} cannot be a dict key")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
