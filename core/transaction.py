"""Transactions: what an account signs to change the state.

A transaction is `[tag, chain_id, sender_public_key, nonce, gas_limit, gas_price, kind, to,
value, data, signature]` in canonical msgpack. The signature covers every other field under
the `aichain/tx/v1` domain and the chain id. Its hash (the transaction id) is the SHA-256
of the whole signed encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

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
        # from_wire checks the type of all 11 fields; decode checks `raw` is canonical, so it
        # is the transaction's encoding as it is (no second encoding to compute it).
        tx = cls.from_wire(codec.decode(raw, limits=TX_LIMITS, check_types=False), encoded=raw)
        return tx

    @classmethod
    def _with_encoding(cls, fields: _Fields, encoded: bytes) -> Transaction:
        """Build from checked fields whose canonical encoding is already known."""
        tx = object.__new__(cls)
        for name, value in zip(_FIELDS, fields, strict=True):
            object.__setattr__(tx, name, value)
        object.__setattr__(tx, "encoded", encoded)
        object.__setattr__(tx, "hash", sha256(encoded))
        object.__setattr__(tx, "sender_address", address_of(fields[1]))
        return tx


_KINDS = {int(k) for k in TxKind}
# chain_id, sender, nonce, gas_limit, gas_price, kind, to, value, data, signature (as `_FIELDS` names them)
_Fields = tuple[int, bytes, int, int, int, int, bytes, int, bytes, bytes]
_FIELDS = ("chain_id", "sender", "nonce", "gas_limit", "gas_price", "kind", "to", "value", "data", "signature")
_ARRAY_OF_10 = b"\x9a"  # msgpack fixarray header, 10 elements
_SIGNATURE_ENCODED = 2 + SIGNATURE_SIZE  # bin8 header and the signature
