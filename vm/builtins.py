"""The builtins every contract can call (`len`, `require`, `emit`, `pay`, `sha256`, `call`, ...).

Each takes the running interpreter, its arguments (their count was checked by
`Module.decode`) and the call depth, checks the kinds of its arguments itself, charges what
its work costs beyond the BUILTIN instruction (vm/gas.py), and returns its result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.contract_values import INT_MIN
from core.hashing import sha256
from core.keys import address_of, verify_raw
from vm import gas as G
from vm.bytecode import Builtin
from vm.faults import Fault, Revert, VMError, contract_text, kind
from vm.operations import nbytes

if TYPE_CHECKING:
    from vm.machine import Machine

Handler = Callable[["Machine", list[Any], int], Any]
_NUMBER = (int, bool)
_I64_MIN, _U64_MAX = -(1 << 63), (1 << 64) - 1  # an event's integers fit in 64 bits, signed or not


def _int(value: Any, builtin: str) -> int:
    if type(value) is int:
        return value
    if type(value) is bool:
        return int(value)
    raise VMError(Fault.BUILTIN_ARGS, builtin=builtin, expects="integers")


def _address(value: Any, builtin: str) -> bytes:
    if type(value) is not bytes or len(value) != 20:
        raise VMError(Fault.BUILTIN_ARGS, builtin=builtin, expects="a 20-byte address")
    return value


def _len(vm: Machine, a: list[Any], depth: int) -> Any:
    if type(a[0]) not in (bytes, str, list, dict):
        raise VMError(Fault.BUILTIN_ARGS, builtin="len()", expects="bytes, a string, a list or a dict")
    return len(a[0])


def _require(vm: Machine, a: list[Any], depth: int) -> Any:
    if not a[0]:
        reason = a[1] if len(a) > 1 else None
        raise Revert(reason if type(reason) is str else "requirement failed")
    return None


def _emit(vm: Machine, a: list[Any], depth: int) -> Any:
    if vm.host.read_only:
        raise VMError(Fault.READ_ONLY_EMIT)
    name = a[0]
    if type(name) is not str or not len(a) % 2:
        raise VMError(Fault.EVENT_SHAPE)
    fields = []
    size = 4 * len(name)  # `nbytes` of a str, here and below
    for i in range(1, len(a), 2):
        key, value = a[i], a[i + 1]
        if type(key) is not str:
            raise VMError(Fault.EVENT_FIELD)
        kind_ = type(value)
        if kind_ is int:
            if not _I64_MIN <= value <= _U64_MAX:
                raise VMError(Fault.EVENT_INT, name=contract_text(key))
            size += 4 * len(key) + 8
        elif kind_ is str:
            size += 4 * (len(key) + len(value))
        elif kind_ is bytes:
            size += 4 * len(key) + len(value)
        elif kind_ is bool:
            size += 4 * len(key) + 8
        else:
            raise VMError(Fault.EVENT_FIELD)
        fields.append((key, value))
    vm._charge(G.EVENT + G.EVENT_FIELD * len(fields) + G.EVENT_BYTE * size)
    vm.host.emit(name, fields)
    return None


def _balance(vm: Machine, a: list[Any], depth: int) -> Any:
    vm._charge(G.BALANCE)
    return vm.host.balance(_address(a[0], "native_balance()"))


def _pay(vm: Machine, a: list[Any], depth: int) -> Any:
    if vm.host.read_only:
        raise VMError(Fault.READ_ONLY_PAY)
    to, amount = _address(a[0], "pay()"), _int(a[1], "pay()")
    if amount < 0:
        raise VMError(Fault.NEGATIVE_AMOUNT, builtin="pay()")
    vm._charge(G.TRANSFER)
    vm.host.transfer(to, amount)
    return None


def _sha256(vm: Machine, a: list[Any], depth: int) -> Any:
    data = a[0]
    if type(data) is not bytes and type(data) is not str:
        raise VMError(Fault.BUILTIN_ARGS, builtin="sha256()", expects="bytes or a string")
    vm._charge(G.SHA256 + G.SHA256_WORD * (nbytes(data) >> 5))
    vm._alloc(32)
    return sha256(data.encode() if isinstance(data, str) else data)  # exactly str or bytes, checked above


def _verify(vm: Machine, a: list[Any], depth: int) -> Any:
    public_key, signature, message = a
    if type(public_key) is not bytes or type(signature) is not bytes or type(message) is not bytes:
        raise VMError(Fault.BUILTIN_ARGS, builtin="verify_ed25519()", expects="bytes (public key, signature, message)")
    vm._charge(G.VERIFY + G.VERIFY_WORD * (len(message) >> 5))
    return verify_raw(public_key, signature, message)


def _call(vm: Machine, a: list[Any], depth: int) -> Any:
    return _call_contract(vm, _address(a[0], "call()"), 0, a[1], a[2:], depth)


def _call_with_value(vm: Machine, a: list[Any], depth: int) -> Any:
    value = _int(a[1], "call(..., value=amount)")
    if value < 0:
        raise VMError(Fault.NEGATIVE_AMOUNT, builtin="call(..., value=amount)")
    if value and vm.host.read_only:
        raise VMError(Fault.READ_ONLY_VALUE)
    if value:
        vm._charge(G.TRANSFER)
    return _call_contract(vm, _address(a[0], "call()"), value, a[2], a[3:], depth)


def _call_contract(vm: Machine, address: bytes, value: int, function: Any, args: list[Any], depth: int) -> Any:
    if type(function) is not str:
        raise VMError(Fault.BUILTIN_ARGS, builtin="call()", expects="the function's name as a string")
    vm._charge(G.CALL_CONTRACT + G.CALL_ARG * len(args))
    result, used = vm.host.call_contract(address, function, list(args), value, vm.remaining, depth + 1)
    vm._charge(used)
    return result


def _minmax(pick: Callable[..., Any], name: str) -> Handler:
    def run(vm: Machine, a: list[Any], depth: int) -> Any:
        vm._charge(G.SMALL_BUILTIN)
        if len(a) == 2 and type(a[0]) is int and type(a[1]) is int:  # the common case, without a generator
            return pick(a[0], a[1])
        return pick(_int(x, name) for x in a)

    return run


def _abs(vm: Machine, a: list[Any], depth: int) -> Any:
    number = _int(a[0], "abs()")
    vm._charge(G.SMALL_BUILTIN)
    if number == INT_MIN:
        raise VMError(Fault.OVERFLOW, op="abs()")
    return abs(number)


def _to_bytes(vm: Machine, a: list[Any], depth: int) -> Any:
    number, length = _int(a[0], "to_bytes()"), _int(a[1], "to_bytes()")
    if not 0 <= length <= 32 or number < 0 or number.bit_length() > 8 * length:
        raise VMError(Fault.TO_BYTES, number=number, length=length)
    vm._charge(G.SMALL_BUILTIN)
    vm._alloc(length)
    return number.to_bytes(length, "big")


def _from_bytes(vm: Machine, a: list[Any], depth: int) -> Any:
    if type(a[0]) is not bytes or len(a[0]) > 31:
        raise VMError(
            Fault.BUILTIN_ARGS, builtin="from_bytes()", expects="at most 31 bytes (the result is a signed 256-bit int)"
        )
    vm._charge(G.SMALL_BUILTIN)
    return int.from_bytes(a[0], "big")


def _str(vm: Machine, a: list[Any], depth: int) -> Any:
    value = a[0]
    if type(value) not in (int, str, bool):
        raise VMError(Fault.BUILTIN_ARGS, builtin="str()", expects=f"an int, a string or a bool, not {kind(value)}")
    text = str(value)  # decimal digits, "True" or "False": the language's own rendering
    vm._charge(G.SMALL_BUILTIN)
    vm._alloc(nbytes(text))
    return text


def _address_of(vm: Machine, a: list[Any], depth: int) -> Any:
    if type(a[0]) is not bytes or len(a[0]) != 32:
        raise VMError(Fault.BUILTIN_ARGS, builtin="address_of()", expects="a 32-byte Ed25519 public key")
    vm._charge(G.ADDRESS_OF)
    return address_of(a[0])


BUILTINS: dict[int, Handler] = {
    int(which): handler
    for which, handler in {
        Builtin.LEN: _len,
        Builtin.REQUIRE: _require,
        Builtin.EMIT: _emit,
        Builtin.CALLER: lambda vm, a, d: vm.host.caller,
        Builtin.ORIGIN: lambda vm, a, d: vm.host.origin,
        Builtin.VALUE: lambda vm, a, d: vm.host.value,
        Builtin.SELF: lambda vm, a, d: vm.host.address,
        Builtin.BLOCK_HEIGHT: lambda vm, a, d: vm.host.block_height,
        Builtin.BLOCK_TIME: lambda vm, a, d: vm.host.block_time_ms,
        Builtin.BALANCE: _balance,
        Builtin.TRANSFER: _pay,
        Builtin.SHA256: _sha256,
        Builtin.VERIFY_ED25519: _verify,
        Builtin.CALL_CONTRACT: _call,
        Builtin.MIN: _minmax(min, "min()"),
        Builtin.MAX: _minmax(max, "max()"),
        Builtin.ABS: _abs,
        Builtin.TO_BYTES: _to_bytes,
        Builtin.FROM_BYTES: _from_bytes,
        Builtin.STR: _str,
        Builtin.ADDRESS_OF: _address_of,
        Builtin.CALL_WITH_VALUE: _call_with_value,
        Builtin.CHAIN_ID: lambda vm, a, d: vm.host.chain_id,
    }.items()
}  # int keys: dispatch compares plain ints (see vm/interpreter.py `OP`)
assert set(BUILTINS) == {int(b) for b in Builtin}, "every builtin the bytecode may name has a handler"
