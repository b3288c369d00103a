"""The state at height 0: the genesis allocations."""

from __future__ import annotations

from core.genesis import Genesis
from vm.account import Account, account_key


def genesis_state(genesis: Genesis) -> dict[bytes, bytes]:
    """State key -> value for every funded genesis account."""
    return {account_key(address): Account(amount).encode() for address, amount in genesis.allocations if amount}
