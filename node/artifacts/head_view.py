"""Read-only calls of the system contracts at the head, for the node's own decisions.

Key release (`node.artifacts.key_release`) and artifact access (`node.artifacts.access`) ask the chain
who owns a model, whether an account is licensed, which artifact a version names. Each call
runs on the committed state, with the head's height and time (or a later time, when asked:
a licence that has expired by this node's clock is not honoured because no block came since).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vm.contracts import CallContext, run_call
from vm.state import StateView

if TYPE_CHECKING:
    from node.chain import Chain

VIEW_GAS = 10_000_000  # the system views the node asks use well under a tenth of it


class HeadView:
    """`view(contract, function, *args, time_ms=None)`: a view's result at the head; VMError if it fails."""

    def __init__(self, chain: Chain, chain_id: int, caller: bytes = bytes(20)) -> None:
        self.chain = chain
        self.chain_id = chain_id
        self.caller = caller

    def __call__(self, contract: bytes, function: str, *args: Any, time_ms: int | None = None) -> Any:
        head = self.chain.head
        at = head.timestamp_ms if time_ms is None else max(head.timestamp_ms, time_ms)
        ctx = CallContext(self.caller, head.height + 1, at, read_only=True, chain_id=self.chain_id)
        return run_call(StateView(self.chain.state), ctx, self.caller, contract, function, list(args), 0, VIEW_GAS)[0]


__all__ = ["VIEW_GAS", "HeadView"]
