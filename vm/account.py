"""Accounts: balance, nonce and (for contracts) the hash of their code.

An account's state key is `b"a" + address`; its value is
`[tag, balance, nonce, code_hash]` in canonical msgpack. An account with zero balance,
zero nonce and no code is empty and is not stored (reading it gives the empty account).
"""

from __future__ import annotations

import msgpack

from core import codec
from core.errors import StorageError

ACCOUNT_TAG = 10
ACCOUNT_PREFIX = b"a"


def account_key(address: bytes) -> bytes:
    return ACCOUNT_PREFIX + address


class Account:
    """A mutable working copy of an account inside a `StateView`."""

    __slots__ = ("balance", "code_hash", "nonce")

    def __init__(self, balance: int = 0, nonce: int = 0, code_hash: bytes = b"") -> None:
        self.balance = balance
        self.nonce = nonce
        self.code_hash = code_hash

    def is_empty(self) -> bool:
        return self.balance == 0 and self.nonce == 0 and not self.code_hash

    def encode(self) -> bytes:
        return codec.encode([ACCOUNT_TAG, self.balance, self.nonce, self.code_hash])

    def copy(self) -> Account:
        return Account(self.balance, self.nonce, self.code_hash)

    def __repr__(self) -> str:
        return f"Account(balance={self.balance}, nonce={self.nonce})"

    @classmethod
    def decode(cls, raw: bytes) -> Account:
        """Decode a stored account (our own trusted bytes; a mismatch means a corrupt store)."""
        try:
            tag, balance, nonce, code_hash = msgpack.unpackb(raw)
        except (ValueError, TypeError) as exc:
            raise StorageError(f"corrupt account record ({exc}); the database needs repair") from exc
        if tag != ACCOUNT_TAG:
            raise StorageError(f"corrupt account record: tag {tag}")
        return cls(balance, nonce, code_hash)
