"""The node's own JSON-RPC namespaces: chain, tx, state, node (and rpc_methods).

Every method is listed, with its parameters and an example, by `rpc_methods` and in
docs/rpc.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core import codec
from core.errors import AichainError, DecodeError, TransactionEvicted
from core.keys import address_hex
from core.transaction import Transaction
from node.rpc import params as p
from node.rpc.artifacts import register_artifacts
from node.rpc.contracts import register_contracts
from node.rpc.eth import register_eth
from node.rpc.head_feed import HeadFeed
from node.rpc.registry import MethodRegistry, Param
from node.rpc.views import block_view, commit_view, header_view, hx, receipt_view, tx_view
from node.txpool.decode import decode_each, without_tracebacks
from node.txpool.evictions import Eviction, EvictionReason
from vm.account import Account

if TYPE_CHECKING:
    from core.genesis import Genesis
    from node.artifacts.exchange import ArtifactExchange
    from node.chain import Chain
    from node.config import RpcConfig
    from node.rpc.read_calls import ReadOnlyCalls
    from node.txpool.admission import TxAdmission
    from node.txpool.mempool import Mempool
    from storage.artifact_store import ArtifactStore

HEIGHT = Param("height", p.quantity, doc="block height (integer or 0x-hex)")
FULL = Param("full", p.boolean, default=False, doc="true: full transactions; false: hashes")
TX_HASH = Param("hash", p.hash32, doc="transaction hash, 0x + 64 hex")
ADDRESS = Param("address", p.address, doc="account address, 0x + 40 hex")


def decode_tx(raw: bytes) -> Transaction:
    try:
        return Transaction.decode(raw)
    except DecodeError as exc:
        # keep the subtype: its code tells malformed (-32010), non-canonical (-32011), too large (-32012)
        raise type(exc)(f"not a signed transaction: {exc}", **exc.data) from exc


def eviction_view(eviction: Eviction) -> dict[str, Any]:
    """What `tx_get` answers for a transaction this node evicted from its mempool uncommitted."""
    return {
        "hash": hx(eviction.tx_hash),
        "from": address_hex(eviction.sender),
        "nonce": eviction.nonce,
        "status": "evicted",
        "pending": False,
        "reason": eviction.reason.value,
        "message": eviction.message,
        "evicted_at_ms": eviction.at_ms,
        "by": None if eviction.by is None else hx(eviction.by),
    }


@dataclass(frozen=True)
class Served:
    """What the JSON-RPC namespaces read and call, given by the node at start."""

    chain: Chain
    genesis: Genesis
    mempool: Mempool
    admission: TxAdmission
    status: Callable[[], dict[str, Any]]  # node_status
    consensus_status: Callable[[], dict[str, Any]]
    peer_count: Callable[[], int]
    wait_for_height: Callable[[int, float], Awaitable[bool]]  # True once the head reaches it; False on timeout
    artifacts: ArtifactStore
    exchange: ArtifactExchange | None  # None: P2P is off
    calls: ReadOnlyCalls
    rpc: RpcConfig
    heads: HeadFeed  # new heads, for WebSocket subscribers


def build_registry(node: Served) -> MethodRegistry:
    registry = MethodRegistry()
    chain = node.chain

    def locate(tx_hash: bytes) -> tuple[int, int, bytes] | None:
        """(height, index, block hash) of a committed transaction; the hash comes from the block's
        commit, so a receipt or a wait does not decode a block of up to 8 MiB on the event loop."""
        where = chain.blocks.tx_location(tx_hash)
        if where is None:
            return None
        commit = chain.blocks.commit(where[0])
        return (where[0], where[1], commit.block_hash) if commit is not None else None

    def committed_tx(height: int, index: int) -> Transaction:
        """A committed transaction, decoded alone from its block's stored bytes (this node wrote them): decoding
        the whole block, 8,000 transactions, held the event loop 150 ms for each `tx_get`."""
        raw = chain.blocks.block_bytes(height)
        assert raw is not None
        return Transaction.decode(codec.decode_trusted(raw)[2][index])

    @registry.method("chain_head", doc="The header of the head (latest finalized) block.")
    def chain_head() -> dict[str, Any]:
        return header_view(chain.head)

    @registry.method(
        "chain_waitForHeight",
        HEIGHT,
        Param("timeout_s", p.quantity, default=30, doc="seconds to wait, at most 120"),
        doc="Wait until a height is finalized and return the head header then (null on timeout): a long poll "
        "that answers the moment the block is committed, instead of polling chain_head.",
        example={"params": [13, 10], "result": {"height": 13, "hash": "0x…", "timestamp_ms": 1767225613000}},
    )
    async def chain_wait_for_height(height: int, timeout_s: int) -> dict[str, Any] | None:
        if not await node.wait_for_height(height, min(timeout_s, 120)):
            return None
        return header_view(chain.head)

    @registry.method(
        "chain_getBlockByHeight",
        HEIGHT,
        FULL,
        doc="The block at a height with its commit, or null if there is none yet.",
        example={"params": [1, False], "result": {"height": 1, "hash": "0x…", "transactions": []}},
    )
    def chain_get_block_by_height(height: int, full: bool) -> dict[str, Any] | None:
        if height > chain.head.height:  # also keeps heights beyond 64 bits away from the storage keys
            return None
        block = chain.blocks.block(height)
        return None if block is None else block_view(block, full, chain.blocks.commit(height))

    @registry.method("chain_getBlockByHash", Param("hash", p.hash32), FULL, doc="The block with a hash, or null.")
    def chain_get_block_by_hash(block_hash: bytes, full: bool) -> dict[str, Any] | None:
        height = chain.blocks.height_of(block_hash)
        return None if height is None else chain_get_block_by_height(height, full)

    @registry.method("chain_getCommit", HEIGHT, doc="The commit (precommit signatures) that finalized a block.")
    def chain_get_commit(height: int) -> dict[str, Any] | None:
        return None if height > chain.head.height else commit_view(chain.blocks.commit(height))

    @registry.method(
        "tx_send",
        Param("raw", p.data, doc="the signed transaction's canonical encoding, 0x-hex"),
        doc="Submit a signed transaction; returns its hash once admitted to the mempool.",
        example={"params": ["0x9b01cd1e61…"], "result": {"hash": "0x5c1f…"}},
    )
    async def tx_send(raw: bytes) -> dict[str, str]:
        (tx,) = await decode_each([raw], decode_tx, order=node.admission)  # after earlier batches
        if isinstance(tx, AichainError):
            raise tx
        tx_hash = await node.admission.submit(tx)
        return {"hash": hx(tx_hash)}

    @registry.method(
        "tx_sendBatch",
        Param("raws", p.raw_txs, doc="array of signed transactions, 0x-hex each (at most 10000)"),
        doc="Submit many signed transactions; one result per transaction, a hash or an error.",
    )
    async def tx_send_batch(raws: list[bytes]) -> list[dict[str, Any]]:
        decoded = await decode_each(raws, decode_tx, order=node.admission)  # in slices, in order
        valid = [t for t in decoded if isinstance(t, Transaction)]
        outcomes = iter(without_tracebacks(await node.admission.submit_many(valid)))
        await asyncio.sleep(0)  # the answers (10,000 of them) in another turn of the loop than the admissions
        out: list[dict[str, Any]] = []
        for item in decoded:
            result = item if isinstance(item, AichainError) else next(outcomes)
            if isinstance(result, AichainError):
                out.append({"error": {"code": result.rpc_code, "message": str(result)}})
            else:
                out.append({"hash": hx(result)})
        return out

    def finally_evicted(tx_hash: bytes) -> Eviction | None:
        """Why this node evicted the transaction, once that is final here. A replaced transaction
        may still be committed while its nonce is unused (a block being built held it already)."""
        eviction = None if tx_hash in node.mempool else node.mempool.eviction(tx_hash)
        if eviction is None:
            return None
        if eviction.reason == EvictionReason.REPLACED and chain.account(eviction.sender).nonce <= eviction.nonce:
            return None
        return eviction

    @registry.method(
        "tx_get",
        TX_HASH,
        doc="A transaction by hash, with its `status`: `committed` (with its block), `pending` (in this node's "
        "mempool), or `evicted` (this node admitted it but dropped it uncommitted: `reason`, `message`, "
        "`evicted_at_ms`, and `by`, the transaction that caused it, if one did); or null if this node does not "
        "know it (never sent here, or evicted longer ago than it remembers, or before a restart).",
        example={
            "params": ["0x5c1f…"],
            "result": {
                "hash": "0x5c1f…",
                "from": "0x8d9a…",
                "nonce": 1,
                "status": "evicted",
                "pending": False,
                "reason": "replaced",
                "message": "replaced by 0x77e0… (the same nonce 1 at gas price 2, up from 1)",
                "evicted_at_ms": 1767225613042,
                "by": "0x77e0…",
            },
        },
    )
    def tx_get(tx_hash: bytes) -> dict[str, Any] | None:
        where = locate(tx_hash)
        if where is not None:
            return {**tx_view(committed_tx(where[0], where[1]), where), "status": "committed", "pending": False}
        pending = node.mempool.get(tx_hash)
        if pending is not None:
            return {**tx_view(pending), "status": "pending", "pending": True}
        eviction = node.mempool.eviction(tx_hash)
        return None if eviction is None else eviction_view(eviction)

    @registry.method("tx_getReceipt", TX_HASH, doc="The receipt of a committed transaction, or null.")
    def tx_get_receipt(tx_hash: bytes) -> dict[str, Any] | None:
        where = locate(tx_hash)
        if where is None:
            return None
        receipt = chain.blocks.receipt(where[0], where[1])
        return None if receipt is None else receipt_view(receipt, *where)

    @registry.method(
        "tx_wait",
        TX_HASH,
        Param("timeout_s", p.quantity, default=30, doc="seconds to wait, at most 120"),
        doc="Wait until a transaction is committed and return its receipt (null on timeout). If this node "
        "evicts it uncommitted (see `tx_get`), the answer is error -32017, its `data` saying why: at once, or "
        "for a replaced transaction once its nonce is used (a block may have held it before its replacement).",
    )
    async def tx_wait(tx_hash: bytes, timeout_s: int) -> dict[str, Any] | None:
        deadline = asyncio.get_running_loop().time() + min(timeout_s, 120)
        while True:
            eviction = finally_evicted(tx_hash)  # first: a nonce seen used implies its block is readable
            receipt = tx_get_receipt(tx_hash)
            if receipt is not None:
                return receipt
            if eviction is not None:
                view = eviction_view(eviction)
                raise TransactionEvicted(
                    f"transaction {view['hash']} was evicted from this node's mempool uncommitted "
                    f"({eviction.reason.value}): {eviction.message}",
                    reason=view["reason"],
                    evicted_at_ms=view["evicted_at_ms"],
                    by=view["by"],
                )
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            if not await node.wait_for_height(chain.head.height + 1, remaining):
                return tx_get_receipt(tx_hash)  # timed out, or the node is stopping

    @registry.method(
        "state_getAccount",
        ADDRESS,
        doc="Balance and nonce at the head, with a proof against the head's state root.",
        example={
            "params": ["0x8d9a…"],
            "result": {"balance": "1000000000", "nonce": 0, "height": 12, "state_root": "0x…", "proof": "0x…"},
        },
    )
    async def state_get_account(address: bytes) -> dict[str, Any]:
        # On a thread: the proof waits for a commit in progress (its lock), never on the event loop.
        header, value, proof = await asyncio.to_thread(chain.prove_account, address)
        account = Account() if value is None else Account.decode(value)
        pending = node.mempool.pending_nonce(address)
        return {
            "address": address_hex(address),
            "balance": str(account.balance),
            "nonce": account.nonce,
            "pending_nonce": account.nonce if pending is None else max(pending, account.nonce),
            "exists": value is not None,
            "height": header.height,
            "state_root": hx(header.state_root),
            "key": hx(b"a" + address),
            "value": None if value is None else hx(value),
            "proof": hx(proof.encode()),
        }

    @registry.method("node_status", doc="Chain, head, validator, mempool and peers of this node.")
    def node_status() -> dict[str, Any]:
        return node.status()

    @registry.method(
        "consensus_status",
        doc="Height, round, step, lock, proposer, and which validators' prevotes and precommits are missing.",
    )
    def consensus_status() -> dict[str, Any]:
        return node.consensus_status()

    @registry.method("validator_list", doc="The validators that sign the next block, with their voting power.")
    def validator_list() -> list[dict[str, Any]]:
        return [
            {"address": address_hex(v.address), "public_key": hx(v.public_key), "power": v.power}
            for v in chain.validators.validators
        ]

    @registry.method("node_genesis", doc="The genesis this node runs, as JSON.")
    def node_genesis() -> dict[str, Any]:
        return node.genesis.to_dict()

    @registry.method(
        "rpc_methods",
        doc="Every method this node serves, with parameters and examples; admin methods are marked admin: true.",
    )
    def rpc_methods() -> list[dict[str, Any]]:
        return registry.describe()

    register_eth(registry, chain, node.mempool, node.peer_count)
    register_contracts(registry, chain, node.rpc, node.calls)
    register_artifacts(registry, node.artifacts, node.exchange)
    return registry


__all__ = ["Served", "build_registry"]
