"""JSON views of ledger objects for the node's own RPC namespaces.

Conventions: bytes as 0x-prefixed lowercase hex; heights, counts, gas as JSON numbers;
token amounts as decimal strings of base units (they may exceed 2^53, which JavaScript
numbers cannot hold).
"""

from __future__ import annotations

from typing import Any

from core.block import Block, Commit, Header
from core.keys import address_hex
from core.receipt import Receipt
from core.transaction import Transaction, TxKind


def hx(raw: bytes) -> str:
    return "0x" + raw.hex()


def header_view(header: Header) -> dict[str, Any]:
    return {
        "hash": hx(header.hash),
        "height": header.height,
        "chain_id": header.chain_id,
        "timestamp_ms": header.timestamp_ms,
        "parent_hash": hx(header.parent_hash),
        "proposer": address_hex(header.proposer),
        "tx_root": hx(header.tx_root),
        "state_root": hx(header.state_root),
        "receipts_root": hx(header.receipts_root),
        "validators_hash": hx(header.validators_hash),
        "next_validators_hash": hx(header.next_validators_hash),
        "last_commit_hash": hx(header.last_commit_hash),
        "evidence_hash": hx(header.evidence_hash),
        "gas_used": header.gas_used,
        "tx_count": header.tx_count,
    }


def commit_view(commit: Commit | None) -> dict[str, Any] | None:
    if commit is None:
        return None
    return {
        "height": commit.height,
        "round": commit.round,
        "block_hash": hx(commit.block_hash),
        "signatures": [
            {"validator": address_hex(s.validator), "signature": hx(s.signature)} for s in commit.signatures
        ],
    }


def tx_view(tx: Transaction, location: tuple[int, int, bytes] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "hash": hx(tx.hash),
        "chain_id": tx.chain_id,
        "from": address_hex(tx.sender_address),
        "sender_public_key": hx(tx.sender),
        "nonce": tx.nonce,
        "kind": TxKind(tx.kind).name.lower() if tx.kind in TxKind._value2member_map_ else tx.kind,
        "to": address_hex(tx.to) if tx.to else None,
        "value": str(tx.value),
        "gas_limit": tx.gas_limit,
        "gas_price": str(tx.gas_price),
        "data": hx(tx.data),
        "signature": hx(tx.signature),
        "raw": hx(tx.encoded),
    }
    if location is not None:
        view["block_height"], view["index"], block_hash = location
        view["block_hash"] = hx(block_hash)
    return view


def block_view(block: Block, full_transactions: bool, commit: Commit | None = None) -> dict[str, Any]:
    view = header_view(block.header)
    if full_transactions:
        view["transactions"] = [tx_view(tx, (block.height, i, block.hash)) for i, tx in enumerate(block.transactions)]
    else:
        view["transactions"] = [hx(tx.hash) for tx in block.transactions]
    view["last_commit"] = commit_view(block.last_commit)
    view["evidence"] = [hx(e) for e in block.evidence]
    if commit is not None:
        view["commit"] = commit_view(commit)
    return view


def receipt_view(receipt: Receipt, height: int, index: int, block_hash: bytes) -> dict[str, Any]:
    return {
        "tx_hash": hx(receipt.tx_hash),
        "status": "success" if receipt.succeeded else "failed",
        "gas_used": receipt.gas_used,
        "error": receipt.error or None,
        "block_height": height,
        "block_hash": hx(block_hash),
        "index": index,
        "events": [
            {
                "emitter": address_hex(e.emitter),
                "name": e.name,
                "fields": {k: (hx(v) if isinstance(v, bytes) else v) for k, v in e.fields},
            }
            for e in receipt.events
        ],
    }
