"""`Chain.nonce_and_balance`, what admission holds senders to, decodes each stored account value once:
it follows every commit, and whatever it keeps (or drops when full) it answers as the state says."""

from __future__ import annotations

from pathlib import Path

import pytest

import node.chain
from node.chain import Chain
from tests.node.test_chain import USERS, VALIDATOR, open_chain, produce, transfer

STRANGER = b"\x33" * 20


def _expected(chain: Chain, address: bytes) -> tuple[int, int]:
    account = chain.account(address)
    return account.nonce, account.balance


@pytest.mark.parametrize("kept", [1, 100_000])
def test_nonce_and_balance_follow_the_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: int) -> None:
    monkeypatch.setattr(node.chain, "NONCE_BALANCES_KEPT", kept)
    addresses = [*(u.address for u in USERS), VALIDATOR.address, STRANGER]
    with open_chain(tmp_path / "chain") as chain:
        before = {a: chain.nonce_and_balance(a) for a in addresses}
        assert before == {a: _expected(chain, a) for a in addresses}
        assert before[STRANGER] == (0, 0)
        for nonce in range(3):
            produce(chain, [transfer(USERS[0], nonce, USERS[1], 1_000 + nonce), transfer(USERS[1], nonce, USERS[3], 7)])
            for address in addresses:
                assert chain.nonce_and_balance(address) == _expected(chain, address)
        assert chain.nonce_and_balance(USERS[0].address)[0] == 3
        assert chain.nonce_and_balance(USERS[3].address) != before[USERS[3].address]
