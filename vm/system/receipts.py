"""Usage receipts of per-use licences, as the licensing system contract checks them.

A receipt says "the licensee has used (model, version) `total_uses` times so far on this
chain". It is cumulative, so it charges each use once whoever submits it and however often.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.hashing import sha256
from core.keys import PrivateKey

USAGE_DOMAIN = b"aichain usage receipt v1"


def receipt_payload(model: str, version: int, licensee: bytes, total_uses: int) -> bytes:
    return sha256(model.encode()) + version.to_bytes(8, "big") + licensee + total_uses.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class UsageReceipt:
    model: str
    version: int
    licensee: bytes
    total_uses: int
    public_key: bytes
    signature: bytes

    def call_args(self) -> list[object]:
        """The arguments of the licensing contract's `submit_usage_receipt`."""
        return [self.model, self.version, self.licensee, self.total_uses, self.public_key, self.signature]


def sign_usage_receipt(key: PrivateKey, chain_id: int, model: str, version: int, total_uses: int) -> UsageReceipt:
    signature = key.sign(USAGE_DOMAIN, chain_id, receipt_payload(model, version, key.address, total_uses))
    return UsageReceipt(model, version, key.address, total_uses, key.public_key, signature)
