"""The validator set as state, changed by governance votes and by evidence.

State keys:
- `V`: the validator set that signs the next block; `W`: the set that signed the last one.
- `P` + proposal hash: an open proposal and the validators who voted for it.
- `Q` + height (8 bytes): changes that take effect at that height.
- `E` + evidence hash: evidence already acted on.

Rules:
- a `VALIDATOR_VOTE` transaction carries `[tag, action, public_key, power]` (action 0 adds
  the key with that power or sets its power, 1 removes it); only a current validator's vote
  counts; when the voters hold more than 2/3 of the current power, the change is scheduled
  two heights later (a vote passing in block h changes the set that signs block h+2);
- valid evidence in block h schedules the offender's removal at h+2, once per offence;
- after each block, the changes due for the next height are applied; a change that would
  leave the set empty is skipped.
"""

from __future__ import annotations

from typing import Protocol

from core import codec
from core.errors import DecodeError, InvalidBlock
from core.evidence import DuplicateVote
from core.hashing import sha256
from core.keys import PUBLIC_KEY_SIZE, address_of
from core.receipt import Event
from core.validators import Validator, ValidatorSet
from vm.state import StateView

CURRENT = b"V"
PREVIOUS = b"W"
PROPOSALS = b"P"
SCHEDULE = b"Q"
USED_EVIDENCE = b"E"
GOV_TAG = 13
ADD, REMOVE = 0, 1
GOVERNANCE_ADDRESS = bytes(19) + b"\x01"  # emitter of validator events
EFFECT_DELAY = 2


def encode_vote(action: int, public_key: bytes, power: int) -> bytes:
    return codec.encode([GOV_TAG, action, public_key, power])


def decode_vote(data: bytes) -> tuple[int, bytes, int]:
    items = codec.expect_list(codec.decode(data), GOV_TAG, 4, "validator vote")
    action = codec.expect_uint(items[1], "validator vote action", bits=8)
    if action not in (ADD, REMOVE):
        raise DecodeError("validator vote action: 0 (add) or 1 (remove)")
    public_key = codec.expect_bytes(items[2], "validator public key", PUBLIC_KEY_SIZE)
    power = codec.expect_uint(items[3], "validator power", bits=32)
    if action == ADD and power == 0:
        raise DecodeError("validator vote: an added validator needs a positive power")
    return action, public_key, power


class Readable(Protocol):
    """Whatever holds the state's entries: a `StateView`, or a node's committed state."""

    def get(self, key: bytes) -> bytes | None: ...


def validator_set(view: Readable, key: bytes = CURRENT) -> ValidatorSet:
    raw = view.get(key)
    if raw is None:
        raise DecodeError(f"state has no validator set under {key!r}")
    return ValidatorSet.from_wire(codec.decode(raw))


def genesis_entries(validators: ValidatorSet) -> dict[bytes, bytes]:
    encoded = codec.encode(validators.to_wire())
    return {CURRENT: encoded, PREVIOUS: encoded}


def vote(view: StateView, voter: bytes, data: bytes, height: int) -> tuple[Event, ...]:
    """Record `voter`'s vote; schedule the change once more than 2/3 of the power voted for it."""
    action, public_key, power = decode_vote(data)
    current = validator_set(view)
    if voter not in current.by_address:
        raise PermissionError("only a current validator may vote on the validator set")
    key = PROPOSALS + sha256(encode_vote(action, public_key, power))
    raw = view.get(key)
    voters: list[bytes] = [] if raw is None else codec.decode(raw)
    if voter not in voters:
        voters = sorted([*voters, voter])
    voted = sum(current.by_address[v].power for v in voters if v in current.by_address)
    name = "add" if action == ADD else "remove"
    fields: tuple[tuple[str, int | bytes | str], ...] = (
        ("action", name),
        ("validator", address_of(public_key)),
        ("power", power),
        ("voted_power", voted),
    )
    if voted * 3 > current.total_power * 2:
        view.set(key, None)
        _schedule(view, height + EFFECT_DELAY, [action, public_key, power])
        return (Event(GOVERNANCE_ADDRESS, "ValidatorChangeScheduled", (*fields, ("at_height", height + EFFECT_DELAY))),)
    view.set(key, codec.encode(voters))
    return (Event(GOVERNANCE_ADDRESS, "ValidatorVote", fields),)


def punish(view: StateView, evidence: DuplicateVote, chain_id: int, height: int) -> None:
    """Act on evidence once: the offender leaves the set two heights later."""
    used = USED_EVIDENCE + evidence.hash()
    if view.get(used) is not None:
        raise InvalidBlock("evidence: this offence was already punished")
    evidence.check(validator_set(view), chain_id)
    view.set(used, b"\x01")
    offender = validator_set(view).by_address[evidence.validator]
    _schedule(view, height + EFFECT_DELAY, [REMOVE, offender.public_key, 0])


def _schedule(view: StateView, height: int, change: list[object]) -> None:
    key = SCHEDULE + height.to_bytes(8, "big")
    raw = view.get(key)
    changes = [] if raw is None else codec.decode(raw)
    changes.append(change)
    view.set(key, codec.encode(changes))


def advance(view: StateView, next_height: int) -> None:
    """After a block: the set that signed it becomes `W`; changes due at `next_height` make the new `V`."""
    current = validator_set(view)
    encoded = codec.encode(current.to_wire())
    if view.get(PREVIOUS) != encoded:
        view.set(PREVIOUS, encoded)
    key = SCHEDULE + next_height.to_bytes(8, "big")
    raw = view.get(key)
    if raw is None:
        return
    members = {v.public_key: v.power for v in current.validators}
    for action, public_key, power in codec.decode(raw):
        trial = dict(members)
        if action == ADD:
            trial[public_key] = power
        else:
            trial.pop(public_key, None)
        if trial:
            members = trial
    view.set(key, None)
    updated = ValidatorSet(tuple(Validator(k, p) for k, p in members.items()))
    view.set(CURRENT, codec.encode(updated.to_wire()))
