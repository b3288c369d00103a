"""Hostile P2P frames, drawn from a seeded random generator (a failure names its seed).

`Templates` holds well-formed payloads of every message type a node registers, most of them
taken from a live node (its status, round steps, blocks with commits, an artifact it stores) and
the rest built here (transactions, votes, proposals, evidence signed by keys of our own).
`mutated(rng, templates)` turns one of them into something hostile: a field replaced by a value
of another type or at a boundary, bits flipped, fields cut or added, a wrong tag, a wrong frame
type, non-canonical or invalid msgpack, deep nesting, huge arrays. Each input is a tuple
(category, frame bytes); categories are what the tests count.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from typing import Any

import msgpack

from core import codec
from core.block import Vote, VoteType
from core.evidence import DuplicateVote
from core.keys import PrivateKey
from core.proposal import Proposal
from core.transaction import MAX_TX_DATA, Transaction, TxKind
from node.p2p.framing import LENGTH, frame_from_body

TXS, PROPOSAL, VOTE, EVIDENCE, STATUS, GET_BLOCKS, BLOCKS = 16, 17, 18, 19, 20, 21, 22
WANT, HAVE, GET, CHUNK, ROUND_STEP = 23, 24, 25, 26, 27
APP_TYPES = (TXS, PROPOSAL, VOTE, EVIDENCE, STATUS, GET_BLOCKS, BLOCKS, WANT, HAVE, GET, CHUNK, ROUND_STEP)
CONTROL_TYPES = (0, 1, 2, 3, 4, 5, 6)
UNKNOWN_TYPES = tuple(t for t in range(256) if t not in APP_TYPES and t not in CONTROL_TYPES)

BOUNDARY_INTS = [
    0,
    1,
    2,
    127,
    128,
    255,
    256,
    2**16 - 1,
    2**16,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**53,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -1,
    -2,
    -128,
    -(2**31),
    -(2**63),
]
BYTE_SIZES = [0, 1, 19, 20, 21, 31, 32, 33, 63, 64, 65, 255, 256, 4096, 4097]


@dataclass
class Templates:
    """Well-formed payloads by message type."""

    chain_id: int
    head: int
    by_type: dict[int, list[Any]] = field(default_factory=dict)

    def add(self, msg_type: int, payload: Any) -> None:
        self.by_type.setdefault(msg_type, []).append(payload)

    def pick(self, rng: random.Random, msg_type: int) -> Any:
        return rng.choice(self.by_type[msg_type])


def signed_tx(key: PrivateKey, chain_id: int, nonce: int = 0, data: bytes = b"", **fields: int) -> Transaction:
    gas_limit = fields.get("gas_limit", 21_000 + 16 * len(data))
    tx = Transaction(
        chain_id,
        key.public_key,
        nonce,
        gas_limit,
        fields.get("gas_price", 1),
        TxKind.TRANSFER,
        b"\x42" * 20,
        fields.get("value", 1),
        data,
    )
    return tx.signed_by(key)


def built_templates(templates: Templates, rng: random.Random) -> None:
    """Payloads signed by keys of our own (not validators): transactions, votes, proposals, evidence."""
    key = PrivateKey.from_seed(rng.randbytes(32))
    chain_id, h = templates.chain_id, templates.head
    txs = [signed_tx(key, chain_id, n) for n in range(3)]
    templates.add(TXS, [TXS, [tx.encoded for tx in txs]])
    templates.add(TXS, [TXS, [signed_tx(key, chain_id, 0, rng.randbytes(200)).encoded]])
    for height in (h + 1, h + 2, h + 50, 2**64 - 1):
        vote = Vote(VoteType.PREVOTE, height, 0, rng.randbytes(32), key.address).signed_by(key, chain_id)
        templates.add(VOTE, [VOTE, vote.to_wire()])
        proposal = Proposal(height, 0, -1, rng.randbytes(32), key.address).signed_by(key, chain_id)
        templates.add(PROPOSAL, [PROPOSAL, proposal.to_wire(), b"\x95" + b"\x00" * 4])
    first = Vote(VoteType.PRECOMMIT, h, 0, rng.randbytes(32), key.address).signed_by(key, chain_id)
    second = Vote(VoteType.PRECOMMIT, h, 0, rng.randbytes(32), key.address).signed_by(key, chain_id)
    templates.add(EVIDENCE, [EVIDENCE, DuplicateVote.of(first, second).encode()])
    templates.add(STATUS, [STATUS, h, rng.randbytes(32)])
    templates.add(GET_BLOCKS, [GET_BLOCKS, 1, 64])
    templates.add(GET_BLOCKS, [GET_BLOCKS, 0, 2**64 - 1])
    templates.add(BLOCKS, [BLOCKS, h + 1, []])
    templates.add(WANT, [WANT, rng.randbytes(32)])
    templates.add(HAVE, [HAVE, rng.randbytes(32), None])
    templates.add(GET, [GET, rng.randbytes(32), [0, 1]])
    templates.add(CHUNK, [CHUNK, rng.randbytes(32), 0, rng.randbytes(64)])
    templates.add(ROUND_STEP, [ROUND_STEP, h + 1, 0, 1, 0, 0, [[0, 1, b"\x01"]]])


# --- values ---------------------------------------------------------------------------------------


def hostile_value(rng: random.Random, depth: int = 0) -> Any:
    """A msgpack value of any canonical type, often at a boundary."""
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(BOUNDARY_INTS)
    if roll < 0.45:
        return rng.randbytes(rng.choice(BYTE_SIZES))
    if roll < 0.55:
        return rng.choice(["", "x", "é" * 40, "\x00", "a" * 300, "validator"])
    if roll < 0.65:
        return rng.choice([None, True, False])
    if roll < 0.9 and depth < 3:
        return [hostile_value(rng, depth + 1) for _ in range(rng.randrange(0, 6))]
    return rng.randrange(0, 2**64)


def mutate_value(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """One mutation somewhere inside `value` (a list is entered with some probability)."""
    if isinstance(value, list) and value:
        items = list(value)
        roll = rng.random()
        i = rng.randrange(len(items))
        if roll < 0.45 and depth < 4 and isinstance(items[i], list | bytes | int):
            items[i] = mutate_value(rng, items[i], depth + 1)
        elif roll < 0.7:
            items[i] = hostile_value(rng)
        elif roll < 0.8:
            del items[i]
        elif roll < 0.9:
            items.insert(i, hostile_value(rng))
        else:
            items = items * rng.choice([2, 3])
        return items
    if isinstance(value, bytes):
        if not value or rng.random() < 0.3:
            return rng.randbytes(rng.choice(BYTE_SIZES))
        flipped = bytearray(value)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(flipped))
            flipped[at] ^= 1 << rng.randrange(8)
        return bytes(flipped[: rng.choice([len(flipped), len(flipped), rng.randrange(len(flipped) + 1)])])
    if isinstance(value, int) and not isinstance(value, bool):
        return rng.choice([*BOUNDARY_INTS, (value + 1) % 2**64, max(-(2**63), value - 1), value * 2**20 % 2**64])
    return hostile_value(rng)


def nested(depth: int, leaf: Any = 0) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def non_canonical(value: Any) -> bytes:
    """`value` encoded with wider headers than canonical msgpack uses (a 16-bit array header, a 64-bit int)."""
    if isinstance(value, list):
        return b"\xdc" + struct.pack(">H", len(value)) + b"".join(codec.encode(v) for v in value)
    if isinstance(value, int) and value >= 0:
        return b"\xcf" + struct.pack(">Q", value)
    return b"\xc1"


# --- frames ---------------------------------------------------------------------------------------


def frame(msg_type: int, payload: Any) -> bytes:
    return frame_from_body(msg_type, msgpack.packb(payload, use_bin_type=True))


def mutated(rng: random.Random, templates: Templates) -> tuple[str, bytes]:
    """One hostile frame of a registered type (or of no registered type)."""
    msg_type = rng.choice([t for t in APP_TYPES if t in templates.by_type])
    template = templates.pick(rng, msg_type)
    roll = rng.random()
    if roll < 0.6:
        return f"{msg_type} field", frame(msg_type, mutate_value(rng, template))
    if roll < 0.67:
        return f"{msg_type} tag", frame(msg_type, [hostile_value(rng), *template[1:]])
    if roll < 0.72:
        other = rng.choice([t for t in APP_TYPES if t != msg_type])
        return f"{msg_type} as {other}", frame(other, template)
    if roll < 0.77:
        return f"{msg_type} non-canonical", frame_from_body(msg_type, non_canonical(template))
    if roll < 0.83:
        body = msgpack.packb(template, use_bin_type=True)
        cut = body[: rng.randrange(len(body))] if rng.random() < 0.5 else body + rng.randbytes(rng.randrange(1, 9))
        return f"{msg_type} cut or trailing", frame_from_body(msg_type, cut)
    if roll < 0.88:
        return f"{msg_type} garbage", frame_from_body(msg_type, rng.randbytes(rng.randrange(0, 200)))
    if roll < 0.92:
        odd = rng.choice([1.5, {1: 2}, {"a": [1]}, msgpack.ExtType(1, b"x"), [1.0], [template, {0: 0}]])
        return f"{msg_type} float/map/ext", frame(msg_type, odd)
    if roll < 0.95:
        return f"{msg_type} deep", frame(msg_type, [msg_type, nested(rng.choice([15, 16, 17, 40, 200]))])
    if roll < 0.98:
        return "unknown type", frame(rng.choice(UNKNOWN_TYPES), [0, hostile_value(rng)])
    return "control type", frame(rng.choice(CONTROL_TYPES), mutate_value(rng, [rng.randrange(7), 0, "x"]))


def big_frames(rng: random.Random, chain_id: int, max_frame: int) -> list[tuple[str, bytes]]:
    """Frames at and near the size limit, or with the most values a frame can carry."""
    key = PrivateKey.from_seed(rng.randbytes(32))
    largest = signed_tx(key, chain_id, 0, rng.randbytes(MAX_TX_DATA)).encoded
    unsigned = [
        Transaction(chain_id, key.public_key, n, 21_000, 1, TxKind.TRANSFER, b"\x42" * 20, 1, b"", bytes(64)).encoded
        for n in range(2000)
    ]
    out = [
        ("16 largest txs (near a frame)", frame(TXS, [TXS, [largest] * ((max_frame - 64) // (len(largest) + 5))])),
        ("16 2000 unsigned txs", frame(TXS, [TXS, unsigned])),
        ("16 2001 txs", frame(TXS, [TXS, [b""] * 2001])),
        ("many values (16 M nils)", frame(TXS, [TXS, [[None] * 199_999] * ((max_frame - 64) // 200_002)])),
        ("many values (empty arrays)", frame(STATUS, [STATUS, [[]] * 199_999, [[[]] * 50_000] * 60])),
        ("many values (ints)", frame(GET, [GET, bytes(32), list(range(199_999))])),
        ("long string", frame(WANT, [WANT, "é" * 30_000])),
        ("one bytes of a frame", frame(CHUNK, [CHUNK, bytes(32), 0, rng.randbytes(max_frame - 64)])),
        ("deep 1000", frame(STATUS, [STATUS, nested(1000)])),
    ]
    body = frame(TXS, [TXS, []])[LENGTH.size + 1 :]
    out.append(("frame at the limit", frame_from_body(TXS, body + b"\x00" * (max_frame - 1 - len(body)))))
    return out


def block_with_txs(block_bytes: bytes, txs: list[bytes]) -> bytes:
    """A real block's encoding with its transactions replaced (its hash no longer matches its commit)."""
    value = codec.decode(block_bytes, limits=codec.Limits(max_bytes=1 << 25, max_array_len=1 << 20))
    value[2] = txs
    return codec.encode(value)


def unsigned_txs(chain_id: int, count: int, rng: random.Random) -> list[bytes]:
    """Transactions that decode (every field well-formed) but carry no valid signature."""
    sender = PrivateKey.from_seed(rng.randbytes(32)).public_key
    return [
        Transaction(chain_id, sender, n, 21_000, 1, TxKind.TRANSFER, b"\x42" * 20, 1, b"", bytes(64)).encoded
        for n in range(count)
    ]


def hello_wire(key: PrivateKey, chain_id: int, genesis: bytes, binding: bytes = bytes(32)) -> list[Any]:
    """A Hello as a client sends it (signed over `binding`; a wrong binding is a bad signature)."""
    from node.p2p.handshake import LocalNode

    return LocalNode(key, chain_id, genesis).hello().signed(key, binding, "client").to_wire()


def pre_handshake_inputs(
    rng: random.Random, chain_id: int, genesis: bytes, hello: bytes
) -> list[tuple[str, str, bytes]]:
    """(layer, category, bytes): `tcp` inputs go on a plain connection, `tls` ones after TLS, in place of a Hello."""
    out: list[tuple[str, str, bytes]] = []
    for _ in range(6):
        out.append(("tcp", "garbage", rng.randbytes(rng.randrange(1, 3000))))
        out.append(("tcp", "client hello cut", hello[: rng.randrange(1, len(hello))]))
        flipped = bytearray(hello)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out.append(("tcp", "client hello flipped", bytes(flipped)))
    for length in (0, 1, 0x4000, 0x4001, 0xFFFF):
        out.append(("tcp", "tls record length", b"\x16\x03\x01" + struct.pack(">H", length) + rng.randbytes(64)))
    out.append(("tcp", "tls alert", b"\x15\x03\x03\x00\x02\x02\x28"))
    out.append(("tcp", "http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    key = PrivateKey.from_seed(rng.randbytes(32))
    good = hello_wire(key, chain_id, genesis)
    for _ in range(20):
        out.append(("tls", "hello mutated", frame(0, mutate_value(rng, good))))
    for length in (0, 4096, 4097, 2**32 - 1):
        out.append(("tls", "frame length", LENGTH.pack(length) + b"\x00" + rng.randbytes(32)))
    out += [
        ("tls", "garbage", rng.randbytes(rng.randrange(1, 4000))),
        ("tls", "hello cut", frame(0, good)[:30]),
        ("tls", "hello bad signature", frame(0, good)),  # signed over another channel binding
        ("tls", "hello wrong chain", frame(0, hello_wire(key, chain_id + 1, genesis))),
        ("tls", "accept first", frame(1, [1])),
        ("tls", "app message first", frame(TXS, [TXS, []])),
        ("tls", "disconnect", frame(2, [2, "x" * 600, "y" * 70_000])),
    ]
    return out
