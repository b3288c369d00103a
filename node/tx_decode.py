"""Decoding many transactions without holding the event loop.

Rule: transactions are decoded in slices of at most `SLICE_TXS` transactions or `SLICE_BYTES`
bytes, and the event loop gets a turn between slices. Decoding costs about 6 µs a transaction
and more for large ones: a `tx_sendBatch` of 10,000 decoded at once held the loop 65 ms (86 ms
with its prechecks), a gossip frame of 127 of the largest transactions about 25 ms; a slice is
about 1.5 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from core.errors import AichainError
from core.transaction import Transaction

SLICE_TXS = 256
SLICE_BYTES = 1024 * 1024


async def decode_each(
    raws: Sequence[object], decode: Callable[[object], Transaction], *, stop_at_error: bool = False
) -> list[Transaction | AichainError]:
    """`decode(raw)` for each of `raws`, in order: the transaction or the error it raised. With
    `stop_at_error`, the list ends at the first error (the caller refuses the whole lot)."""
    out: list[Transaction | AichainError] = []
    count = size = 0
    for raw in raws:
        if count >= SLICE_TXS or size >= SLICE_BYTES:
            await asyncio.sleep(0)
            count = size = 0
        try:
            out.append(decode(raw))
        except AichainError as exc:
            # Without its traceback: it would hold this frame, and so `out`, and so itself, a cycle
            # that only the garbage collector frees (a flood of refusals made it pause the loop 285 ms).
            out.append(exc.with_traceback(None))
            if stop_at_error:
                break
        count += 1
        size += len(raw) if isinstance(raw, bytes) else 1
    return out
