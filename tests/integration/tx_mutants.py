"""Mutated transactions: valid ones of funded senders, changed the ways a careless or hostile client would.

Each mutant is (category, encoding). Most are refused; some are still valid (a replacement at a
higher price, the largest data a transaction may carry, a transfer to nobody) and are admitted.
"""

from __future__ import annotations

import random
from dataclasses import replace

from core.keys import PrivateKey
from core.transaction import MAX_TX_DATA, Transaction, TxKind
from vm.gas import intrinsic_gas

U64 = 2**64 - 1
RECIPIENT = b"\x42" * 20


def transfer(
    key: PrivateKey, chain_id: int, nonce: int, *, value: int = 1, price: int = 1, to: bytes = RECIPIENT
) -> Transaction:
    return Transaction(
        chain_id, key.public_key, nonce, intrinsic_gas(b""), price, TxKind.TRANSFER, to, value, b""
    ).signed_by(key)


def flipped(rng: random.Random, raw: bytes) -> bytes:
    """1 to 3 bits flipped anywhere: in any field, its msgpack header, or the signature."""
    out = bytearray(raw)
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def field_mutants(
    rng: random.Random, tx: Transaction, key: PrivateKey, block_gas_limit: int
) -> list[tuple[str, Transaction]]:
    """`tx` with one field at a boundary or otherwise wrong: (category, transaction), re-signed or not."""
    options = {
        "chain_id": [0, tx.chain_id - 1, tx.chain_id + 1, U64],
        "nonce": [tx.nonce + 1, tx.nonce + 1000, U64, max(0, tx.nonce - 1)],
        "gas_limit": [0, intrinsic_gas(tx.data) - 1, block_gas_limit, block_gas_limit + 1, U64],
        "gas_price": [0, 2, 2**32, 2**63, U64],
        "value": [0, 10**30 % U64, U64],
        "kind": [TxKind.DEPLOY, TxKind.CALL, TxKind.VALIDATOR_VOTE, 4, 255],
        "to": [b"", rng.randbytes(20), bytes(20)],
        "data": [b"\x00", rng.randbytes(MAX_TX_DATA), rng.randbytes(MAX_TX_DATA + 1)],
        "sender": [PrivateKey.from_seed(rng.randbytes(32)).public_key, bytes(32)],
    }
    name = rng.choice(sorted(options))
    value = rng.choice(options[name])
    changed = replace(tx, **{name: value})
    if name == "data":
        changed = replace(changed, gas_limit=intrinsic_gas(value))
    if rng.random() < 0.7 and name != "sender":
        return [(f"{name} re-signed", changed.signed_by(key))]
    return [(f"{name} not re-signed", changed)]


def mutants(
    rng: random.Random, tx: Transaction, key: PrivateKey, block_gas_limit: int, accepted: list[Transaction]
) -> list[tuple[str, bytes]]:
    """Mutants of the valid `tx` (which comes first: a sender's next nonce), and replays of `accepted`."""
    out: list[tuple[str, bytes]] = [("valid", tx.encoded)]
    for _ in range(rng.randrange(3, 8)):
        roll = rng.random()
        if roll < 0.4:
            out.append(("bit flip", flipped(rng, tx.encoded)))
        elif roll < 0.8:
            out += [(c, t.encoded) for c, t in field_mutants(rng, tx, key, block_gas_limit)]
        elif roll < 0.9 and accepted:
            out.append(("replay", rng.choice(accepted).encoded))
        elif roll < 0.95:
            out.append(("replacement", replace(tx, gas_price=tx.gas_price * 2).signed_by(key).encoded))
        else:
            out.append(("cut", tx.encoded[: rng.randrange(len(tx.encoded))]))
    return out
