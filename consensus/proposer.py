"""Who proposes at (height, round): a smooth, power-weighted rotation.

The rotation is the smooth weighted round-robin sequence of the validator set (each
validator appears in proportion to its power, spread as evenly as possible: with equal
powers it is plain round-robin). The proposer of (height, round) is entry
`(height + round) mod len(sequence)`, so consecutive heights change proposer, and each round
moves to the next one: a silent validator delays only its own share of heights, one at a time.
"""

from __future__ import annotations

from functools import reduce
from math import gcd

from core.validators import Validator, ValidatorSet

MAX_SEQUENCE = 10_000
_cache: dict[bytes, tuple[Validator, ...]] = {}


def rotation(validators: ValidatorSet) -> tuple[Validator, ...]:
    key = validators.hash()
    sequence = _cache.get(key)
    if sequence is None:
        sequence = _smooth_round_robin(validators)
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = sequence
    return sequence


def _smooth_round_robin(validators: ValidatorSet) -> tuple[Validator, ...]:
    members = validators.validators  # in address order
    divisor = reduce(gcd, (v.power for v in members))
    weights = [v.power // divisor for v in members]
    total = sum(weights)
    if total > MAX_SEQUENCE:  # keep the cycle short; proportions stay within rounding
        weights = [max(1, w * MAX_SEQUENCE // total) for w in weights]
        total = sum(weights)
    current = [0] * len(members)
    sequence = []
    for _ in range(total):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(members)), key=lambda i: (current[i], -i))
        current[best] -= total
        sequence.append(members[best])
    return tuple(sequence)


def proposer_for(validators: ValidatorSet, height: int, round_: int) -> Validator:
    """The proposer of (height, round)."""
    sequence = rotation(validators)
    return sequence[(height + round_) % len(sequence)]
