"""The licensing and payments system contracts on the VM, with the block time under the test's control.

(The same rules through real transactions on a running node: tests/integration/test_system_licensing.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.vm.system_chain import CHAIN, DAY_MS, Chain
from vm.interpreter import Revert
from vm.system import LICENSING, PAYMENTS
from vm.system.receipts import sign_usage_receipt


def test_a_purchase_pays_owners_by_share_and_the_upstream_royalty_exactly(world: tuple[Chain, list[Any]]) -> None:
    chain, keys = world
    a, b, c, up, buyer, _ = (k.address for k in keys)
    offer = chain.license(b, "make_offer", "tuned", 2, 1_000_003, 3600, 0, 0, [], 1_000)
    assert chain.license(a, "offer_info", "tuned", offer)[7] == ["base"]  # "tuned" itself is not upstream
    everyone = [a, b, c, up, buyer, LICENSING, PAYMENTS]
    before = {who: chain.balance(who) for who in everyone}
    expires = chain.license(buyer, "buy", "tuned", offer, value=1_000_003)
    assert expires == chain.time_ms + 3_600_000
    paid = {who: chain.balance(who) - before[who] for who in everyone}
    # 90% to the owners by 50/30/20, 10% upstream; the 2 units rounding leaves go to the first owner
    assert paid == {a: 450_001 + 2, b: 270_000, c: 180_000, up: 100_000, buyer: -1_000_003, LICENSING: 0, PAYMENTS: 0}
    assert sum(paid.values()) == 0
    assert chain.license(a, "is_licensed", buyer, "tuned", 2) is True
    assert chain.license(a, "is_licensed", buyer, "tuned", 1) is False  # a licence is for its version
    assert chain.license(a, "is_licensed", c, "tuned", 2) is True  # owners may use their model


def test_expiry_renewal_limits_and_the_allow_list(world: tuple[Chain, list[Any]]) -> None:
    chain, keys = world
    a, _, _, up, buyer, stranger = (k.address for k in keys)
    offer = chain.license(a, "make_offer", "tuned", 1, 100, 60, 0, 1, [buyer], 0)
    with pytest.raises(Revert, match="allow-list"):
        chain.license(stranger, "buy", "tuned", offer, value=100)
    with pytest.raises(Revert, match="at least the offer's price"):
        chain.license(buyer, "buy", "tuned", offer, value=99)
    with pytest.raises(Revert, match="no per-use price"):
        chain.license(buyer, "buy", "tuned", offer, value=101)
    first = chain.license(buyer, "buy", "tuned", offer, value=100)
    chain.time_ms += 30_000
    assert chain.license(buyer, "buy", "tuned", offer, value=100) == first + 60_000  # renewal extends
    chain.time_ms = first + 60_000 - 1
    assert chain.license(a, "is_licensed", buyer, "tuned", 1) is True
    chain.time_ms = first + 60_000
    assert chain.license(a, "is_licensed", buyer, "tuned", 1) is False  # expired
    open_offer = chain.license(a, "make_offer", "tuned", 1, 5, 0, 0, 1, [], 0)
    chain.license(stranger, "buy", "tuned", open_offer, value=5)
    with pytest.raises(Revert, match="every licence of this offer is taken"):
        chain.license(buyer, "buy", "tuned", open_offer, value=5)
    chain.license(a, "withdraw_offer", "tuned", offer)
    with pytest.raises(Revert, match="withdrawn"):
        chain.license(buyer, "buy", "tuned", offer, value=100)
    with pytest.raises(Revert, match="only the model's owners"):
        chain.license(up, "make_offer", "tuned", 1, 1, 0, 0, 0, [], 0)
    with pytest.raises(Revert, match="no parent models"):
        chain.license(up, "make_offer", "base", 1, 1, 0, 0, 0, [], 500)
    with pytest.raises(Revert, match="no such version"):
        chain.license(a, "make_offer", "tuned", 9, 1, 0, 0, 0, [], 0)


def test_per_use_metering_charges_each_use_once_from_the_deposit(world: tuple[Chain, list[Any]]) -> None:
    chain, keys = world
    a, b, c, up, _, stranger = (k.address for k in keys)
    buyer_key = keys[4]
    buyer = buyer_key.address
    offer = chain.license(a, "make_offer", "tuned", 2, 0, 0, 7, 0, [], 2_000)
    chain.license(buyer, "buy", "tuned", offer, value=100)  # price 0: all 100 units are the deposit
    assert chain.balance(PAYMENTS) == 100
    owners_before = sum(chain.balance(x) for x in (a, b, c, up))
    receipt = sign_usage_receipt(buyer_key, CHAIN, "tuned", 2, 3)
    assert chain.license(stranger, "submit_usage_receipt", *receipt.call_args()) == 21
    assert sum(chain.balance(x) for x in (a, b, c, up)) - owners_before == 21
    with pytest.raises(Revert, match="already charged"):
        chain.license(stranger, "submit_usage_receipt", *receipt.call_args())  # a replay charges nothing
    forged = sign_usage_receipt(keys[5], CHAIN, "tuned", 2, 9)
    with pytest.raises(Revert, match="not signed by the licensee"):
        chain.license(a, "submit_usage_receipt", "tuned", 2, buyer, 9, forged.public_key, forged.signature)
    other_chain = sign_usage_receipt(buyer_key, CHAIN + 1, "tuned", 2, 9)
    with pytest.raises(Revert, match="signature is not valid"):
        chain.license(a, "submit_usage_receipt", *other_chain.call_args())
    assert chain.license(buyer, "report_usage", "tuned", 2, 10) == 49  # 7 more uses
    assert chain.license(a, "licence_of", buyer, "tuned", 2) == [offer, 0, 10, 30, True]
    with pytest.raises(Revert, match="does not cover these uses"):
        chain.license(buyer, "report_usage", "tuned", 2, 15)
    chain.license(buyer, "report_usage", "tuned", 2, 14)  # 28 of the 30 left
    assert chain.license(a, "is_licensed", buyer, "tuned", 2) is False  # 2 units cannot pay a use
    assert chain.license(buyer, "top_up", "tuned", 2, value=5) == 7
    assert chain.license(a, "is_licensed", buyer, "tuned", 2) is True
    with pytest.raises(Revert, match="a day after the licence ends"):
        chain.license(buyer, "withdraw_deposit", "tuned", 2)
    chain.license(buyer, "end_licence", "tuned", 2)
    chain.time_ms += DAY_MS
    before = chain.balance(buyer)
    assert chain.license(buyer, "withdraw_deposit", "tuned", 2) == 7
    assert chain.balance(buyer) - before == 7 and chain.balance(PAYMENTS) == 0


def test_only_the_holder_releases_an_escrow(world: tuple[Chain, list[Any]]) -> None:
    chain, keys = world
    a, b = keys[0].address, keys[1].address
    chain.call(PAYMENTS, a, "deposit", b"mine", value=50)
    with pytest.raises(Revert, match="holds less"):
        chain.call(PAYMENTS, b, "release", b"mine", 10, [[b, 1]])
    assert chain.call(PAYMENTS, b, "refund", b"mine", b) == 0
    assert chain.call(PAYMENTS, a, "release", b"mine", 10, [[b, 1], [a, 0]]) == 40
    assert chain.call(PAYMENTS, a, "held", a, b"mine") == 40
    with pytest.raises(Revert, match="weights of a split"):
        chain.call(PAYMENTS, a, "split", [[b, 0]], value=3)
