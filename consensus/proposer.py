"""Who proposes at (height, round): a deterministic, power-weighted rotation."""

from __future__ import annotations

from core.validators import Validator, ValidatorSet


def proposer_for(validators: ValidatorSet, height: int, round_: int) -> Validator:
    """The proposer of (height, round).

    Validators take turns in address order, each holding the turn for a share of slots
    proportional to its power; every round moves the turn to the next slot, so a silent
    proposer is skipped by the next round.
    """
    slot = (height + round_) % validators.total_power
    for validator in validators.validators:
        if slot < validator.power:
            return validator
        slot -= validator.power
    raise AssertionError("unreachable: slot is below the total power")
