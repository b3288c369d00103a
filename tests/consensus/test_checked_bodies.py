"""`check_body` remembers the block objects that passed it: the same object is not hashed again,
and any other object (a tampered copy, an equal block built anew, one holding a list) is checked."""

from __future__ import annotations

import dataclasses

import pytest

import consensus.validation as validation
from consensus.validation import BODIES_KEPT, check_body
from core.block import Block, Header, transactions_root
from core.errors import InvalidBlock
from core.hashing import EMPTY_MERKLE_ROOT, ZERO_HASH
from core.keys import PrivateKey
from core.transaction import Transaction, TxKind

KEY = PrivateKey.from_seed(b"\x05" * 32)


def _block(salt: int, count: int = 3) -> Block:
    txs = tuple(
        Transaction(7, b"", n, 21_000, 1, TxKind.TRANSFER, bytes([salt]) * 20, n + 1, b"").signed_by(KEY)
        for n in range(count)
    )
    h = bytes([salt]) * 32
    header = Header(
        7, 1, 1_000, h, bytes(20), transactions_root(txs), h, h, h, h, ZERO_HASH, EMPTY_MERKLE_ROOT, 0, count
    )
    return Block(header, txs, None, ())


@pytest.fixture
def roots(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def counting(txs: tuple[Transaction, ...]) -> bytes:
        calls.append(len(txs))
        return transactions_root(txs)

    monkeypatch.setattr(validation, "transactions_root", counting)
    return calls


def test_the_same_block_passes_again_without_hashing_its_transactions(roots: list[int]) -> None:
    block = _block(1)
    check_body(block)
    check_body(block)
    assert roots == [3]


def test_an_equal_block_built_anew_is_checked_anew(roots: list[int]) -> None:
    block = _block(2)
    check_body(block)
    copy = Block(block.header, tuple(block.transactions), block.last_commit, block.evidence)
    check_body(copy)
    assert copy == block and roots == [3, 3]


def test_a_tampered_copy_of_a_checked_block_fails() -> None:
    block = _block(3)
    check_body(block)
    other = _block(4)
    tampered = dataclasses.replace(block, transactions=(*block.transactions[:2], other.transactions[2]))
    with pytest.raises(InvalidBlock, match="tx_root"):
        check_body(tampered)
    with pytest.raises(InvalidBlock, match="says 3 txs but has 2"):
        check_body(dataclasses.replace(block, transactions=block.transactions[:2]))


def test_a_block_holding_a_list_is_never_remembered(roots: list[int]) -> None:
    block = _block(5)
    listed = Block(block.header, list(block.transactions), None, ())  # type: ignore[arg-type]
    check_body(listed)
    listed.transactions[0] = _block(6).transactions[0]  # type: ignore[index]
    with pytest.raises(InvalidBlock, match="tx_root"):
        check_body(listed)


def test_only_the_last_few_are_kept(roots: list[int]) -> None:
    blocks = [_block(10 + i, 1) for i in range(BODIES_KEPT + 1)]
    for block in blocks:
        check_body(block)
    check_body(blocks[-1])
    check_body(blocks[0])  # pushed out by the later ones
    assert len(roots) == BODIES_KEPT + 2
