"""A read-only subset of the Ethereum JSON-RPC API, so that unmodified Ethereum tools
(web3.py, ethers, curl scripts) can read blocks and balances.

Encoding follows the Ethereum JSON-RPC spec: QUANTITY as 0x-hex without leading zeros,
DATA as 0x-hex; unknown objects are `null`. Amounts are scaled so that 1 AIC shows as
1 ether: 1 base unit = 10^9 wei. The node keeps the latest state only, so balance and nonce
queries answer for the head block (and for tags meaning it); other heights give error -32000.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.block import Block
from core.errors import AichainError
from core.keys import address_hex
from node.rpc import params as p
from node.rpc.registry import MethodRegistry, Param
from node.version import CLIENT_VERSION

if TYPE_CHECKING:
    from node.chain import Chain
    from node.txpool.mempool import Mempool

WEI_PER_UNIT = 10**9
EMPTY_UNCLES = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
ZERO_BLOOM = "0x" + "00" * 256
ZERO_NONCE = "0x0000000000000000"
ZERO_HASH = "0x" + "00" * 32


class HistoricalStateUnavailable(AichainError):
    rpc_code = -32000


def q(n: int) -> str:
    return hex(n)


def d(raw: bytes) -> str:
    return "0x" + raw.hex()


def eth_header(block: Block, gas_limit: int) -> dict[str, Any]:
    """A block's header in Ethereum's shape (what `eth_subscribe("newHeads")` pushes, and the header
    fields of `eth_getBlockByNumber`)."""
    header = block.header
    return {
        "number": q(header.height),
        "hash": d(header.hash),
        "parentHash": d(header.parent_hash),
        "nonce": ZERO_NONCE,
        "sha3Uncles": EMPTY_UNCLES,
        "logsBloom": ZERO_BLOOM,
        "transactionsRoot": d(header.tx_root),
        "stateRoot": d(header.state_root),
        "receiptsRoot": d(header.receipts_root),
        "miner": address_hex(header.proposer),
        "difficulty": "0x0",
        "extraData": "0x",
        "gasLimit": q(gas_limit),
        "gasUsed": q(header.gas_used),
        "timestamp": q(header.timestamp_ms // 1000),
        "mixHash": ZERO_HASH,
    }


def register_eth(registry: MethodRegistry, chain: Chain, mempool: Mempool, peer_count: Callable[[], int]) -> None:
    block_param = Param("block", p.block_ref, default="latest", doc="block number or tag")

    def resolve(ref: str | int) -> int | None:
        head = chain.head.height
        if ref == "earliest":
            return 0
        if isinstance(ref, str):
            return head  # latest, pending, safe and finalized are all the head: finality is instant
        return ref if ref <= head else None

    def state_at(ref: str | int) -> None:
        height = resolve(ref)
        if height != chain.head.height:
            raise HistoricalStateUnavailable(
                f"state at block {ref} is not available: this node keeps the latest state only (use 'latest')"
            )

    def eth_tx(block: Block, index: int) -> dict[str, Any]:
        tx = block.transactions[index]
        return {
            "blockHash": d(block.hash),
            "blockNumber": q(block.height),
            "from": address_hex(tx.sender_address),
            "gas": q(tx.gas_limit),
            "gasPrice": q(tx.gas_price * WEI_PER_UNIT),
            "hash": d(tx.hash),
            "input": d(tx.data),
            "nonce": q(tx.nonce),
            "to": address_hex(tx.to) if tx.to else None,
            "transactionIndex": q(index),
            "value": q(tx.value * WEI_PER_UNIT),
            "type": "0x0",
            "chainId": q(tx.chain_id),
            "v": "0x0",
            "r": q(int.from_bytes(tx.signature[:32], "big")),
            "s": q(int.from_bytes(tx.signature[32:], "big")),
        }

    def eth_block(block: Block, full: bool) -> dict[str, Any]:
        return {
            **eth_header(block, chain.params.block_gas_limit),
            "size": q(len(block.encode())),
            "totalDifficulty": "0x0",
            "transactions": [eth_tx(block, i) for i in range(len(block.transactions))]
            if full
            else [d(tx.hash) for tx in block.transactions],
            "uncles": [],
        }

    @registry.method("web3_clientVersion", doc="The node software's name and version.")
    def web3_client_version() -> str:
        return CLIENT_VERSION

    @registry.method("net_version", doc="The chain id as a decimal string.")
    def net_version() -> str:
        return str(chain.chain_id)

    @registry.method("net_listening", doc="Whether the node accepts peers.")
    def net_listening() -> bool:
        return True

    @registry.method("net_peerCount", doc="Number of connected peers (QUANTITY).")
    def net_peer_count() -> str:
        return q(peer_count())

    @registry.method("eth_chainId", doc="The chain id (QUANTITY).")
    def eth_chain_id() -> str:
        return q(chain.chain_id)

    @registry.method("eth_syncing", doc="false when the node is at the head.")
    def eth_syncing() -> bool:
        return False

    @registry.method("eth_blockNumber", doc="The head height (QUANTITY).")
    def eth_block_number() -> str:
        return q(chain.head.height)

    @registry.method("eth_gasPrice", doc="The minimum gas price, in wei (1 unit = 10^9 wei).")
    def eth_gas_price() -> str:
        return q(chain.params.min_gas_price * WEI_PER_UNIT)

    @registry.method(
        "eth_getBalance",
        Param("address", p.address),
        block_param,
        doc="Balance in wei (1 AIC = 10^18 wei) at the head.",
    )
    def eth_get_balance(address: bytes, ref: str | int) -> str:
        state_at(ref)
        return q(chain.account(address).balance * WEI_PER_UNIT)

    @registry.method("eth_getTransactionCount", Param("address", p.address), block_param, doc="Nonce at the head.")
    def eth_get_transaction_count(address: bytes, ref: str | int) -> str:
        if ref == "pending":
            pending = mempool.pending_nonce(address)
            if pending is not None:
                return q(max(pending, chain.account(address).nonce))
        state_at(ref)
        return q(chain.account(address).nonce)

    @registry.method(
        "eth_getBlockByNumber",
        Param("block", p.block_ref),
        Param("full", p.boolean, default=False),
        doc="A block by number or tag, or null.",
    )
    def eth_get_block_by_number(ref: str | int, full: bool) -> dict[str, Any] | None:
        height = resolve(ref)
        block = None if height is None else chain.blocks.block(height)
        return None if block is None else eth_block(block, full)

    @registry.method(
        "eth_getBlockByHash", Param("hash", p.hash32), Param("full", p.boolean, default=False), doc="A block, or null."
    )
    def eth_get_block_by_hash(block_hash: bytes, full: bool) -> dict[str, Any] | None:
        height = chain.blocks.height_of(block_hash)
        block = None if height is None else chain.blocks.block(height)
        return None if block is None else eth_block(block, full)

    @registry.method("eth_getTransactionByHash", Param("hash", p.hash32), doc="A committed transaction, or null.")
    def eth_get_transaction_by_hash(tx_hash: bytes) -> dict[str, Any] | None:
        where = chain.blocks.tx_location(tx_hash)
        block = None if where is None else chain.blocks.block(where[0])
        return None if block is None or where is None else eth_tx(block, where[1])
