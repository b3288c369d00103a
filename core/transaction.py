"""Transactions: what an account signs to change the state.

A transaction is `[tag, chain_id, sender_public_key, nonce, gas_limit, gas_price, kind, to,
value, data, signature]` in canonical msgpack. The signature covers every other field under
the `aichain/tx/v1` domain and the chain id. Its hash (the transaction id) is the SHA-256
of the whole signed encoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, cast

import msgpack

from core import codec
from core.errors import DecodeError
from core.hashing import sha256
from core.keys import ADDRESS_SIZE, DOMAIN_TX, PUBLIC_KEY_SIZE, SIGNATURE_SIZE, PrivateKey, address_of, verify

TX_TAG = 1
MAX_TX_DATA = 128 * 1024
MAX_TX_BYTES = MAX_TX_DATA + 512
TX_LIMITS = codec.Limits(max_bytes=MAX_TX_BYTES, max_bin_len=MAX_TX_DATA, max_array_len=16, max_depth=2)


class TxKind(IntEnum):
    TRANSFER = 0
    DEPLOY = 1
    CALL = 2
    VALIDATOR_VOTE = 3  # a validator's vote to add or remove a validator (vm.validators)


@dataclass(frozen=True, slots=True)
class Transaction:
    chain_id: int
    sender: bytes  # the sender's Ed25519 public key
    nonce: int
    gas_limit: int
    gas_price: int
    kind: int
    to: bytes  # 20-byte recipient address, or b"" where the kind has none
    value: int
    data: bytes
    signature: bytes = b""
    encoded: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)
    sender_address: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = codec.encode([*self._body(), self.signature])
        object.__setattr__(self, "encoded", encoded)
        object.__setattr__(self, "hash", sha256(encoded))
        object.__setattr__(self, "sender_address", address_of(self.sender))

    def _body(self) -> list[codec.Value]:
        return [
            TX_TAG,
            self.chain_id,
            self.sender,
            self.nonce,
            self.gas_limit,
            self.gas_price,
            self.kind,
            self.to,
            self.value,
            self.data,
        ]

    def signing_payload(self) -> bytes:
        if len(self.signature) == SIGNATURE_SIZE:
            # The signed encoding is the 11-element array of the body's 10 fields and a 64-byte
            # signature (bin8 header c4 40): the payload is those same body bytes under a
            # 10-element array header. Cutting them out saves an encoding on every verify.
            return _ARRAY_OF_10 + self.encoded[1:-_SIGNATURE_ENCODED]
        return codec.encode(self._body())

    def signed_by(self, key: PrivateKey) -> Transaction:
        """A copy of this transaction with `sender` set to `key` and signed by it."""
        unsigned = Transaction(
            self.chain_id,
            key.public_key,
            self.nonce,
            self.gas_limit,
            self.gas_price,
            self.kind,
            self.to,
            self.value,
            self.data,
        )
        signature = key.sign(DOMAIN_TX, self.chain_id, unsigned.signing_payload())
        return Transaction(
            self.chain_id,
            key.public_key,
            self.nonce,
            self.gas_limit,
            self.gas_price,
            self.kind,
            self.to,
            self.value,
            self.data,
            signature,
        )

    def signature_valid(self) -> bool:
        """True if the signature verifies for `sender` on this transaction's own chain id."""
        return verify(self.sender, self.signature, DOMAIN_TX, self.chain_id, self.signing_payload())

    @property
    def max_fee(self) -> int:
        return self.gas_limit * self.gas_price

    def to_wire(self) -> list[codec.Value]:
        return [*self._body(), self.signature]

    @classmethod
    def from_wire(cls, value: object, encoded: bytes | None = None) -> Transaction:
        """Build from decoded msgpack, checking every field's type and size (`encoded`: the
        canonical bytes `value` was decoded from, if the caller has them)."""
        items = codec.expect_list(value, TX_TAG, 11, "transaction")
        chain_id = codec.expect_uint(items[1], "transaction chain_id")
        sender = codec.expect_bytes(items[2], "transaction sender", PUBLIC_KEY_SIZE)
        nonce = codec.expect_uint(items[3], "transaction nonce")
        gas_limit = codec.expect_uint(items[4], "transaction gas_limit")
        gas_price = codec.expect_uint(items[5], "transaction gas_price")
        kind = codec.expect_uint(items[6], "transaction kind", bits=8)
        if kind not in _KINDS:
            raise DecodeError(f"transaction kind {kind} is unknown (known: {sorted(_KINDS)})")
        to = codec.expect_bytes(items[7], "transaction to", max_size=ADDRESS_SIZE)
        if to and len(to) != ADDRESS_SIZE:
            raise DecodeError("transaction to: expected a 20-byte address or empty bytes")
        value_ = codec.expect_uint(items[8], "transaction value")
        data = codec.expect_bytes(items[9], "transaction data", max_size=MAX_TX_DATA)
        signature = codec.expect_bytes(items[10], "transaction signature", SIGNATURE_SIZE)
        fields = (chain_id, sender, nonce, gas_limit, gas_price, kind, to, value_, data, signature)
        if encoded is not None:
            return cls._with_encoding(fields, encoded)
        return cls(*fields)

    @classmethod
    def decode(cls, raw: bytes) -> Transaction:
        """Decode untrusted bytes into a transaction (the signature is not checked here)."""
        # The common case, a well-formed transaction, is checked in one expression (`_decode_fast`);
        # anything it does not accept goes the general way, which raises the error that says why.
        tx = _decode_fast(raw)
        if tx is not None:
            return tx
        # from_wire checks the type of all 11 fields; decode checks `raw` is canonical, so it
        # is the transaction's encoding as it is (no second encoding to compute it).
        return cls.from_wire(codec.decode(raw, limits=TX_LIMITS, check_types=False), encoded=raw)

    @classmethod
    def _with_encoding(cls, fields: _Fields, encoded: bytes) -> Transaction:
        """Build from checked fields whose canonical encoding is already known."""
        return _built(*fields, encoded)


_KINDS = {int(k) for k in TxKind}
# chain_id, sender, nonce, gas_limit, gas_price, kind, to, value, data, signature
_Fields = tuple[int, bytes, int, int, int, int, bytes, int, bytes, bytes]
_ARRAY_OF_10 = b"\x9a"  # msgpack fixarray header, 10 elements
_SIGNATURE_ENCODED = 2 + SIGNATURE_SIZE  # bin8 header and the signature


class _Unfrozen:
    """A transaction's slots without the frozen dataclass's guard: `_built` fills one with plain
    attribute stores and then makes it a `Transaction`. The frozen constructor stores each of the
    13 fields through `object.__setattr__`, about 2 us a transaction; this is about 0.4 us."""

    __slots__ = Transaction.__slots__


def _built(
    chain_id: int,
    sender: bytes,
    nonce: int,
    gas_limit: int,
    gas_price: int,
    kind: int,
    to: bytes,
    value: int,
    data: bytes,
    signature: bytes,
    encoded: bytes,
) -> Transaction:
    """The transaction of these checked fields, whose canonical encoding is `encoded`."""
    tx: Any = _Unfrozen()
    tx.chain_id = chain_id
    tx.sender = sender
    tx.nonce = nonce
    tx.gas_limit = gas_limit
    tx.gas_price = gas_price
    tx.kind = kind
    tx.to = to
    tx.value = value
    tx.data = data
    tx.signature = signature
    tx.encoded = encoded
    tx.hash = _sha256(encoded).digest()
    tx.sender_address = _sha256(sender).digest()[-ADDRESS_SIZE:]  # address_of, inlined
    tx.__class__ = Transaction  # same slots, same layout: allowed, and from here on frozen
    return cast(Transaction, tx)


_sha256 = hashlib.sha256
_unpackb = msgpack.unpackb
_U64 = 1 << 64
_KINDS_U8 = frozenset(_KINDS)
_TO_SIZES = (0, ADDRESS_SIZE)


def _decode_fast(raw: bytes) -> Transaction | None:
    """The transaction `raw` encodes if `raw` passes every check of the general path (`codec.decode`
    under `TX_LIMITS`, then `Transaction.from_wire`); None if it may not (the general path then
    raises the error for it). Accepting exactly what the general path accepts is what makes it a
    fast path: tests/core/test_transaction_decode.py feeds both the same corpus of bad encodings."""
    if len(raw) > MAX_TX_BYTES:
        return None
    try:
        # No extension hook: an extension value fails the field types below, and goes the general way.
        value = _unpackb(
            raw,
            max_bin_len=MAX_TX_DATA,
            max_str_len=TX_LIMITS.max_str_len,
            max_array_len=16,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception:  # malformed: the general path says how
        return None
    if type(value) is not list or len(value) != 11:
        return None
    tag, chain_id, sender, nonce, gas_limit, gas_price, kind, to, value_, data, signature = value
    if not (
        type(tag) is int
        and tag == TX_TAG
        and type(chain_id) is int
        and 0 <= chain_id < _U64
        and type(sender) is bytes
        and len(sender) == PUBLIC_KEY_SIZE
        and type(nonce) is int
        and 0 <= nonce < _U64
        and type(gas_limit) is int
        and 0 <= gas_limit < _U64
        and type(gas_price) is int
        and 0 <= gas_price < _U64
        and type(kind) is int
        and kind in _KINDS_U8
        and type(to) is bytes
        and len(to) in _TO_SIZES
        and type(value_) is int
        and 0 <= value_ < _U64
        and type(data) is bytes
        and len(data) <= MAX_TX_DATA
        and type(signature) is bytes
        and len(signature) == SIGNATURE_SIZE
        and codec.encode(value) == raw  # canonical: as `codec.encode` packs it
    ):
        return None
    return _built(chain_id, sender, nonce, gas_limit, gas_price, kind, to, value_, data, signature, raw)
