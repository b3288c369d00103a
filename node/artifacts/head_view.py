"""Read-only calls of the system contracts at the head, for the node's own decisions.

Key release (`node.artifacts.key_release`) and artifact access (`node.artifacts.access`) ask the chain
who owns a model, whether an account is licensed, which artifact a version names. Each call
runs on the committed state, with the head's height and time (or a later time, when asked:
a licence that has expired by this node's clock is not honoured because no block came since).

A view asked at the head's own time is remembered until the head moves (`MEMO_ENTRIES` at
most): key release asks who releases a model's keys for every licence a block records, and a
block of purchases of one model asked it thousands of times over. An answer is kept with the
hash of the head it was computed at and given only at that head; lists come back as copies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vm.contracts import CallContext, run_call
from vm.state import StateView

if TYPE_CHECKING:
    from node.chain import Chain

VIEW_GAS = 10_000_000  # the system views the node asks use well under a tenth of it
MEMO_ENTRIES = 4_096


class HeadView:
    """`view(contract, function, *args, time_ms=None)`: a view's result at the head; VMError if it fails."""

    def __init__(self, chain: Chain, chain_id: int, caller: bytes = bytes(20)) -> None:
        self.chain = chain
        self.chain_id = chain_id
        self.caller = caller
        self._memo: dict[tuple[Any, ...], tuple[bytes, Any]] = {}  # call -> (head hash, answer)

    def __call__(self, contract: bytes, function: str, *args: Any, time_ms: int | None = None) -> Any:
        head = self.chain.head
        memo_key: tuple[Any, ...] | None = None
        if time_ms is None and all(type(a) in (str, int, bytes, bool) for a in args):
            memo_key = (contract, function, *args)
            kept = self._memo.get(memo_key)
            if kept is not None and kept[0] == head.hash:
                return _copy(kept[1])
        at = head.timestamp_ms if time_ms is None else max(head.timestamp_ms, time_ms)
        ctx = CallContext(self.caller, head.height + 1, at, read_only=True, chain_id=self.chain_id)
        answer = run_call(StateView(self.chain.state), ctx, self.caller, contract, function, list(args), 0, VIEW_GAS)[0]
        if memo_key is not None:
            if len(self._memo) >= MEMO_ENTRIES:
                self._memo.clear()
            self._memo[memo_key] = (head.hash, _copy(answer))
        return answer


def _copy(answer: Any) -> Any:
    """A copy of every list in an answer (the other contract values are immutable)."""
    return [_copy(item) for item in answer] if type(answer) is list else answer


__all__ = ["MEMO_ENTRIES", "VIEW_GAS", "HeadView"]
