"""The state at height 0: the genesis allocations and validator set."""

from __future__ import annotations

from core.genesis import Genesis
from vm.account import Account, account_key
from vm.validators import genesis_entries


def genesis_state(genesis: Genesis) -> dict[bytes, bytes]:
    """State key -> value for every funded genesis account."""
    state = {account_key(address): Account(amount).encode() for address, amount in genesis.allocations if amount}
    state.update(genesis_entries(genesis.validators))
    return state
