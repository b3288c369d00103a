"""A commit from a single validator: its own precommit is more than 2/3 of the power.

Used where one key finalizes blocks without the network (benchmarks, tests of the chain);
running nodes, one validator included, decide blocks through `consensus.tendermint`.
"""

from __future__ import annotations

from core.block import Commit, CommitSig, Header, Vote, VoteType
from core.errors import ConfigError
from core.keys import PrivateKey
from core.validators import ValidatorSet


def single_validator_commit(key: PrivateKey, validators: ValidatorSet, chain_id: int, header: Header) -> Commit:
    """Precommit `header` with `key`, which must hold the whole set's power, and return the commit."""
    if len(validators) != 1 or key.address not in validators.by_address:
        raise ConfigError("a single-validator commit needs a set of exactly one validator, whose key is given")
    vote = Vote(VoteType.PRECOMMIT, header.height, 0, header.hash, key.address).signed_by(key, chain_id)
    return Commit(header.height, 0, header.hash, (CommitSig(key.address, vote.signature),))
