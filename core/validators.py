"""Validator sets: the known identities that sign blocks, with their voting power."""

from __future__ import annotations

from dataclasses import dataclass, field

from core import codec
from core.errors import DecodeError
from core.hashing import sha256
from core.keys import PUBLIC_KEY_SIZE, address_of

VALIDATOR_SET_TAG = 6


@dataclass(frozen=True, slots=True)
class Validator:
    public_key: bytes
    power: int
    address: bytes = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", address_of(self.public_key))


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """An ordered set of validators; order is by address so every node derives the same one."""

    validators: tuple[Validator, ...]
    total_power: int = field(init=False, compare=False)
    by_address: dict[bytes, Validator] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.validators, key=lambda v: v.address))
        object.__setattr__(self, "validators", ordered)
        object.__setattr__(self, "total_power", sum(v.power for v in ordered))
        object.__setattr__(self, "by_address", {v.address: v for v in ordered})
        if len(self.by_address) != len(ordered):
            raise ValueError("a validator set lists each validator once")
        if any(v.power <= 0 for v in ordered):
            raise ValueError("every validator has a positive voting power")

    def __len__(self) -> int:
        return len(self.validators)

    def quorum(self) -> int:
        """The least voting power that is more than 2/3 of the total."""
        return self.total_power * 2 // 3 + 1

    def to_wire(self) -> list[codec.Value]:
        return [VALIDATOR_SET_TAG, [[v.public_key, v.power] for v in self.validators]]

    def hash(self) -> bytes:
        return sha256(codec.encode(self.to_wire()))

    @classmethod
    def from_wire(cls, value: object) -> ValidatorSet:
        items = codec.expect_list(value, VALIDATOR_SET_TAG, 2, "validator set")
        if not isinstance(items[1], list):
            raise DecodeError("validator set: expected an array of validators")
        validators = []
        for entry in items[1]:
            if not isinstance(entry, list) or len(entry) != 2:
                raise DecodeError("validator: expected [public_key, power]")
            validators.append(
                Validator(
                    codec.expect_bytes(entry[0], "validator public_key", PUBLIC_KEY_SIZE),
                    codec.expect_uint(entry[1], "validator power"),
                )
            )
        addresses = [v.address for v in validators]
        if addresses != sorted(addresses):
            raise DecodeError("validator set: validators must be listed in address order (canonical form)")
        try:
            return cls(tuple(validators))
        except ValueError as exc:
            raise DecodeError(f"validator set: {exc}") from exc
