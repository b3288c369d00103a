"""The keys system contract enforces what docs/models.md promises: an envelope only for an account that holds a
valid licence to the version at that block, only once per (model, version, licensee) unless the licensee has
published a new key since, and only from an owner or the model's releaser, whose hot key can seal a model's key
to nobody else.

(Through a running node, with its releaser: tests/integration/test_key_release.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.vm.system_chain import Chain
from vm.contracts import CallContext, run_call
from vm.interpreter import Revert
from vm.system import KEYS, MODELS

SEALED = b"\x07" * 80
BUYER_KEY, NEW_KEY = b"\x09" * 32, b"\x0a" * 32


def post(chain: Chain, who: bytes, licensee: bytes, version: int = 1, model: str = "tuned") -> None:
    chain.call(KEYS, who, "post_envelope", model, version, licensee, SEALED)


@pytest.fixture
def released(world: tuple[Chain, list[Any]]) -> tuple[Chain, list[bytes]]:
    """`world` with a releaser `node` named for "tuned", and a buyer and a stranger that published keys."""
    chain, keys = world
    a, b, c, up, buyer, stranger = (k.address for k in keys)
    node = b"\x4e" * 20
    chain.call(KEYS, a, "set_releaser", "tuned", node)
    chain.call(KEYS, buyer, "publish_key", BUYER_KEY)
    chain.call(KEYS, stranger, "publish_key", b"\x0b" * 32)
    return chain, [a, b, c, up, buyer, stranger, node]


def offer(
    chain: Chain, owner: bytes, version: int = 1, *, price: int = 5, duration_s: int = 0, per_use: int = 0
) -> int:
    number: int = chain.license(owner, "make_offer", "tuned", version, price, duration_s, per_use, 0, [], 0)
    return number


def test_the_releaser_cannot_seal_a_models_key_to_an_unlicensed_account(released: tuple[Chain, list[bytes]]) -> None:
    chain, (a, _, _, _, buyer, stranger, node) = released
    for who in (node, a):  # neither the releaser's hot key nor an owner
        with pytest.raises(Revert, match="holds no valid licence to this version"):
            post(chain, who, stranger)
    chain.license(buyer, "buy", "tuned", offer(chain, a), value=5)
    with pytest.raises(Revert, match="holds no valid licence"):
        post(chain, node, stranger)  # someone else's licence is no licence
    with pytest.raises(Revert, match="holds no valid licence"):
        post(chain, node, buyer, version=2)  # a licence to version 1 is none to version 2
    post(chain, node, buyer)
    assert chain.call(KEYS, buyer, "envelope_for", "tuned", 1, buyer) == SEALED
    assert chain.call(KEYS, buyer, "sealed_key_of", "tuned", 1, buyer) == BUYER_KEY
    assert chain.call(KEYS, buyer, "envelope_for", "tuned", 1, stranger) == b""


def test_one_envelope_per_licensee_and_key_and_another_after_the_licensee_publishes_a_new_key(
    released: tuple[Chain, list[bytes]],
) -> None:
    chain, (a, b, _, _, buyer, _, node) = released
    chain.license(buyer, "buy", "tuned", offer(chain, a), value=5)
    post(chain, a, buyer)  # the owner, by hand (the releaser's node was down)
    for who in (node, a, b):  # ...then the releaser's node comes back: refused, as is any second post
        with pytest.raises(Revert, match="already posted"):
            post(chain, who, buyer)
    chain.call(KEYS, buyer, "publish_key", BUYER_KEY)  # the same key again is no new key
    with pytest.raises(Revert, match="already posted"):
        post(chain, node, buyer)
    chain.call(KEYS, buyer, "publish_key", NEW_KEY)  # rotated: the old envelope does not open with it
    post(chain, node, buyer)
    assert chain.call(KEYS, buyer, "sealed_key_of", "tuned", 1, buyer) == NEW_KEY
    with pytest.raises(Revert, match="already posted"):
        post(chain, a, buyer)
    with pytest.raises(Revert, match="holds no valid licence"):
        post(chain, a, buyer, version=2)
    chain.license(buyer, "buy", "tuned", offer(chain, a, version=2), value=5)
    post(chain, node, buyer, version=2)  # one per version


def test_an_expired_ended_or_exhausted_licence_gets_no_envelope(released: tuple[Chain, list[bytes]]) -> None:
    chain, (a, _, _, _, buyer, stranger, node) = released
    chain.license(buyer, "buy", "tuned", offer(chain, a, duration_s=3600), value=5)
    chain.time_ms += 3_600_000  # expired at this block
    with pytest.raises(Revert, match="holds no valid licence"):
        post(chain, node, buyer)
    chain.license(stranger, "buy", "tuned", offer(chain, a, duration_s=0), value=5)
    chain.license(stranger, "end_licence", "tuned", 1)
    with pytest.raises(Revert, match="holds no valid licence"):
        post(chain, a, stranger)
    metered = offer(chain, a, version=2, price=0, per_use=7)
    chain.license(buyer, "buy", "tuned", metered, value=7)  # a deposit for one use
    post(chain, node, buyer, version=2)
    chain.license(buyer, "report_usage", "tuned", 2, 1)  # the deposit is used up: the licence is not valid
    chain.call(KEYS, buyer, "publish_key", NEW_KEY)
    with pytest.raises(Revert, match="holds no valid licence"):
        post(chain, node, buyer, version=2)


def test_owners_may_have_envelopes_and_a_former_owner_loses_that_with_the_model(
    released: tuple[Chain, list[bytes]],
) -> None:
    chain, (a, b, _, up, buyer, stranger, node) = released
    chain.call(KEYS, b, "publish_key", b"\x0c" * 32)
    post(chain, node, b)  # b owns "tuned": it may have the key on another machine
    with pytest.raises(Revert, match="already posted"):
        post(chain, a, b)
    chain.call(MODELS, a, "set_owners", "tuned", [[up, 10_000]])  # "tuned" changes hands
    with pytest.raises(Revert, match="only the model's owners or its releaser"):
        post(chain, a, buyer)  # a no longer owns it
    chain.call(KEYS, b, "publish_key", b"\x0d" * 32)
    with pytest.raises(Revert, match="holds no valid licence"):
        post(chain, node, b)  # nor does b, and it holds no licence
    with pytest.raises(Revert, match="only the model's owners name its releaser"):
        chain.call(KEYS, a, "set_releaser", "tuned", stranger)
    chain.call(KEYS, up, "publish_key", b"\x0e" * 32)
    post(chain, node, up)  # the new owner; the releaser named before stays until the owners change it
    with pytest.raises(Revert, match="no such version"):
        post(chain, node, buyer, version=9)


def test_posting_an_envelope_costs_bounded_gas(released: tuple[Chain, list[bytes]]) -> None:
    """The licence check makes a post dearer; the node's releaser sends it with `POST_GAS`."""
    from node.artifacts.key_release import POST_GAS

    chain, (a, _, _, _, buyer, _, node) = released
    chain.license(buyer, "buy", "tuned", offer(chain, a, price=0, per_use=7), value=70)  # metered: the dearest check
    ctx = CallContext(node, 10, chain.time_ms, chain_id=31)
    _, used, _ = run_call(chain.view, ctx, node, KEYS, "post_envelope", ["tuned", 1, buyer, b"\x07" * 1024], 0, 10**7)
    assert used < POST_GAS // 2, used
