"""StateView branches: a nested branch copies an account once, and merges and drops as before."""

from __future__ import annotations

import pytest

from vm.account import Account, account_key
from vm.state import StateView

A, B = b"\x0a" * 20, b"\x0b" * 20


def fields(account: Account) -> tuple[int, int, bytes]:
    return account.balance, account.nonce, account.code_hash


class Committed:
    def __init__(self, accounts: dict[bytes, Account]) -> None:
        self.values = {account_key(a): acc.encode() for a, acc in accounts.items()}

    def get(self, key: bytes) -> bytes | None:
        return self.values.get(key)


def test_a_nested_branch_copies_an_account_once_from_the_nearest_view_that_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = StateView(Committed({A: Account(100, 1)}))
    root.account(A)
    b1 = root.branch()
    b2 = b1.branch()
    b3 = b2.branch()
    copies: list[Account] = []
    real = Account.copy
    monkeypatch.setattr(Account, "copy", lambda self: copies.append(self) or real(self))
    assert fields(b3.account(A)) == (100, 1, b"")
    assert len(copies) == 1 and copies[0] is root.account(A)  # straight from the root's
    assert A not in b1._accounts and A not in b2._accounts


def test_changes_in_nested_branches_merge_up_and_a_dropped_branch_leaves_nothing() -> None:
    root = StateView(Committed({A: Account(100, 1), B: Account(5)}))
    b1 = root.branch()
    b1.account(A).balance -= 10
    b1.touch(A)
    b2 = b1.branch()
    b3 = b2.branch()
    assert b3.account(A).balance == 90  # sees b1's change through b2, which never read A
    b3.account(A).balance -= 20
    b3.account(B).balance += 20
    b3.touch(A)
    b3.touch(B)
    b3.merge()
    assert b2.account(A).balance == 70 and b2.account(B).balance == 25
    dropped = b2.branch()
    dropped.account(A).balance = 0
    dropped.touch(A)  # never merged: reverted
    b2.merge()
    b1.merge()
    assert fields(root.account(A)) == (70, 1, b"") and fields(root.account(B)) == (25, 0, b"")
    assert root.changes() == {account_key(A): Account(70, 1).encode(), account_key(B): Account(25).encode()}
