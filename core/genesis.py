"""Genesis: the JSON file that defines a network, and whose hash identifies it.

```json
{
  "chain_id": 7777,
  "chain_name": "aichain-dev",
  "timestamp_ms": 1767225600000,
  "validators": [{"public_key": "0x…64 hex…", "power": 10, "name": "v0"}],
  "allocations": {"0x…40 hex…": "1000000 AIC"},
  "params": {"block_time_ms": 1000, "empty_block_interval_ms": 10000, "min_gas_price": 1,
             "block_gas_limit": 420000000, "max_block_txs": 20000, "block_reward": "0 AIC"}
}
```
Amounts are strings (`"1.5 AIC"`, `"1500units"`) or integers in base units. The genesis hash
is the SHA-256 of the canonical msgpack encoding of the parsed file, so whitespace and key
order in the JSON do not change it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import codec
from core.errors import ConfigError, InvalidAddress
from core.hashing import sha256
from core.keys import address_hex, parse_address
from core.units import U64_MAX, parse_amount
from core.validators import Validator, ValidatorSet

GENESIS_TAG = 9


@dataclass(frozen=True, slots=True)
class ChainParams:
    block_time_ms: int = 1000
    empty_block_interval_ms: int = 10_000
    min_gas_price: int = 1
    # 20,000 transfers of 21,000 gas; about 0.45 s of execution for a block of the slowest kind of
    # transaction, half the default block time (docs/decisions.md "Gas is work").
    block_gas_limit: int = 420_000_000
    max_block_txs: int = 20_000
    block_reward: int = 0

    def to_wire(self) -> list[codec.Value]:
        return [
            self.block_time_ms,
            self.empty_block_interval_ms,
            self.min_gas_price,
            self.block_gas_limit,
            self.max_block_txs,
            self.block_reward,
        ]


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: int
    chain_name: str
    timestamp_ms: int
    validators: ValidatorSet
    allocations: tuple[tuple[bytes, int], ...]
    params: ChainParams = field(default_factory=ChainParams)
    validator_names: tuple[tuple[bytes, str], ...] = ()

    def to_wire(self) -> list[codec.Value]:
        return [
            GENESIS_TAG,
            self.chain_id,
            self.chain_name,
            self.timestamp_ms,
            self.validators.to_wire(),
            [[a, b] for a, b in self.allocations],
            self.params.to_wire(),
        ]

    def hash(self) -> bytes:
        return sha256(codec.encode(self.to_wire()))

    def total_supply(self) -> int:
        return sum(amount for _, amount in self.allocations)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Genesis:
        try:
            return _parse(doc)
        except ConfigError:
            raise
        except KeyError as exc:
            raise ConfigError(f"genesis is invalid: the key {exc} is missing") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"genesis is invalid: {exc}") from exc

    @classmethod
    def load(cls, path: Path) -> Genesis:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"no genesis file at {path}; create one with `aichain-node init`") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"genesis file {path} is not valid JSON: {exc}") from exc
        return cls.from_dict(doc)

    def to_dict(self) -> dict[str, Any]:
        names = dict(self.validator_names)
        params = asdict(self.params)
        params["block_reward"] = f"{params['block_reward']}units"
        return {
            "chain_id": self.chain_id,
            "chain_name": self.chain_name,
            "timestamp_ms": self.timestamp_ms,
            "validators": [
                {"public_key": "0x" + v.public_key.hex(), "power": v.power, "name": names.get(v.address, "")}
                for v in self.validators.validators
            ],
            "allocations": {address_hex(a): f"{amount}units" for a, amount in self.allocations},
            "params": params,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _amount(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected an amount, got a boolean")
    if isinstance(value, int):
        if not 0 <= value <= U64_MAX:
            raise ConfigError(f"{what}: {value} is outside 0..2^64-1 base units")
        return value
    if isinstance(value, str):
        try:
            return parse_amount(value)
        except ValueError as exc:
            raise ConfigError(f"{what}: {exc}") from exc
    raise ConfigError(f'{what}: expected an amount such as "100 AIC" or an integer of base units')


def _parse(doc: dict[str, Any]) -> Genesis:
    if not isinstance(doc, dict):
        raise ConfigError("genesis must be a JSON object")
    chain_id = doc["chain_id"]
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or not 0 < chain_id < 2**53:
        raise ConfigError("genesis chain_id must be a positive integer below 2^53")
    validators = []
    names = []
    if not isinstance(doc["validators"], list):
        raise ConfigError('genesis validators must be a list of {"public_key": …, "power": …} objects')
    for i, entry in enumerate(doc["validators"]):
        if not isinstance(entry, dict):
            raise ConfigError(f"genesis validator {i}: expected an object with public_key and power")
        key_hex = entry["public_key"]
        try:
            raw = bytes.fromhex(key_hex[2:] if key_hex.startswith("0x") else key_hex)
        except (AttributeError, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"genesis validator {i}: public_key must be 32 bytes of hex")
        power = entry.get("power", 1)
        if not isinstance(power, int) or isinstance(power, bool) or not 0 < power < 2**32:
            raise ConfigError(f"genesis validator {i}: power must be a positive integer")
        validator = Validator(raw, power)
        validators.append(validator)
        names.append((validator.address, str(entry.get("name", ""))))
    if not validators:
        raise ConfigError("genesis needs at least one validator")
    allocations: dict[bytes, int] = {}
    if not isinstance(doc.get("allocations", {}), dict):
        raise ConfigError("genesis allocations must be an object of address -> amount")
    for text, amount in doc.get("allocations", {}).items():
        try:
            address = parse_address(text)
        except InvalidAddress as exc:
            raise ConfigError(f"genesis allocations: {exc}") from exc
        allocations[address] = _amount(amount, f"allocation of {text}")
    total = sum(allocations.values())
    if total > U64_MAX:
        raise ConfigError("genesis allocations add up to more than 2^64-1 base units")
    if not isinstance(doc.get("params", {}), dict):
        raise ConfigError("genesis params must be an object")
    raw_params = dict(doc.get("params", {}))
    unknown = set(raw_params) - set(ChainParams.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"genesis params: unknown keys {sorted(unknown)}")
    if "block_reward" in raw_params:
        raw_params["block_reward"] = _amount(raw_params["block_reward"], "params.block_reward")
    for key, value in raw_params.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U64_MAX:
            raise ConfigError(f"genesis params.{key} must be a non-negative integer below 2^64")
    params = ChainParams(**raw_params)
    if params.block_time_ms < 1 or params.max_block_txs < 1:
        raise ConfigError("genesis params: block_time_ms and max_block_txs must be at least 1")
    timestamp_ms = doc.get("timestamp_ms", 0)
    if not isinstance(timestamp_ms, int) or isinstance(timestamp_ms, bool) or not 0 <= timestamp_ms <= U64_MAX:
        raise ConfigError("genesis timestamp_ms must be a non-negative integer (milliseconds since 1970)")
    try:
        validator_set = ValidatorSet(tuple(validators))
    except ValueError as exc:
        raise ConfigError(f"genesis validators: {exc}") from exc
    return Genesis(
        chain_id=chain_id,
        chain_name=str(doc.get("chain_name", "aichain")),
        timestamp_ms=timestamp_ms,
        validators=validator_set,
        allocations=tuple(sorted(allocations.items())),
        params=params,
        validator_names=tuple(names),
    )
