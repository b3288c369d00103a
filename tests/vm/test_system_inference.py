"""The inference-receipt system contract, its per-use charging through licensing, model releasers (keys), and
models registered with a lineage (models.register_derived)."""

from __future__ import annotations

from typing import Any

import pytest

from core.hashing import sha256
from tests.vm.system_chain import Chain
from vm.interpreter import Revert
from vm.system import INFERENCE, KEYS, MODELS

IN, OUT = b"\x01" * 32, b"\x02" * 32


def receipt_hash(model: str, version: int, number: int, inp: bytes, out: bytes, runner: bytes) -> bytes:
    return sha256(sha256(model.encode()) + version.to_bytes(8, "big") + number.to_bytes(8, "big") + inp + out + runner)


def test_a_recorded_inference_charges_one_metered_use_and_is_listed_by_hash(world: tuple[Chain, list[Any]]) -> None:
    chain, keys = world
    a, b, c, up, buyer, stranger = (k.address for k in keys)
    offer = chain.license(a, "make_offer", "tuned", 2, 0, 0, 7, 0, [], 0)
    chain.license(buyer, "buy", "tuned", offer, value=20)  # deposit for two uses
    owners_before = sum(chain.balance(x) for x in (a, b, c))
    first = chain.call(INFERENCE, buyer, "record", "tuned", 2, IN, OUT)
    assert first == receipt_hash("tuned", 2, 1, IN, OUT, buyer)
    assert sum(chain.balance(x) for x in (a, b, c)) - owners_before == 7
    assert chain.license(a, "licence_of", buyer, "tuned", 2)[2:4] == [1, 13]
    second = chain.call(INFERENCE, buyer, "record", "tuned", 2, IN, OUT)  # same input again: a second use
    assert second != first and chain.license(a, "licence_of", buyer, "tuned", 2)[2:4] == [2, 6]
    with pytest.raises(Revert, match="does not cover these uses"):
        chain.call(INFERENCE, buyer, "record", "tuned", 2, IN, OUT)  # nothing recorded, nothing charged
    assert chain.call(INFERENCE, a, "receipt_count_of", "tuned", 2) == 2
    listed = chain.call(INFERENCE, a, "receipts_of", "tuned", 2, 1, 10)
    assert [r[0] for r in listed] == [1, 2] and [r[1] for r in listed] == [first, second]
    assert listed[0][2:] == [IN, OUT, buyer, 10, 7]
    assert chain.call(INFERENCE, stranger, "receipt", second) == ["tuned", 2, 2, IN, OUT, buyer, 10, 7]
    # the owners and runners without a metered licence record for free; a missing version is refused
    assert chain.call(INFERENCE, up, "record", "base", 1, IN, OUT) == receipt_hash("base", 1, 1, IN, OUT, up)
    assert chain.call(INFERENCE, up, "receipt", receipt_hash("base", 1, 1, IN, OUT, up))[7] == 0
    with pytest.raises(Revert, match="no such version"):
        chain.call(INFERENCE, a, "record", "tuned", 3, IN, OUT)
    with pytest.raises(Revert, match="SHA-256"):
        chain.call(INFERENCE, a, "record", "tuned", 2, b"short", OUT)


def test_only_the_inference_contract_charges_a_recorded_use(world: tuple[Chain, list[Any]]) -> None:
    chain, keys = world
    a, buyer = keys[0].address, keys[4].address
    offer = chain.license(a, "make_offer", "tuned", 2, 0, 0, 7, 0, [], 0)
    chain.license(buyer, "buy", "tuned", offer, value=20)
    for who in (a, buyer):
        with pytest.raises(Revert, match="only the inference contract"):
            chain.license(who, "charge_use", "tuned", 2, buyer)
    assert chain.license(a, "licence_of", buyer, "tuned", 2)[2] == 0


def test_a_models_releaser_posts_its_envelopes_and_only_owners_name_it(world: tuple[Chain, list[Any]]) -> None:
    chain, keys = world
    a, _, _, _, buyer, node = (k.address for k in keys)
    chain.call(KEYS, buyer, "publish_key", b"\x09" * 32)
    chain.license(buyer, "buy", "tuned", chain.license(a, "make_offer", "tuned", 1, 5, 0, 0, 0, [], 0), value=5)
    with pytest.raises(Revert, match="only the model's owners or its releaser"):
        chain.call(KEYS, node, "post_envelope", "tuned", 1, buyer, b"\x07" * 80)
    with pytest.raises(Revert, match="only the model's owners name its releaser"):
        chain.call(KEYS, node, "set_releaser", "tuned", node)
    chain.call(KEYS, a, "set_releaser", "tuned", node)
    assert chain.call(KEYS, buyer, "releaser_of", "tuned") == node
    chain.call(KEYS, node, "post_envelope", "tuned", 1, buyer, b"\x07" * 80)
    assert chain.call(KEYS, buyer, "envelope_for", "tuned", 1, buyer) == b"\x07" * 80
    with pytest.raises(Revert, match="only the model's owners or its releaser"):
        chain.call(KEYS, node, "post_envelope", "base", 1, buyer, b"\x07" * 80)  # another model's
    chain.call(KEYS, buyer, "publish_key", b"\x0a" * 32)  # a new key: a new envelope may be sealed to it
    chain.call(KEYS, a, "set_releaser", "tuned", bytes(20))
    with pytest.raises(Revert, match="only the model's owners or its releaser"):
        chain.call(KEYS, node, "post_envelope", "tuned", 1, buyer, b"\x07" * 80)


def test_a_model_registered_with_parents_starts_its_lineage_and_a_missing_parent_is_refused(
    world: tuple[Chain, list[Any]],
) -> None:
    chain, keys = world
    owner = keys[4].address
    with pytest.raises(Revert, match="parent version does not exist"):
        chain.call(
            MODELS, owner, "register_derived", "child", b"\x13" * 32, "onnx", b"", [[owner, 10_000]], [["base", 2]], []
        )
    with pytest.raises(Revert, match="parent model does not exist"):
        chain.call(
            MODELS,
            owner,
            "register_derived",
            "child",
            b"\x13" * 32,
            "onnx",
            b"",
            [[owner, 10_000]],
            [["nowhere", 1]],
            [],
        )
    assert (
        chain.call(
            MODELS, owner, "register_derived", "child", b"\x13" * 32, "onnx", b"", [[owner, 10_000]], [["tuned", 2]], []
        )
        == 1
    )
    assert chain.call(MODELS, owner, "lineage", "child", 1) == [["tuned", 2], ["base", 1], ["tuned", 1]]
