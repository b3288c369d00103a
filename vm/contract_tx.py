"""Deploy and call transactions: what their data means and what they leave in the receipt.

- DEPLOY: `data` = `[code, [arguments]]` (canonical msgpack; code is a module's bytecode,
  arguments are values as in core/contract_values.py). The contract's address follows from the sender
  and the transaction's nonce (`vm.contracts.contract_address`); `value` is sent to it; if
  the module has a function named `constructor`, it runs once with the arguments. The
  receipt carries a `Deployed` event with the address and the code hash.
- CALL: `data` = `[function name, [arguments]]`, `to` = the contract; `value` is sent to it
  with the call.

Bad data, bytecode that does not verify, a failed `require`, running out of gas: the
transaction is still included, its effects (value included) are reverted, the gas used
is charged, and the receipt says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core import codec
from core.contract_values import BadValue, from_wire, to_wire
from core.errors import DecodeError
from core.receipt import STATUS_FAILED, STATUS_SUCCESS, Event
from core.transaction import Transaction, TxKind
from vm.bytecode import BytecodeError, Module
from vm.contracts import CallContext, contract_address, install, move, run_call
from vm.faults import Fault, OutOfGas, VMError, internal_fault
from vm.gas import DEPLOY_BYTE
from vm.state import StateView
from vm.storage_values import fresh

CALL_CACHE_ENTRIES = 1_024  # decoded call data kept, dropped whole when full (at most ~15 MB of values)
CALL_CACHE_MAX_BYTES = 512  # longer call data is decoded each time
_CALLS: dict[bytes, tuple[str, tuple[Any, ...]]] = {}  # call data -> (function, arguments): a pure function of it
DATA_LIMITS = codec.Limits(max_bytes=256 * 1024, max_bin_len=256 * 1024, max_array_len=16_384, max_depth=20)


@dataclass(frozen=True)
class Outcome:
    status: int
    error: str
    gas_used: int
    events: tuple[Event, ...]
    result: Any = None


def encode_deploy(module: Module, args: list[Any]) -> bytes:
    return codec.encode([module.encode(), [to_wire(a) for a in args]])


def contract_transaction(view: StateView, tx: Transaction, height: int, time_ms: int, gas: int) -> Outcome:
    """Run a deploy or call transaction with `gas` (after the intrinsic gas).

    Its receipt's error is always one of the VM's own messages (vm/faults.py): malformed data is
    named by what was expected, never by the decoder's words.
    """
    ctx = CallContext(origin=tx.sender_address, block_height=height, block_time_ms=time_ms, chain_id=tx.chain_id)
    used = 0
    try:
        try:
            if tx.kind == TxKind.DEPLOY:
                result, used, address = _deploy(view, tx, ctx, gas)
                code_hash = view.account(address).code_hash
                deployed = Event(address, "Deployed", (("address", address), ("code_hash", code_hash)))
                events = (deployed, *_events(ctx))
            else:
                if len(tx.to) != 20:
                    raise VMError(Fault.NO_ADDRESS)
                function, args = _call_data(tx.data)
                result, used, _ = run_call(view, ctx, tx.sender_address, tx.to, function, args, tx.value, gas)
                events = _events(ctx)
        except VMError:
            raise
        except Exception as exc:  # a bug in decoding or installing: one fixed message, logged and counted
            raise internal_fault(exc, f"transaction 0x{tx.hash.hex()}") from exc
    except VMError as exc:
        return Outcome(STATUS_FAILED, str(exc), getattr(exc, "gas_used", used) or used, ())
    return Outcome(STATUS_SUCCESS, "", used, events, result)


class _Malformed(VMError):
    """The transaction's data does not say what to run: nothing ran and no gas beyond the intrinsic is used."""

    gas_used = 0


def _call_data(data: bytes) -> tuple[str, list[Any]]:
    """(function, arguments) of a call's data; the same data (many senders send the same call) is decoded once."""
    known = _CALLS.get(data)
    if known is not None:
        function, args = known
        return function, [fresh(a) if type(a) is list else a for a in args]  # the contract may change its lists
    function, decoded = _decode_call(data)
    if len(data) <= CALL_CACHE_MAX_BYTES:
        if len(_CALLS) >= CALL_CACHE_ENTRIES:
            _CALLS.clear()
        _CALLS[data] = (function, tuple(fresh(a) if type(a) is list else a for a in decoded))
    return function, decoded


def _decode_call(data: bytes) -> tuple[str, list[Any]]:
    try:
        items = codec.decode(data, limits=DATA_LIMITS)
        if not isinstance(items, list) or len(items) != 2 or not isinstance(items[1], list):
            raise DecodeError("call data: expected [function name, [arguments]]")
        function = codec.expect_str(items[0], "function name", 64)
    except DecodeError as exc:
        raise _Malformed(Fault.MALFORMED_CALL) from exc
    return function, _arguments(items[1])


def _arguments(wire: list[Any]) -> list[Any]:
    try:
        return [from_wire(a) for a in wire]
    except BadValue as exc:
        raise _Malformed(Fault.MALFORMED_ARGUMENTS) from exc


def _deploy(view: StateView, tx: Transaction, ctx: CallContext, gas: int) -> tuple[Any, int, bytes]:
    try:
        items = codec.decode(tx.data, limits=DATA_LIMITS)
    except DecodeError as exc:
        raise _Malformed(Fault.MALFORMED_DEPLOY) from exc
    if not isinstance(items, list) or len(items) != 2 or type(items[0]) is not bytes or not isinstance(items[1], list):
        raise _Malformed(Fault.MALFORMED_DEPLOY)
    try:
        module = Module.decode(items[0])
    except BytecodeError as exc:
        raise _Malformed(Fault.BAD_CODE) from exc
    args = _arguments(items[1])
    cost = DEPLOY_BYTE * len(items[0])
    if cost > gas:
        error = OutOfGas(Fault.OUT_OF_GAS_CODE, size=len(items[0]), gas=cost)
        error.gas_used = gas
        raise error
    address = contract_address(tx.sender_address, tx.nonce)
    branch = view.branch()
    if branch.account(address).code_hash:
        raise VMError(Fault.CONTRACT_EXISTS, address=address.hex())
    try:
        install(branch, address, module)
    except VMError as exc:  # the stack rule: refused like code that does not decode
        raise _Malformed(exc.fault, **exc.params) from exc
    move(branch, tx.sender_address, address, tx.value)
    result, used = None, cost
    if module.function("constructor") is not None:
        try:
            result, ran, _ = run_call(
                branch, ctx, tx.sender_address, address, "constructor", args, 0, gas - cost, internal=True
            )
        except VMError as exc:
            exc.gas_used = cost + getattr(exc, "gas_used", 0)
            raise
        used += ran
    elif args:
        raise VMError(Fault.NO_CONSTRUCTOR)
    branch.merge()
    return result, used, address


def _events(ctx: CallContext) -> tuple[Event, ...]:
    return tuple(Event(emitter, name, tuple(fields)) for emitter, name, fields in ctx.events)
