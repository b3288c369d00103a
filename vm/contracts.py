"""Contracts on the chain: code, storage, and running calls against a state overlay.

State keys:
- `b"C" + code hash`: a module's bytecode (stored once per distinct code);
- `b"s" + contract address + var index (1 byte) [+ encoded key]`: a storage scalar or map entry.

A contract account is an account whose `code_hash` is set. Its address is the last 20 bytes
of SHA-256(b"contract" + deployer address + deployer nonce at deploy), so it is known before
the deploy is included. Every call runs in a branch of the block's state view; a call that
fails leaves nothing behind (its branch is dropped), a call that succeeds merges it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.contract_values import MAX_DEPTH, MAX_LIST, MAX_VALUE_BYTES, encode_value
from core.hashing import sha256
from core.keys import ADDRESS_SIZE
from vm.bytecode import Module, StorageKind
from vm.faults import Fault, VMError, internal_fault, kind
from vm.interpreter import Deadline, Interpreter
from vm.stack_check import check_module
from vm.state import StateView
from vm.storage_values import flat_wire, list_key, pack, stored_value

CODE_PREFIX = b"C"
STORAGE_PREFIX = b"s"
MAX_CALL_DEPTH = 8  # contract-to-contract calls
_MODULE_CACHE: dict[bytes, Module] = {}  # code hash -> decoded module (code is immutable)
_VAR_BYTES = tuple(bytes([var]) for var in range(256))


def contract_address(deployer: bytes, nonce: int) -> bytes:
    return sha256(b"contract" + deployer + nonce.to_bytes(8, "big"))[-ADDRESS_SIZE:]


def storage_key(address: bytes, var: int, key: Any = None, kind: int = StorageKind.SCALAR) -> bytes:
    base = STORAGE_PREFIX + address + bytes([var])
    return base if kind == StorageKind.SCALAR else base + encode_value(key)


def install(view: StateView, address: bytes, module: Module) -> None:
    """Store `module` as the code of `address` (deploy and genesis); `VMError` if its code breaks the stack rule."""
    check_module(module)
    code = module.encode()
    code_hash = sha256(code)
    view.set(CODE_PREFIX + code_hash, code)
    account = view.account(address)
    account.code_hash = code_hash
    view.touch(address)
    _MODULE_CACHE[code_hash] = module


def load_module(view: StateView, address: bytes) -> Module | None:
    code_hash = view.code_hash(address)
    if not code_hash:
        return None
    module = _MODULE_CACHE.get(code_hash)
    if module is None:
        raw = view.get(CODE_PREFIX + code_hash)
        if raw is None:
            return None
        module = Module.decode(raw)
        check_module(module)  # it passed at deploy: this only re-derives what the cache forgot
        _MODULE_CACHE[code_hash] = module
    return module


@dataclass
class CallContext:
    """What does not change during one transaction."""

    origin: bytes
    block_height: int
    block_time_ms: int
    read_only: bool = False
    chain_id: int = 0
    deadline: Deadline | None = None  # read-only calls only: a transaction's outcome never depends on time
    events: list[tuple[bytes, str, list[tuple[str, Any]]]] = field(default_factory=list)
    # Storage keys this transaction already touched: a key costs its full read or write price once
    # per transaction, then the warm price (as EIP-2929); which keys are warm follows from the
    # transaction alone, so gas stays deterministic.
    read_keys: set[bytes] = field(default_factory=set)
    written_keys: set[bytes] = field(default_factory=set)


class ContractHost:
    """The chain as one running contract sees it (`vm.interpreter.Host`), over a state branch."""

    def __init__(self, view: StateView, ctx: CallContext, address: bytes, caller: bytes, value: int) -> None:
        self.view = view
        self.ctx = ctx
        self.address = address
        self.caller = caller
        self.value = value
        self.origin = ctx.origin
        self.block_height = ctx.block_height
        self.block_time_ms = ctx.block_time_ms
        self.chain_id = ctx.chain_id
        self.read_only = ctx.read_only
        self._prefix = STORAGE_PREFIX + address  # `storage_key` without the var index and key

    def storage_get(self, var: int, kind: int, key: Any, zero: Any) -> tuple[Any, bool, int]:
        """(value, first access in this transaction, bytes of key and value)."""
        storage = self._key(var, kind, key)
        raw = self.view.get(storage)
        seen = self.ctx.read_keys
        cold = storage not in seen  # `_first`, inline: every read of a contract asks
        if cold:
            seen.add(storage)
        if raw is None:
            return zero, cold, len(storage)
        return stored_value(raw), cold, len(storage) + len(raw)

    def storage_set(self, var: int, kind: int, key: Any, value: Any) -> tuple[bool, int]:
        """(first write of the key in this transaction, bytes of key and value written)."""
        storage = self._key(var, kind, key)
        wire = flat_wire(value)
        if wire is not None:
            raw = pack(wire)
        else:
            check_storable(value, Fault.CANNOT_STORE)
            raw = encode_value(value)
        self.view.set(storage, raw)
        self.ctx.read_keys.add(storage)
        return self._first(self.ctx.written_keys, storage), len(storage) + len(raw)

    def storage_has(self, var: int, key: Any) -> tuple[bool, bool, int]:
        """(present, first access in this transaction, bytes of the key)."""
        storage = self._key(var, StorageKind.MAP, key)
        present = self.view.get(storage) is not None
        return present, self._first(self.ctx.read_keys, storage), len(storage)

    def storage_delete(self, var: int, key: Any) -> tuple[bool, int]:
        """(first write of the key in this transaction, bytes of the key)."""
        storage = self._key(var, StorageKind.MAP, key)
        self.view.set(storage, None)
        self.ctx.read_keys.add(storage)
        return self._first(self.ctx.written_keys, storage), len(storage)

    @staticmethod
    def _first(seen: set[bytes], key: bytes) -> bool:
        if key in seen:
            return False
        seen.add(key)
        return True

    def _key(self, var: int, kind: int, key: Any) -> bytes:
        """`storage_key` of the map key after `check_storable`, the common keys in one step (vm/storage_values.py)."""
        base = self._prefix + _VAR_BYTES[var]
        if kind != StorageKind.MAP:
            return base
        if type(key) is list and (raw := list_key(key)) is not None:
            return base + raw
        wire = flat_wire(key)
        if wire is not None:
            return base + pack(wire)
        check_storable(key, Fault.BAD_MAP_KEY)
        return base + encode_value(key)

    def balance(self, address: bytes) -> int:
        return self.view.account(address).balance

    def transfer(self, to: bytes, amount: int) -> None:
        move(self.view, self.address, to, amount)

    def emit(self, name: str, fields: list[tuple[str, Any]]) -> None:
        self.ctx.events.append((self.address, name, fields))

    def call_contract(
        self, address: bytes, function: str, args: list[Any], value: int, gas: int, depth: int
    ) -> tuple[Any, int]:
        if depth >= MAX_CALL_DEPTH:
            raise VMError(Fault.CALL_DEPTH, limit=MAX_CALL_DEPTH)
        result, used, _ = run_call(self.view, self.ctx, self.address, address, function, args, value, gas, depth)
        return result, used


def move(view: StateView, sender: bytes, to: bytes, amount: int) -> None:
    if amount == 0:
        return
    source = view.account(sender)
    if source.balance < amount:
        raise VMError(Fault.BALANCE_LOW, balance=source.balance, amount=amount)
    target = view.account(to)
    if target.balance + amount >= 1 << 64:
        raise VMError(Fault.BALANCE_OVERFLOW)
    source.balance -= amount
    target.balance += amount
    view.touch(sender)
    view.touch(to)


def run_call(
    view: StateView,
    ctx: CallContext,
    caller: bytes,
    address: bytes,
    function: str,
    args: list[Any],
    value: int,
    gas: int,
    depth: int = 0,
    *,
    internal: bool = False,
) -> tuple[Any, int, StateView]:
    """Run `function` of the contract at `address` in a branch of `view`: (result, gas used, branch).

    On success the branch is merged into `view`; on failure nothing is kept and the
    `VMError` says why (its `gas_used` attribute tells how much gas was spent).
    """
    branch = view.branch()
    events_before = len(ctx.events)
    interpreter = None
    try:
        try:
            module = load_module(branch, address)
            if module is None:
                raise VMError(Fault.NO_CONTRACT, address=address.hex())
            move(branch, caller, address, value)
            host = ContractHost(branch, ctx, address, caller, value)
            interpreter = Interpreter(module, host, gas, depth, ctx.deadline)
            result = interpreter.run(function, args, internal=internal)
        except VMError:
            raise
        except Exception as exc:  # stored code that no longer decodes, a host bug: never the contract's doing
            raise internal_fault(exc, f"a call to 0x{address.hex()}") from exc
    except VMError as exc:
        del ctx.events[events_before:]
        left = None if interpreter is None else interpreter.remaining
        exc.gas_used = gas if left is None or left < 0 else gas - left
        raise
    branch.merge()
    return result, gas - interpreter.remaining, branch


def check_storable(value: Any, fault: Fault, depth: int = 0) -> None:
    """Raise `VMError` unless `value` can be stored (or key a map): no dicts, within the value limits."""
    kind_ = type(value)
    if kind_ is bytes:
        if len(value) > MAX_VALUE_BYTES:
            raise VMError(Fault.VALUE_TOO_LARGE, limit=MAX_VALUE_BYTES)
    elif kind_ is str:
        if len(value) > MAX_VALUE_BYTES // 4 and len(value.encode()) > MAX_VALUE_BYTES:
            raise VMError(Fault.VALUE_TOO_LARGE, limit=MAX_VALUE_BYTES)
    elif kind_ is list:
        if len(value) > MAX_LIST:
            raise VMError(Fault.LIST_TOO_LONG, limit=MAX_LIST)
        if depth >= MAX_DEPTH:
            raise VMError(Fault.TOO_DEEP, limit=MAX_DEPTH)
        for item in value:
            check_storable(item, fault, depth + 1)
    elif kind_ not in (int, bool) and value is not None:
        raise VMError(fault, kind=kind(value))
