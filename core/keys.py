"""Ed25519 keys, domain-separated signatures, addresses and key files.

A signature covers `domain || 0x00 || chain_id (8 bytes, big-endian) || payload`, so it
can be replayed neither on another chain nor as another kind of message. Signing and key
files use `cryptography`; verification uses libsodium (PyNaCl), which verifies about three
times faster here and rejects non-canonical signatures and small-order keys (see
docs/decisions.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.errors import InvalidAddress, KeyFileError, WrongPassword
from core.hashing import sha256

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
ADDRESS_SIZE = 20

DOMAIN_TX = b"aichain/tx/v1"
DOMAIN_VOTE = b"aichain/vote/v1"
DOMAIN_PROPOSAL = b"aichain/proposal/v1"
DOMAIN_HANDSHAKE = b"aichain/handshake/v1"


def signing_message(domain: bytes, chain_id: int, payload: bytes) -> bytes:
    return domain + b"\x00" + chain_id.to_bytes(8, "big") + payload


def address_of(public_key: bytes) -> bytes:
    """The 20-byte address of an Ed25519 public key: the last 20 bytes of its SHA-256."""
    return sha256(public_key)[-ADDRESS_SIZE:]


def address_hex(address: bytes) -> str:
    return "0x" + address.hex()


def parse_address(text: str) -> bytes:
    """Parse `0x` + 40 hex digits (any case) into 20 bytes."""
    if not isinstance(text, str) or not text.startswith(("0x", "0X")) or len(text) != 42:
        raise InvalidAddress(f"{text!r} is not an address: expected 0x followed by 40 hex digits")
    digits = text[2:]
    if not all(c in "0123456789abcdefABCDEF" for c in digits):  # bytes.fromhex would skip whitespace
        raise InvalidAddress(f"{text!r} is not an address: it contains non-hex characters")
    return bytes.fromhex(digits)


def verify(public_key: bytes, signature: bytes, domain: bytes, chain_id: int, payload: bytes) -> bool:
    """True if `signature` is `public_key`'s signature of `payload` under `domain` and chain."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + signing_message(domain, chain_id, payload), public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
    return True


def verify_raw(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Plain Ed25519 over `message`, no domain: for contracts, whose messages carry their own."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
    return True


class PrivateKey:
    """An Ed25519 signing key. Its seed never appears in `repr` or logs."""

    __slots__ = ("_key", "address", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key: bytes = key.public_key().public_bytes_raw()
        self.address: bytes = address_of(self.public_key)

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        if len(seed) != 32:
            raise KeyFileError("an Ed25519 seed is exactly 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def seed(self) -> bytes:
        return self._key.private_bytes_raw()

    def sign(self, domain: bytes, chain_id: int, payload: bytes) -> bytes:
        return self._key.sign(signing_message(domain, chain_id, payload))

    def to_pem(self, password: str | None) -> bytes:
        """PKCS#8 PEM, encrypted with `password` (unencrypted only when it is None)."""
        encryption: serialization.KeySerializationEncryption
        if password is None:
            encryption = serialization.NoEncryption()
        elif not password:
            raise KeyFileError("a key file password must not be empty (None writes an unencrypted dev key)")
        else:
            encryption = serialization.BestAvailableEncryption(password.encode())
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    @classmethod
    def from_pem(cls, pem: bytes, password: str | None) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(pem, password.encode() if password is not None else None)
        except TypeError as exc:
            if password is None or b"ENCRYPTED" in pem:  # cryptography treats b"" as no password
                raise WrongPassword("the key file is encrypted: give its password") from exc
            raise KeyFileError("the key file is not encrypted, but a password was given") from exc
        except ValueError as exc:
            if b"ENCRYPTED" in pem:
                raise WrongPassword("wrong password for the key file") from exc
            raise KeyFileError(f"not a PKCS#8 PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError("the key file holds a key that is not Ed25519")
        return cls(key)

    def __repr__(self) -> str:
        return f"PrivateKey(address={address_hex(self.address)})"


def write_key_file(path: Path, key: PrivateKey, password: str | None) -> None:
    """Write a PEM key file readable only by its owner, without ever leaving a partial file."""
    pem = key.to_pem(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_key_file(path: Path, password: str | None) -> PrivateKey:
    try:
        pem = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"no key file at {path}; create one with `aichain-node keys new`") from exc
    return PrivateKey.from_pem(pem, password)
