"""The `contract_` JSON-RPC namespace: read-only calls, storage with proofs, events.

Contract values in JSON: integers as numbers, bytes as 0x-hex strings, other strings as
they are (a string that itself starts with 0x is written `{"str": "0x…"}`), true/false,
null, arrays. Results come back the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.block import Header
from core.errors import AichainError
from node.rpc import params as p
from node.rpc.errors import InvalidParams
from node.rpc.eth import HistoricalStateUnavailable
from node.rpc.registry import MethodRegistry, Param
from node.rpc.views import hx
from vm.bytecode import StorageKind
from vm.contracts import CallContext, load_module, run_call, storage_key
from vm.interpreter import VMError
from vm.state import StateView
from vm.values import BadValue, decode_value, to_wire

if TYPE_CHECKING:
    from node.node import Node

READ_GAS = 100_000_000  # a read-only call may use this much gas (nothing is charged)
MAX_EVENT_BLOCKS = 10_000


def value_from_json(value: Any) -> Any:
    """A contract value from its JSON form (see the module docstring)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return p.data(value) if value.startswith(("0x", "0X")) else value
    if isinstance(value, list):
        return [value_from_json(v) for v in value]
    if isinstance(value, dict) and set(value) == {"str"} and isinstance(value["str"], str):
        return value["str"]
    raise ValueError("contract values are numbers, 0x-hex bytes, strings, booleans, null or arrays")


def value_to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return hx(value)
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return {"str": value}
    if isinstance(value, list):
        return [value_to_json(v) for v in value]
    if isinstance(value, dict):
        return [[value_to_json(k), value_to_json(v)] for k, v in value.items()]
    return value


def arguments(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("expected an array of arguments")
    converted = [value_from_json(v) for v in value]
    for item in converted:
        to_wire(item)  # raises BadValue (a DecodeError) for values no contract can take
    return converted


def register_contracts(registry: MethodRegistry, node: Node) -> None:
    chain = node.chain

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
        "stored or charged. Writing storage, emitting or paying fails the call.",
        example={"params": ["0x5fc5…", "balance_of", ["0x9ba4…"]], "result": {"result": 990, "gas_used": 312}},
    )
    def contract_call(
        address: bytes, function: str, args: list[Any], caller: bytes, block: str | int
    ) -> dict[str, Any]:
        head = head_state(block)
        view = StateView(chain.state)
        ctx = CallContext(caller, head.height + 1, head.timestamp_ms, read_only=True, chain_id=node.genesis.chain_id)
        try:
            result, used, _ = run_call(view, ctx, caller, address, function, list(args), 0, READ_GAS)
        except VMError as exc:
            raise ContractCallFailed(str(exc), gas_used=getattr(exc, "gas_used", 0)) from exc
        return {"result": value_to_json(result), "gas_used": used, "height": head.height}

    @registry.method(
        "contract_getStorage",
        Param("address", p.address, doc="the contract"),
        Param("name", _function_name, doc="a storage variable of the contract"),
        Param("key", value_from_json, default=None, doc="for a map: the key (JSON contract value)"),
        Param("block", p.block_ref, default="latest", doc="the block whose state to read: the head"),
        doc="A storage value at the head, with a proof of it (or of its absence) against the head's state root.",
        example={"params": ["0x5fc5…", "balances", "0x9ba4…"],
                 "result": {"value": 990, "present": True, "height": 12, "state_root": "0x…", "proof": "0x…"}},
    )  # fmt: skip
    def contract_get_storage(address: bytes, name: str, key: Any, block: str | int) -> dict[str, Any]:
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
        header, raw, proof = chain.prove_key(state_key)
        value = decl.zero if raw is None else decode_value(raw)
        return {
            "value": value_to_json(value), "present": raw is not None, "height": header.height,
            "state_root": hx(header.state_root), "key": hx(state_key), "proof": hx(proof.encode()),
        }  # fmt: skip

    @registry.method(
        "contract_getEvents",
        Param("address", p.address, doc="the contract that emitted them"),
        Param("from_height", p.quantity, doc="first block"),
        Param("to_height", p.quantity, default=None, doc="last block (default: the head)"),
        Param("name", _function_name, default=None, doc="only events of this name"),
        doc=f"Events a contract emitted in a range of blocks (at most {MAX_EVENT_BLOCKS:,} blocks per call).",
        example={"params": ["0x5fc5…", 1, 20, "Sent"],
                 "result": [{"height": 3, "tx_hash": "0x…", "name": "Sent", "fields": {"amount": 10}}]},
    )  # fmt: skip
    def contract_get_events(address: bytes, first: int, last: int | None, name: str | None) -> list[dict[str, Any]]:
        last = chain.head.height if last is None else min(last, chain.head.height)
        if last - first >= MAX_EVENT_BLOCKS:
            raise InvalidParams(f"ask for at most {MAX_EVENT_BLOCKS:,} blocks at a time")
        found = []
        for height in range(max(first, 1), last + 1):
            block = chain.blocks.block(height)
            if block is None:
                continue
            for index, tx in enumerate(block.transactions):
                receipt = chain.blocks.receipt(height, index)
                for event in () if receipt is None else receipt.events:
                    if event.emitter == address and (name is None or event.name == name):
                        found.append({"height": height, "tx_hash": hx(tx.hash), "name": event.name,
                                      "fields": {k: value_to_json(v) for k, v in event.fields}})  # fmt: skip
        return found


def _function_name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ValueError("expected a name (1 to 64 characters)")
    return value


class ContractCallFailed(AichainError):
    """The read-only call failed: the message is the VM's (a failed require says the contract's words)."""

    rpc_code = -32094


class NotAContract(AichainError):
    rpc_code = -32095
