"""A signed request to read the plaintext of a private artifact from one node.

The plaintext of a private (encrypted) artifact leaves a node only to an account that proves, in
that very request, that it may read it: an owner of the model version that names the artifact, or
the holder of a valid licence to it. The proof is the account's Ed25519 signature over the domain
`DOMAIN_READ`, the chain id and the canonical encoding of

    [READ_TAG, audience, artifact id, model, version, method, path, range, timestamp ms, nonce]

`audience` is the node key (P2P identity, 32 bytes) of the one node the read is for: a node serves
only reads signed for itself, so a node that receives a read meant for it (say one that keeps no
content key and was asked first) cannot replay it to the node that keeps the key. `method`, `path`
and `range` are the HTTP request's own (its method, its path without the query, its `Range` header
or ""), so a signature covers one request for one artifact at one node of one chain and nothing
else. The timestamp bounds how long it can be used (`WINDOW_MS` either side of the node's clock);
the random nonce lets the node refuse it a second time within that window. It travels in one
header:

    Authorization: AichainRead <base64 of [public key, audience, model, version, timestamp ms, nonce, signature]>

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

DOMAIN_READ = b"aichain/artifact-read/v2"  # v2: the read names its audience (v1 reads named no node)
READ_TAG = 1
SCHEME = "AichainRead"
WINDOW_MS = 60_000  # a signed read is accepted this long before and after its timestamp (clock skew)
NONCE_SIZE = 16
AUDIENCE_SIZE = 32  # a node key: an Ed25519 public key
MAX_MODEL_NAME = 64
MAX_PATH = 4096
MAX_HEADER = 1024  # base64 characters: the fields above fit in about 350


class ReadRequestInvalid(AichainError):
    """An `Authorization: AichainRead …` header that is not a well-formed signed read."""


@dataclass(frozen=True)
class ReadRequest:
    """What an account signs to read a private artifact's plaintext: one request, one artifact, one node, one
    chain."""

    audience: bytes  # the node key of the node the read is for
    artifact: bytes  # 32-byte id
    model: str
    version: int
    method: str  # "GET" or "HEAD"
    path: str  # the request's path, without its query
    range: str  # the Range header, "" without one
    timestamp_ms: int
    nonce: bytes

    def payload(self) -> bytes:
        return codec.encode(
            [
                READ_TAG,
                self.audience,
                self.artifact,
                self.model,
                self.version,
                self.method.upper(),
                self.path,
                self.range,
                self.timestamp_ms,
                self.nonce,
            ]
        )


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
        token = codec.encode([self.public_key, r.audience, r.model, r.version, r.timestamp_ms, r.nonce, self.signature])
        return f"{SCHEME} {base64.b64encode(token).decode()}"


def parse_node_key(text: object) -> bytes:
    """A node key (an audience) written as 0x-hex, as `node_status` reports it; ValueError if it is not one."""
    try:
        key = bytes.fromhex(text.strip().removeprefix("0x")) if isinstance(text, str) else b""
    except ValueError:
        key = b""
    if len(key) != AUDIENCE_SIZE:
        raise ValueError(f"a node key is 0x and {2 * AUDIENCE_SIZE} hex digits, not {str(text)[:80]!r}")
    return key


def sign_read(
    key: PrivateKey,
    chain_id: int,
    artifact: bytes,
    model: str,
    version: int,
    method: str,
    path: str,
    range_header: str = "",
    *,
    audience: bytes,
    timestamp_ms: int,
    nonce: bytes | None = None,
) -> SignedRead:
    """Sign one read of `artifact`'s plaintext at the node whose node key is `audience` (`path` as the server
    will see it, unquoted, without a query)."""
    if len(audience) != AUDIENCE_SIZE:
        raise ValueError(f"a signed read's audience is a node key of {AUDIENCE_SIZE} bytes, not {len(audience)}")
    request = ReadRequest(
        audience,
        artifact,
        model,
        version,
        method.upper(),
        path,
        range_header,
        timestamp_ms,
        os.urandom(NONCE_SIZE) if nonce is None else nonce,
    )
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
    if isinstance(fields, list) and len(fields) == 6:
        raise ReadRequestInvalid(
            f"this {SCHEME} token names no node (it has no audience): it was made by a client "
            "older than this node, whose signed reads could be replayed by any node they were "
            "sent to. Upgrade aichain-node (CLI and SDK) and sign again"
        )
    if not isinstance(fields, list) or len(fields) != 7:
        raise ReadRequestInvalid(
            f"the {SCHEME} token must hold [public key, audience, model, version, timestamp ms, nonce, signature]"
        )
    try:
        public_key = codec.expect_bytes(fields[0], "public key", 32)
        audience = codec.expect_bytes(fields[1], "audience", AUDIENCE_SIZE)
        model = codec.expect_str(fields[2], "model", MAX_MODEL_NAME)
        version = codec.expect_uint(fields[3], "version")
        timestamp_ms = codec.expect_uint(fields[4], "timestamp")
        nonce = codec.expect_bytes(fields[5], "nonce", NONCE_SIZE)
        signature = codec.expect_bytes(fields[6], "signature", 64)
    except DecodeError as exc:
        raise ReadRequestInvalid(f"the {SCHEME} token: {exc}") from None
    if len(path) > MAX_PATH:
        raise ReadRequestInvalid(f"a signed read's path has at most {MAX_PATH} characters")
    request = ReadRequest(audience, artifact, model, version, method.upper(), path, range_header, timestamp_ms, nonce)
    return SignedRead(request, public_key, signature)


__all__ = [
    "AUDIENCE_SIZE",
    "DOMAIN_READ",
    "SCHEME",
    "WINDOW_MS",
    "ReadRequest",
    "ReadRequestInvalid",
    "SignedRead",
    "parse_node_key",
    "parse_read",
    "sign_read",
]
