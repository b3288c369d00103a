"""The single-validator development chain that `aichain-node start --dev` creates on first use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.genesis import ChainParams, Genesis
from core.hashing import sha256
from core.keys import PrivateKey, read_key_file, write_key_file
from core.units import UNIT
from core.validators import Validator, ValidatorSet
from node.config import NodeConfig
from node.keystore import save_key

DEV_CHAIN_ID = 7777
DEV_BALANCE = 1_000_000_000 * UNIT
# A publicly known key, like Hardhat's and Anvil's test accounts: for development only.
DEV_ACCOUNT_KEY = PrivateKey.from_seed(sha256(b"aichain-node dev account 0: publicly known, never hold real value"))
GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class DevSetup:
    created: bool
    validator_key_path: Path
    genesis_path: Path


def dev_genesis(validator: PrivateKey, chain_id: int = DEV_CHAIN_ID) -> Genesis:
    return Genesis(
        chain_id=chain_id,
        chain_name="aichain-dev",
        timestamp_ms=GENESIS_TIME_MS,
        validators=ValidatorSet((Validator(validator.public_key, 10),)),
        allocations=((DEV_ACCOUNT_KEY.address, DEV_BALANCE),),
        params=ChainParams(),
        validator_names=((validator.address, "dev-validator"),),
    )


def ensure_dev_setup(config: NodeConfig, keystore: Path) -> DevSetup:
    """Create the dev genesis, validator key and dev account key unless they exist already."""
    genesis_path = config.genesis_path
    key_path = config.validator_key_path
    created = False
    if not genesis_path.exists():
        config.datadir.mkdir(parents=True, exist_ok=True)
        if key_path.exists():
            validator = read_key_file(key_path, config.validator_key_password)
        else:
            validator = PrivateKey.generate()
            # Dev keys are unencrypted on purpose: the dev chain holds nothing of value.
            write_key_file(key_path, validator, None)
        dev_genesis(validator).save(genesis_path)
        created = True
    ensure_dev_key(keystore)
    return DevSetup(created, key_path, genesis_path)


def ensure_dev_key(keystore: Path) -> Path | None:
    """Put the publicly known dev account key in the keystore as `dev` (funded on dev chains and testnets)."""
    path = keystore / "dev.pem"
    if path.exists():
        return path
    try:
        return save_key("dev", DEV_ACCOUNT_KEY, keystore, None)
    except OSError:
        return None
