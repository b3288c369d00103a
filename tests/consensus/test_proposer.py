from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.proposer import proposer_for, rotation
from core.keys import PrivateKey
from core.validators import Validator, ValidatorSet

KEYS = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(8)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=8))
def test_each_validator_proposes_in_proportion_to_its_power(powers: list[int]) -> None:
    validators = ValidatorSet(tuple(Validator(KEYS[i].public_key, p) for i, p in enumerate(powers)))
    sequence = rotation(validators)
    counts = Counter(v.address for v in sequence)
    for v in validators.validators:
        assert counts[v.address] * validators.total_power == v.power * len(sequence)


def test_equal_powers_rotate_every_height_and_every_round() -> None:
    validators = ValidatorSet(tuple(Validator(k.public_key, 10) for k in KEYS[:4]))
    heights = [proposer_for(validators, h, 0).address for h in range(8)]
    assert len(set(heights[:4])) == 4 and heights[:4] == heights[4:]  # nobody proposes twice in a row
    rounds = {proposer_for(validators, 5, r).address for r in range(4)}
    assert len(rounds) == 4  # a silent proposer is replaced in the next round
