"""System contracts: written in the contract language, installed at genesis at fixed addresses.

| contract | address | source |
|---|---|---|
| models (models, datasets, lineage) | `0x00000000000000000000000000000000000000a1` | `models.contract` |
| licensing (offers, licences, royalties) | `0x00000000000000000000000000000000000000a2` | `licensing.contract` |
| payments (exact splits, escrows) | `0x00000000000000000000000000000000000000a3` | `payments.contract` |
| keys (X25519 keys, content-key envelopes) | `0x00000000000000000000000000000000000000a4` | `keys.contract` |
| inference (inference receipts) | `0x00000000000000000000000000000000000000a5` | `inference.contract` |
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from core.system_addresses import INFERENCE, KEYS, LICENSING, MODELS, PAYMENTS
from vm.bytecode import Module
from vm.compiler import compile_contract

SOURCES = {
    MODELS: "models.contract",
    LICENSING: "licensing.contract",
    PAYMENTS: "payments.contract",
    KEYS: "keys.contract",
    INFERENCE: "inference.contract",
}


@cache
def system_module(address: bytes) -> Module:
    """The compiled system contract at `address` (compiled from the source shipped with the node)."""
    return compile_contract((Path(__file__).parent / SOURCES[address]).read_text())


def system_contracts() -> dict[bytes, Module]:
    return {address: system_module(address) for address in SOURCES}
