"""A signed request to read the plaintext of a private artifact from a node.

The plaintext of a private (encrypted) artifact leaves a node only to an account that proves, in
that very request, that it may read it: an owner of the model version that names the artifact, or
the holder of a valid licence to it. The proof is the account's Ed25519 signature over the domain
`DOMAIN_READ`, the chain id and the canonical encoding of

    [READ_TAG, artifact id, model, version, method, path, range, timestamp ms, nonce]

`method`, `path` and `range` are the HTTP request's own (its method, its path without the query,
its `Range` header or ""), so a signature covers one request for one artifact on one chain and
nothing else. The timestamp bounds how long it can be used (`WINDOW_MS` either side of the node's
clock); the random nonce lets the node refuse it a second time within that window. It travels in
one header:

    Authorization: AichainRead <base64 of [public key, model, version, timestamp ms, nonce, signature]>

`model@version` names the version whose licence (or ownership) the request relies on: the node
checks on chain that this version's artifact is the one asked for.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from core import codec
from core.errors import AichainError, DecodeError
from core.keys import PrivateKey, address_of, verify

DOMAIN_READ = b"aichain/artifact-read/v1"
READ_TAG = 1
SCHEME = "AichainRead"
WINDOW_MS = 60_000  # a signed read is accepted this long before and after its timestamp (clock skew)
NONCE_SIZE = 16
MAX_MODEL_NAME = 64
MAX_PATH = 4096
MAX_HEADER = 1024  # base64 characters: the fields above fit in about 300


class ReadRequestInvalid(AichainError):
    """An `Authorization: AichainRead …` header that is not a well-formed signed read."""


@dataclass(frozen=True)
class ReadRequest:
    """What an account signs to read a private artifact's plaintext: one request, one artifact, one chain."""

    artifact: bytes  # 32-byte id
    model: str
    version: int
    method: str  # "GET" or "HEAD"
    path: str  # the request's path, without its query
    range: str  # the Range header, "" without one
    timestamp_ms: int
    nonce: bytes

    def payload(self) -> bytes:
        return codec.encode([READ_TAG, self.artifact, self.model, self.version, self.method.upper(), self.path,
                             self.range, self.timestamp_ms, self.nonce])  # fmt: skip


@dataclass(frozen=True)
class SignedRead:
    request: ReadRequest
    public_key: bytes
    signature: bytes

    @property
    def account(self) -> bytes:
        return address_of(self.public_key)

    def verifies(self, chain_id: int) -> bool:
        return verify(self.public_key, self.signature, DOMAIN_READ, chain_id, self.request.payload())

    def header(self) -> str:
        """The `Authorization` header's value."""
        r = self.request
        token = codec.encode([self.public_key, r.model, r.version, r.timestamp_ms, r.nonce, self.signature])
        return f"{SCHEME} {base64.b64encode(token).decode()}"


def sign_read(key: PrivateKey, chain_id: int, artifact: bytes, model: str, version: int, method: str, path: str,
              range_header: str = "", *, timestamp_ms: int, nonce: bytes | None = None) -> SignedRead:  # fmt: skip
    """Sign one read of `artifact`'s plaintext (`path` as the server will see it, unquoted, without a query)."""
    request = ReadRequest(artifact, model, version, method.upper(), path, range_header, timestamp_ms,
                          os.urandom(NONCE_SIZE) if nonce is None else nonce)  # fmt: skip
    return SignedRead(request, key.public_key, key.sign(DOMAIN_READ, chain_id, request.payload()))


def parse_read(header: str, artifact: bytes, method: str, path: str, range_header: str) -> SignedRead:
    """The signed read an `Authorization` header carries, for the request it came with (not yet verified).

    Raises `ReadRequestInvalid` saying what is wrong with the header."""
    scheme, _, value = header.strip().partition(" ")
    if scheme != SCHEME:
        raise ReadRequestInvalid(f"the Authorization header must use the {SCHEME} scheme (`{SCHEME} <base64>`)")
    value = value.strip()
    if not value or len(value) > MAX_HEADER:
        raise ReadRequestInvalid(f"the {SCHEME} token must be 1 to {MAX_HEADER} base64 characters")
    try:
        fields = codec.decode(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, DecodeError) as exc:
        raise ReadRequestInvalid(f"the {SCHEME} token is not base64 of a canonical msgpack array: {exc}") from None
    if not isinstance(fields, list) or len(fields) != 6:
        raise ReadRequestInvalid(f"the {SCHEME} token must hold [public key, model, version, timestamp ms, nonce, "
                                 "signature]")  # fmt: skip
    try:
        public_key = codec.expect_bytes(fields[0], "public key", 32)
        model = codec.expect_str(fields[1], "model", MAX_MODEL_NAME)
        version = codec.expect_uint(fields[2], "version")
        timestamp_ms = codec.expect_uint(fields[3], "timestamp")
        nonce = codec.expect_bytes(fields[4], "nonce", NONCE_SIZE)
        signature = codec.expect_bytes(fields[5], "signature", 64)
    except DecodeError as exc:
        raise ReadRequestInvalid(f"the {SCHEME} token: {exc}") from None
    if len(path) > MAX_PATH:
        raise ReadRequestInvalid(f"a signed read's path has at most {MAX_PATH} characters")
    request = ReadRequest(artifact, model, version, method.upper(), path, range_header, timestamp_ms, nonce)
    return SignedRead(request, public_key, signature)


__all__ = ["DOMAIN_READ", "SCHEME", "WINDOW_MS", "ReadRequest", "ReadRequestInvalid", "SignedRead", "parse_read",
           "sign_read"]  # fmt: skip
