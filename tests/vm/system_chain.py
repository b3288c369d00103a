"""System contracts on a bare state view, with the block time under the test's control."""

from __future__ import annotations

from typing import Any

from tests.vm.test_contract_vm import Empty
from vm.contracts import CallContext, install, run_call
from vm.state import StateView
from vm.system import LICENSING, system_contracts

CHAIN = 31
DAY_MS = 86_400_000
ART = b"\x11" * 32


class Chain:
    """System contracts on a state view; calls run at a block time the test sets."""

    def __init__(self, *accounts: bytes) -> None:
        self.view = StateView(Empty())
        for address, module in system_contracts().items():
            install(self.view, address, module)
        for who in accounts:
            self.view.account(who).balance = 10**15
            self.view.touch(who)
        self.time_ms = 1_000_000

    def call(self, contract: bytes, who: bytes, function: str, *args: Any, value: int = 0) -> Any:
        ctx = CallContext(who, 10, self.time_ms, chain_id=CHAIN)
        return run_call(self.view, ctx, who, contract, function, list(args), value, 10**7)[0]

    def license(self, who: bytes, function: str, *args: Any, value: int = 0) -> Any:
        return self.call(LICENSING, who, function, *args, value=value)

    def balance(self, who: bytes) -> int:
        return self.view.account(who).balance
