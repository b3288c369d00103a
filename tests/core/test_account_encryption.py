"""An account's X25519 encryption key (derived from its Ed25519 seed) and per-artifact content-key envelopes.

The derivation is checked against an independent HKDF-SHA256 from `cryptography`; the envelope rules
are that an envelope opens only for the artifact id it was sealed for and only for its recipient.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.account_encryption import (
    DERIVATION_INFO,
    encryption_private_key,
    encryption_public_key,
    envelope_info,
    open_for,
    seal_for,
)
from core.keys import PrivateKey
from core.sealing import DEFAULT_ENVELOPE_INFO, ENVELOPE_SIZE, EnvelopeInvalid, open_envelope, seal_content_key

CONTENT_KEY = bytes(range(32))
ARTIFACT = hashlib.sha256(b"model weights v1").digest()
OTHER_ARTIFACT = hashlib.sha256(b"model weights v2").digest()


def account(n: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([n]) * 32)


# --- the derived key ------------------------------------------------------------------------------


def test_derived_private_key_is_hkdf_sha256_of_the_seed_with_the_documented_info() -> None:
    a = account(1)
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"aichain/x25519/v1").derive(a.seed)
    assert DERIVATION_INFO == b"aichain/x25519/v1"
    assert encryption_private_key(a) == expected


def test_derived_key_is_deterministic_per_account() -> None:
    assert encryption_private_key(account(1)) == encryption_private_key(account(1))
    assert encryption_public_key(account(1)) == encryption_public_key(account(1))
    assert len(encryption_private_key(account(1))) == 32
    assert len(encryption_public_key(account(1))) == 32


def test_derived_keys_differ_across_accounts() -> None:
    assert encryption_private_key(account(1)) != encryption_private_key(account(2))
    assert encryption_public_key(account(1)) != encryption_public_key(account(2))
    assert encryption_public_key(PrivateKey.generate()) != encryption_public_key(PrivateKey.generate())


def test_public_key_is_the_x25519_public_key_of_the_derived_private_key() -> None:
    a = account(3)
    private = X25519PrivateKey.from_private_bytes(encryption_private_key(a))
    assert encryption_public_key(a) == private.public_key().public_bytes_raw()


def test_encryption_keys_are_neither_the_signing_seed_nor_the_signing_public_key() -> None:
    a = account(4)
    assert encryption_private_key(a) != a.seed
    assert encryption_public_key(a) != a.public_key
    assert a.seed not in encryption_public_key(a) + encryption_private_key(a)
    # Nor is it the X25519 key one would get by using the Ed25519 seed directly as an X25519 scalar.
    assert encryption_public_key(a) != X25519PrivateKey.from_private_bytes(a.seed).public_key().public_bytes_raw()


# --- envelopes ------------------------------------------------------------------------------------


def test_envelope_info_is_the_default_info_followed_by_the_artifact_id() -> None:
    assert envelope_info(ARTIFACT) == DEFAULT_ENVELOPE_INFO + ARTIFACT
    assert envelope_info(ARTIFACT) != envelope_info(OTHER_ARTIFACT)


def test_seal_for_then_open_for_returns_the_content_key() -> None:
    recipient = account(5)
    envelope = seal_for(CONTENT_KEY, ARTIFACT, encryption_public_key(recipient))
    assert len(envelope) == ENVELOPE_SIZE
    assert open_for(envelope, ARTIFACT, recipient) == CONTENT_KEY


def test_seal_for_uses_a_fresh_ephemeral_key_each_time() -> None:
    public = encryption_public_key(account(5))
    first, second = seal_for(CONTENT_KEY, ARTIFACT, public), seal_for(CONTENT_KEY, ARTIFACT, public)
    assert first != second
    assert open_for(first, ARTIFACT, account(5)) == open_for(second, ARTIFACT, account(5)) == CONTENT_KEY


def test_envelope_opens_with_the_derived_private_key_and_the_artifact_info() -> None:
    recipient = account(6)
    envelope = seal_for(CONTENT_KEY, ARTIFACT, encryption_public_key(recipient))
    assert open_envelope(envelope, encryption_private_key(recipient), DEFAULT_ENVELOPE_INFO + ARTIFACT) == CONTENT_KEY


def test_envelope_does_not_open_for_another_artifact() -> None:
    recipient = account(7)
    envelope = seal_for(CONTENT_KEY, ARTIFACT, encryption_public_key(recipient))
    with pytest.raises(EnvelopeInvalid):
        open_for(envelope, OTHER_ARTIFACT, recipient)
    with pytest.raises(EnvelopeInvalid):
        open_for(envelope, ARTIFACT[:-1], recipient)


def test_envelope_does_not_open_for_another_account() -> None:
    envelope = seal_for(CONTENT_KEY, ARTIFACT, encryption_public_key(account(8)))
    with pytest.raises(EnvelopeInvalid):
        open_for(envelope, ARTIFACT, account(9))


def test_envelope_sealed_to_the_signing_public_key_bytes_does_not_open_for_the_account() -> None:
    # The Ed25519 public key bytes read as an X25519 key are another key: the account cannot open it.
    a = account(10)
    envelope = seal_for(CONTENT_KEY, ARTIFACT, a.public_key)
    with pytest.raises(EnvelopeInvalid):
        open_for(envelope, ARTIFACT, a)


def test_envelope_sealed_without_the_artifact_id_does_not_open_for_the_artifact() -> None:
    recipient = account(11)
    envelope = seal_content_key(CONTENT_KEY, encryption_public_key(recipient))  # the bare default info
    with pytest.raises(EnvelopeInvalid):
        open_for(envelope, ARTIFACT, recipient)


def test_altered_envelope_does_not_open() -> None:
    recipient = account(12)
    envelope = bytearray(seal_for(CONTENT_KEY, ARTIFACT, encryption_public_key(recipient)))
    for position in (0, 31, 32, ENVELOPE_SIZE - 1):
        altered = bytearray(envelope)
        altered[position] ^= 0x01
        with pytest.raises(EnvelopeInvalid):
            open_for(bytes(altered), ARTIFACT, recipient)
    with pytest.raises(EnvelopeInvalid):
        open_for(bytes(envelope[:-1]), ARTIFACT, recipient)
