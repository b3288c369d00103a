"""The state at height 0: the genesis allocations, the validator set and the system contracts."""

from __future__ import annotations

from core.genesis import Genesis
from vm.account import Account, account_key
from vm.contracts import CODE_PREFIX
from vm.system import system_contracts
from vm.validators import genesis_entries


def genesis_state(genesis: Genesis) -> dict[bytes, bytes]:
    """State key -> value for every funded genesis account."""
    state = {account_key(address): Account(amount).encode() for address, amount in genesis.allocations if amount}
    state.update(genesis_entries(genesis.validators))
    for address, module in system_contracts().items():  # fixed addresses, code compiled from vm/system
        code = module.encode()
        state[CODE_PREFIX + module.code_hash] = code
        state[account_key(address)] = Account(code_hash=module.code_hash).encode()
    return state
