from __future__ import annotations

import pytest

from core.block import Vote, VoteType
from core.errors import InvalidBlock
from core.evidence import DuplicateVote
from core.keys import PrivateKey
from core.validators import Validator, ValidatorSet
from vm import validators as gov
from vm.state import StateView

CHAIN = 3
KEYS = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(5)]
FOUR = ValidatorSet(tuple(Validator(k.public_key, 1) for k in KEYS[:4]))


class Store:
    def __init__(self, validators: ValidatorSet) -> None:
        self.data: dict[bytes, bytes] = dict(gov.genesis_entries(validators))

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def commit(self, view: StateView) -> None:
        for k, v in view.changes().items():
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v


def run_block(store: Store, height: int, votes: list[tuple[PrivateKey, bytes]] = (), evidence=()) -> list:  # type: ignore[assignment]
    view = StateView(store)
    events = []
    for voter, data in votes:
        events.extend(gov.vote(view, voter.address, data, height))
    for item in evidence:
        gov.punish(view, item, CHAIN, height)
    gov.advance(view, height + 1)
    store.commit(view)
    return events


def members(store: Store) -> set[bytes]:
    return {v.public_key for v in gov.validator_set(store).validators}


def test_a_change_needs_more_than_two_thirds_and_takes_effect_two_heights_later() -> None:
    store = Store(FOUR)
    add = gov.encode_vote(gov.ADD, KEYS[4].public_key, 2)
    events = run_block(store, 10, [(KEYS[0], add), (KEYS[1], add)])
    assert events[-1].name == "ValidatorVote"  # 2 of 4 is not more than 2/3
    events = run_block(store, 11, [(KEYS[1], add), (KEYS[2], add)])  # a repeated vote counts once
    assert events[-1].name == "ValidatorChangeScheduled"
    assert dict(events[-1].fields)["at_height"] == 13
    assert KEYS[4].public_key not in members(store)  # after block 11: the set for block 12 is unchanged
    run_block(store, 12)
    assert KEYS[4].public_key in members(store)  # the set that signs block 13
    assert gov.validator_set(store).by_address[KEYS[4].address].power == 2
    assert {v.public_key for v in gov.validator_set(store, gov.PREVIOUS).validators} == members(store) - {
        KEYS[4].public_key
    }


def test_only_validators_vote_and_the_last_validator_stays() -> None:
    store = Store(ValidatorSet((Validator(KEYS[0].public_key, 1),)))
    with pytest.raises(PermissionError):
        run_block(store, 1, [(KEYS[3], gov.encode_vote(gov.ADD, KEYS[3].public_key, 1))])
    run_block(store, 1, [(KEYS[0], gov.encode_vote(gov.REMOVE, KEYS[0].public_key, 0))])
    run_block(store, 2)
    assert members(store) == {KEYS[0].public_key}  # removing it would leave no one to sign


def conflicting(key: PrivateKey, height: int) -> DuplicateVote:
    a = Vote(VoteType.PREVOTE, height, 0, b"\x01" * 32, key.address).signed_by(key, CHAIN)
    b = Vote(VoteType.PREVOTE, height, 0, b"", key.address).signed_by(key, CHAIN)
    return DuplicateVote.of(a, b)


def test_evidence_removes_the_offender_once() -> None:
    store = Store(FOUR)
    evidence = conflicting(KEYS[3], 20)
    assert DuplicateVote.decode(evidence.encode()) == evidence
    run_block(store, 21, evidence=[evidence])
    with pytest.raises(InvalidBlock, match="already"):
        run_block(store, 22, evidence=[evidence])
    run_block(store, 22)
    assert KEYS[3].public_key not in members(store)
    assert len(members(store)) == 3


def test_false_evidence_is_refused() -> None:
    store = Store(FOUR)
    vote = Vote(VoteType.PREVOTE, 5, 0, b"\x01" * 32, KEYS[0].address).signed_by(KEYS[0], CHAIN)
    forged = Vote(VoteType.PREVOTE, 5, 0, b"", KEYS[0].address, b"\x00" * 64)
    with pytest.raises(InvalidBlock, match="signature"):
        run_block(store, 6, evidence=[DuplicateVote.of(vote, forged)])
    other_round = Vote(VoteType.PREVOTE, 5, 1, b"", KEYS[0].address).signed_by(KEYS[0], CHAIN)
    with pytest.raises(InvalidBlock, match="same validator"):
        run_block(store, 6, evidence=[DuplicateVote.of(vote, other_round)])
    outsider = conflicting(KEYS[4], 5)
    with pytest.raises(InvalidBlock, match="not a validator"):
        run_block(store, 6, evidence=[outsider])
