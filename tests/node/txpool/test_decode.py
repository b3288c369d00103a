"""Decoding transactions in slices (node/txpool/decode.py): the loop gets turns, the order stays."""

from __future__ import annotations

import asyncio
import gc
import time

from core.errors import AichainError, DecodeError
from core.keys import PrivateKey
from core.transaction import Transaction, TxKind
from node.txpool.decode import decode_each, without_tracebacks

KEY = PrivateKey.from_seed(bytes(32))


class Node:
    """What the order is kept for: one per node (any object that can be weakly referred to)."""


def raws(count: int, first_nonce: int = 0) -> list[bytes]:
    return [
        Transaction(7, KEY.public_key, n, 21_000, 1, TxKind.TRANSFER, bytes(20), 1, b"").signed_by(KEY).encoded
        for n in range(first_nonce, first_nonce + count)
    ]


async def test_a_small_batch_behind_a_large_one_is_decoded_after_it() -> None:
    """Admission must meet a sender's nonce n (in the large batch) before n+1 (in the small one)."""
    node = Node()
    finished: list[str] = []

    async def decode(name: str, batch: list[bytes]) -> None:
        await decode_each(batch, Transaction.decode, order=node)  # type: ignore[arg-type]
        finished.append(name)

    await asyncio.gather(decode("large", raws(5000)), decode("small", raws(1, 5000)))
    assert finished == ["large", "small"]


async def test_the_loop_gets_turns_while_ten_thousand_decode() -> None:
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    out = await decode_each([*raws(10_000), b"\x00"], Transaction.decode, order=Node())  # type: ignore[arg-type]
    done = True
    await ticking
    assert all(isinstance(tx, Transaction) for tx in out[:-1]) and isinstance(out[-1], DecodeError)
    assert max(gaps) < 0.03, max(gaps)  # one stretch of 10,000 took 65 ms


def test_errors_kept_in_a_list_leave_no_cycle_for_the_collector() -> None:
    def refuse_all(count: int) -> list[AichainError]:
        out: list[AichainError] = []
        for _ in range(count):
            try:
                raise DecodeError("refused")
            except DecodeError as exc:
                out.append(exc)
        return out

    gc.collect()
    gc.disable()
    try:
        refuse_all(100)
        assert gc.collect() > 0  # the cycles the collector had to free
        without_tracebacks(refuse_all(100))
        assert gc.collect() == 0
    finally:
        gc.enable()
