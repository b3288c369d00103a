"""Every key layout of the database, in one place.

Keys are a one-byte table prefix followed by fixed-width big-endian fields, so LevelDB's
byte order is numeric order and a prefix scan walks a table in order.

| prefix | key                          | value                                 |
|--------|------------------------------|---------------------------------------|
| `b`    | height (8)                   | encoded block                         |
| `c`    | height (8)                   | encoded commit that finalised it      |
| `i`    | block hash (32)              | height (8)                            |
| `t`    | tx hash (32)                 | height (8) + index in block (4)       |
| `r`    | height (8) + index (4)       | encoded receipt                       |
| `S`    | state key                    | state value (flat copy of the tree's leaves) |
| `n`    | tree node path               | state tree node (see storage.state_tree) |
| `m`    | name                         | metadata: head, genesis, schema       |
| `w`    | (none)                       | the block last voted for, with its proposal (node.consensus.wal) |
| `W`    | (none)                       | that block's hash and the prevotes the vote rests on (node.consensus.wal) |
"""

from __future__ import annotations

BLOCK = b"b"
COMMIT = b"c"
BLOCK_HASH = b"i"
TX_INDEX = b"t"
RECEIPT = b"r"
STATE = b"S"
TREE = b"n"
META = b"m"
CONSENSUS_WAL = b"w"
CONSENSUS_WAL_POLKA = b"W"

HEAD = META + b"head"
GENESIS = META + b"genesis"
SCHEMA = META + b"schema"
SCHEMA_VERSION = b"1"


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def block_key(height: int) -> bytes:
    return BLOCK + u64(height)


def commit_key(height: int) -> bytes:
    return COMMIT + u64(height)


def block_hash_key(block_hash: bytes) -> bytes:
    return BLOCK_HASH + block_hash


def tx_index_key(tx_hash: bytes) -> bytes:
    return TX_INDEX + tx_hash


def receipt_key(height: int, index: int) -> bytes:
    return RECEIPT + u64(height) + index.to_bytes(4, "big")


def state_key(key: bytes) -> bytes:
    return STATE + key
