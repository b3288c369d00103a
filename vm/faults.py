"""Why a contract call failed: the closed set of the VM's own messages.

Receipts are hashed into blocks, so the reason a call failed is consensus data: it must be
the same on every validator whatever its Python version, platform or libraries. Rules:
- every failure is a `VMError` carrying one `Fault` of the table below; its message is the
  fault's fixed text with its parameters filled in, and nothing else;
- parameters are bounded and deterministic: integers, the VM's own names of value kinds
  (`kind`), operator names from this module, names taken from the contract's code or data
  (`contract_text`, at most 64 characters), hex addresses;
- no text from Python or a library ever reaches a message (no `str(exc)`, no `repr`, no
  `type(x).__name__`): the VM detects type, index and key errors with its own checks;
- an exception the VM did not expect is a bug: `internal_fault` logs it with its
  traceback, counts it (`internal_errors()`, exported by the node in /metrics) and turns it
  into the one fixed message "internal VM error".
`Revert` is the one fault whose text the contract chooses: `require(cond, "reason")`.
"""

from __future__ import annotations

import logging
import threading
from enum import Enum
from typing import Any

from core.errors import AichainError

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 64  # contract-chosen names (functions, event fields) quoted in a message


class Fault(Enum):
    """Each way a call can fail, with the text it puts in a receipt ({...}: its parameters)."""

    # gas, time and bounds
    OUT_OF_GAS = "out of gas"
    OUT_OF_GAS_CODE = "out of gas storing {size} bytes of code ({gas} gas)"
    TIME_BUDGET = "the read-only call ran past its time budget of {ms} ms"
    MEMORY = "memory limit of {limit} bytes exceeded"
    DEPTH = "call depth limit of {limit} exceeded"
    CALL_DEPTH = "contract calls nest at most {limit} deep"
    VALUE_TOO_LARGE = "bytes and strings are limited to {limit} bytes"
    LIST_TOO_LONG = "lists hold at most {limit} items"
    DICT_TOO_LONG = "dicts hold at most {limit} items"
    TOO_DEEP = "values nest at most {limit} levels deep"
    # integers
    OVERFLOW = "integer overflow in {op}"
    DIVISION_BY_ZERO = "division by zero"
    NEGATIVE_EXPONENT = "negative exponent"
    NEGATIVE_SHIFT = "negative shift count"
    # types, indexes, keys
    EXPECTED_INT = "type error: expected an int, got {kind}"
    OPERANDS = "type error: {op} does not take {left} and {right}"
    NOT_INDEXABLE = "type error: {kind} cannot be indexed or sliced"
    BAD_INDEX = "type error: {container} cannot be indexed by {kind}"
    INDEX_RANGE = "index {index} out of range for {kind} of length {length}"
    KEY_MISSING = "the dict has no such key ({kind})"
    UNHASHABLE = "type error: {kind} cannot be a dict key"
    NOT_ITERABLE = "a for loop runs over a list, bytes or a string, not {kind}"
    LOOP_INDEX = "a for loop's position is not a valid index"
    ASSIGN_INTO = "type error: cannot assign into {kind}"
    NO_METHOD = "type error: {kind} has no method {method}"
    POP_EMPTY = "pop from an empty list"
    BUILTIN_ARGS = "type error: {builtin} takes {expects}"
    TO_BYTES = "to_bytes: {number} does not fit in {length} unsigned bytes (0-32)"
    # storage and events
    READ_ONLY = "{name} may not change storage ({why})"
    READ_ONLY_EMIT = "a read-only call may not emit events"
    READ_ONLY_PAY = "a read-only call may not transfer"
    READ_ONLY_VALUE = "a read-only call may not send value"
    CANNOT_STORE = "cannot store {kind}"
    BAD_MAP_KEY = "a map key is an int, bytes, str, bool or a list of them, not {kind}"
    EVENT_SHAPE = "emit(name, field=value, ...) needs a name and named fields"
    EVENT_FIELD = "event fields are named ints, bytes, strings or bools"
    EVENT_INT = "event field {name}: integers in events are limited to 64 bits"
    # value, calls, contracts
    NEGATIVE_AMOUNT = "{builtin}: the amount is negative"
    BALANCE_LOW = "balance {balance} is less than the {amount} units to transfer"
    BALANCE_OVERFLOW = "recipient balance would exceed 2^64-1 units"
    NO_FUNCTION = "the contract has no public function '{name}'"
    ARG_COUNT = "{name} takes {expected} arguments, got {got}"
    NO_CONTRACT = "there is no contract at 0x{address}"
    CONTRACT_EXISTS = "a contract already lives at 0x{address}"
    NO_CONSTRUCTOR = "the contract has no constructor to take the arguments"
    NO_ADDRESS = "a call needs the contract's 20-byte address in `to`"
    # the transaction's data
    MALFORMED_CALL = "malformed call data: expected [function name, [arguments]] in canonical msgpack"
    MALFORMED_DEPLOY = "malformed deploy data: expected [code, [arguments]] in canonical msgpack"
    MALFORMED_ARGUMENTS = "malformed transaction data: the arguments are not contract values (vm/values.py)"
    BAD_CODE = "the code is not valid bytecode for this VM (check it with `aichain-node contract compile`)"
    BAD_STACK = "function {name}: its code can pop an empty stack or leave it uneven at instruction {pc}"
    # transactions that are not contract calls
    NO_RECIPIENT = "a transfer needs a 20-byte recipient address"
    VOTE_SHAPE = "a validator vote carries no value and no recipient"
    VOTE_MALFORMED = (
        "malformed validator vote: expected [13, action (0 add, 1 remove), 32-byte public key, "
        "power (positive to add)] in canonical msgpack"
    )
    VOTE_NOT_VALIDATOR = "only a current validator may vote on the validator set"
    # the contract's own words, and the VM's bugs
    REVERT = "{reason}"
    INTERNAL = "internal VM error"

    def render(self, params: dict[str, Any]) -> str:
        for key, value in params.items():
            if type(value) is not int and type(value) is not str:
                raise TypeError(f"fault {self.name}: parameter {key} must be an int or a str")
        return self.value.format(**params)


class VMError(AichainError):
    """A contract call failed; its effects are reverted and its gas is spent. `fault` says which way."""

    rpc_code = -32090
    # Gas the failed call spent, set by `run_call` and `contract_transaction` once they know it;
    # absent before that (readers use getattr with a default), hence no class-level value.
    gas_used: int

    def __init__(self, fault: Fault, **params: Any) -> None:
        super().__init__(fault.render(params))
        self.fault = fault
        self.params = params


class OutOfGas(VMError):
    rpc_code = -32091

    def __init__(self, fault: Fault = Fault.OUT_OF_GAS, **params: Any) -> None:
        super().__init__(fault, **params)


class Revert(VMError):
    """`require` failed: the message says why (the contract's words)."""

    rpc_code = -32092

    def __init__(self, reason: str) -> None:
        super().__init__(Fault.REVERT, reason=reason)


class InternalVMError(VMError):
    """An exception the VM did not expect: a bug, never the contract's doing. One fixed message."""

    def __init__(self) -> None:
        super().__init__(Fault.INTERNAL)


# --- the VM's own names for what it shows in messages ----------------------------------------------

_KINDS: dict[type, str] = {
    int: "an int",
    bool: "a bool",
    bytes: "bytes",
    str: "a string",
    type(None): "None",
    list: "a list",
    dict: "a dict",
}


def kind(value: Any) -> str:
    """The VM's name for the kind of `value` (never Python's type name)."""
    return _KINDS.get(type(value), "a value of no VM kind")


def contract_text(text: str) -> str:
    """A name the contract chose (function, event field), bounded for a message."""
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 3] + "..."


# --- bugs --------------------------------------------------------------------------------------------


class _Counter:
    """A thread-safe count (the VM runs on the block thread and on read-only call threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def add(self) -> None:
        with self._lock:
            self._value += 1

    @property
    def value(self) -> int:
        return self._value


_INTERNAL_ERRORS = _Counter()


def internal_fault(exc: BaseException, where: str) -> InternalVMError:
    """Log a VM bug with its traceback, count it, and return the one fixed error that replaces it."""
    _INTERNAL_ERRORS.add()
    log.error("internal VM error in %s (a bug: please report it with this traceback)", where, exc_info=exc)
    return InternalVMError()


def internal_errors() -> int:
    """How many unexpected exceptions this process's VM has turned into "internal VM error"."""
    return _INTERNAL_ERRORS.value
