"""The `contract_` JSON-RPC namespace: read-only calls, storage with proofs, events.

Contract values in JSON (`core.contract_json`): integers as numbers, bytes as 0x-hex strings, other strings as
they are (a string that itself starts with 0x is written `{"str": "0x…"}`), true/false,
null, arrays. Results come back the same way.

A read-only call (`contract_call`) is free, so it is bounded instead (node.toml `[rpc]`): at
most `call_gas_cap` gas, `call_time_budget_s` of wall time from its arrival, and a few at
once (node/rpc/read_calls.py). It runs on its own threads against a snapshot of the head's
state, so blocks commit undisturbed while it reads.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from core.block import Header
from core.contract_json import JsonTooLarge, value_from_json, value_to_json
from core.contract_values import BadValue, decode_value, to_wire
from core.errors import AichainError
from node.rpc import params as p
from node.rpc.caller import client
from node.rpc.errors import InvalidParams
from node.rpc.eth import HistoricalStateUnavailable
from node.rpc.read_calls import ReadOnlyCalls
from node.rpc.registry import MethodRegistry, Param
from node.rpc.views import hx
from vm.bytecode import StorageKind
from vm.contracts import CallContext, load_module, run_call, storage_key
from vm.faults import Fault
from vm.interpreter import Deadline, VMError
from vm.state import StateView

if TYPE_CHECKING:
    from node.chain import Chain
    from node.config import RpcConfig

MAX_EVENT_BLOCKS = 10_000
MAX_RESULT_BYTES = 4 * 1024 * 1024  # the JSON of a call's result, about
MAX_RESULT_DEPTH = 16


def result_json(value: Any) -> Any:
    """A call's result as JSON, within MAX_RESULT_BYTES and MAX_RESULT_DEPTH (else `ResultTooLarge`)."""
    try:
        return value_to_json(value, max_bytes=MAX_RESULT_BYTES, max_depth=MAX_RESULT_DEPTH)
    except JsonTooLarge as exc:
        raise ResultTooLarge(str(exc)) from None


def arguments(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("expected an array of arguments")
    converted = [value_from_json(v) for v in value]
    for item in converted:
        to_wire(item)  # raises BadValue (a DecodeError) for values no contract can take
    return converted


def register_contracts(registry: MethodRegistry, chain: Chain, rpc: RpcConfig, calls: ReadOnlyCalls) -> None:
    """The `contract_` methods; `calls` runs read-only calls within the `[rpc]` bounds of `rpc`."""

    def head_state(block: str | int) -> Header:
        """The head, if `block` names it: the node keeps the latest state only."""
        head = chain.head
        if block == "earliest" or (isinstance(block, int) and block != head.height):
            raise HistoricalStateUnavailable(
                f"state at block {block} is not available: this node keeps the latest state only "
                f"(the head is {head.height}; use 'latest')"
            )
        return head

    @registry.method(
        "contract_call",
        Param("address", p.address, doc="the contract"),
        Param("function", _function_name, doc="a public function"),
        Param("args", arguments, default=(), doc="its arguments, as JSON contract values"),
        Param("from", p.address, default=b"\x00" * 20, doc="the caller it sees (default: the zero address)"),
        Param("block", p.block_ref, default="latest", doc="the block whose state to run against: the head"),
        doc="Run a contract function read-only against the head state and return its result; nothing is "
        "stored or charged. Writing storage, emitting or paying fails the call. A call may use at most "
        f"{rpc.call_gas_cap:,} gas and {rpc.call_time_budget_s:g} s ([rpc] call_gas_cap, call_time_budget_s); "
        f"{rpc.call_max_per_client} run at once per client, more wait (-32096 beyond {rpc.call_max_queued_per_client} "
        f"per client or {rpc.call_max_in_flight} in all).",
        example={"params": ["0x5fc5…", "balance_of", ["0x9ba4…"]], "result": {"result": 990, "gas_used": 7812}},
    )
    async def contract_call(
        address: bytes, function: str, args: list[Any], caller: bytes, block: str | int
    ) -> dict[str, Any]:
        head_state(block)
        deadline = Deadline(rpc.call_time_budget_s)  # from the call's arrival: waiting for a thread counts

        def run() -> dict[str, Any]:
            deadline.check()
            head, state = chain.state_snapshot()
            try:
                ctx = CallContext(
                    caller,
                    head.height + 1,
                    head.timestamp_ms,
                    read_only=True,
                    chain_id=chain.chain_id,
                    deadline=deadline,
                )
                result, used, _ = run_call(
                    StateView(state), ctx, caller, address, function, list(args), 0, rpc.call_gas_cap
                )
            finally:
                state.close()
            return {"result": result_json(result), "gas_used": used, "height": head.height}

        try:
            answer = await calls.run(client(), run)
        except VMError as exc:
            calls.count("failed")
            raise ContractCallFailed(_reason(exc, rpc.call_gas_cap), gas_used=getattr(exc, "gas_used", 0)) from exc
        calls.count("answered")
        return answer

    @registry.method(
        "contract_getStorage",
        Param("address", p.address, doc="the contract"),
        Param("name", _function_name, doc="a storage variable of the contract"),
        Param("key", value_from_json, default=None, doc="for a map: the key (JSON contract value)"),
        Param("block", p.block_ref, default="latest", doc="the block whose state to read: the head"),
        doc="A storage value at the head, with a proof of it (or of its absence) against the head's state root.",
        example={
            "params": ["0x5fc5…", "balances", "0x9ba4…"],
            "result": {"value": 990, "present": True, "height": 12, "state_root": "0x…", "proof": "0x…"},
        },
    )
    async def contract_get_storage(address: bytes, name: str, key: Any, block: str | int) -> dict[str, Any]:
        head_state(block)
        module = load_module(StateView(chain.state), address)
        if module is None:
            raise NotAContract(f"there is no contract at {hx(address)}")
        index = next((i for i, v in enumerate(module.storage) if v.name == name), None)
        if index is None:
            known = ", ".join(v.name for v in module.storage) or "none"
            raise InvalidParams(f"the contract has no storage variable {name!r} (it has: {known})")
        decl = module.storage[index]
        if (decl.kind == StorageKind.MAP) != (key is not None):
            what = "map: give a key" if decl.kind == StorageKind.MAP else "scalar: no key"
            raise InvalidParams(f"{name} is a {what}")
        try:
            state_key = storage_key(address, index, key, decl.kind)
        except BadValue as exc:
            raise InvalidParams(f"the key is not a contract value: {exc}") from exc
        # On a thread: the proof waits for a commit in progress (its lock), never on the event loop.
        header, raw, proof = await asyncio.to_thread(chain.prove_key, state_key)
        value = decl.zero if raw is None else decode_value(raw)
        return {
            "value": value_to_json(value),
            "present": raw is not None,
            "height": header.height,
            "state_root": hx(header.state_root),
            "key": hx(state_key),
            "proof": hx(proof.encode()),
        }

    @registry.method(
        "contract_getEvents",
        Param("address", p.address, doc="the contract that emitted them"),
        Param("from_height", p.quantity, doc="first block"),
        Param("to_height", p.quantity, default=None, doc="last block (default: the head)"),
        Param("name", _function_name, default=None, doc="only events of this name"),
        doc=f"Events a contract emitted in a range of blocks (at most {MAX_EVENT_BLOCKS:,} blocks per call).",
        example={
            "params": ["0x5fc5…", 1, 20, "Sent"],
            "result": [{"height": 3, "tx_hash": "0x…", "name": "Sent", "fields": {"amount": 10}}],
        },
    )
    async def contract_get_events(
        address: bytes, first: int, last: int | None, name: str | None
    ) -> list[dict[str, Any]]:
        last = chain.head.height if last is None else min(last, chain.head.height)
        if last - first >= MAX_EVENT_BLOCKS:
            raise InvalidParams(f"ask for at most {MAX_EVENT_BLOCKS:,} blocks at a time")
        # Reading and decoding up to MAX_EVENT_BLOCKS blocks is seconds of work: a thread's, not the loop's.
        return await asyncio.to_thread(_scan_events, chain, address, first, last, name)


def _scan_events(chain: Chain, address: bytes, first: int, last: int, name: str | None) -> list[dict[str, Any]]:
    """The events `address` emitted in blocks first..last (named `name`, if given)."""
    found = []
    for height in range(max(first, 1), last + 1):
        block = chain.blocks.block(height)
        if block is None:
            continue
        for index, tx in enumerate(block.transactions):
            receipt = chain.blocks.receipt(height, index)
            for event in () if receipt is None else receipt.events:
                if event.emitter == address and (name is None or event.name == name):
                    found.append(
                        {
                            "height": height,
                            "tx_hash": hx(tx.hash),
                            "name": event.name,
                            "fields": {k: value_to_json(v) for k, v in event.fields},
                        }
                    )
    return found


def _function_name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ValueError("expected a name (1 to 64 characters)")
    return value


def _reason(exc: VMError, gas_cap: int) -> str:
    """The VM's reason, with what bounds a read-only call on this node when it ran into one."""
    if exc.fault is Fault.OUT_OF_GAS:
        return f"out of gas: a read-only call may use at most {gas_cap:,} gas on this node ([rpc] call_gas_cap)"
    if exc.fault is Fault.TIME_BUDGET:
        return f"{exc} on this node ([rpc] call_time_budget_s)"
    return str(exc)


class ContractCallFailed(AichainError):
    """The read-only call failed: the message is the VM's (a failed require says the contract's words)."""

    rpc_code = -32094


class ResultTooLarge(ContractCallFailed):
    """The call's result is too large or too deeply nested to send back."""


class NotAContract(AichainError):
    rpc_code = -32095
