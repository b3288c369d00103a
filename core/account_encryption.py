"""An account's X25519 encryption key, derived from its signing key, and content-key envelopes.

Licensees receive content keys sealed to an X25519 key they published on chain (the keys
system contract). Rather than a second key file to lose, that key is derived from the
account's Ed25519 seed: X25519 private = HKDF-SHA256(seed, info "aichain/x25519/v1"). The
derivation is one-way, so the published X25519 key reveals nothing of the signing key, and
the two keys never sign or open each other's messages.

An envelope for an artifact is sealed with the info `aichain content key v1 || artifact id`,
so an envelope opens only for the artifact it was made for.
"""

from __future__ import annotations

from core.keys import PrivateKey
from core.sealing import (
    DEFAULT_ENVELOPE_INFO,
    hkdf_expand,
    hkdf_extract,
    open_envelope,
    seal_content_key,
    x25519_public,
)

DERIVATION_INFO = b"aichain/x25519/v1"


def encryption_private_key(account: PrivateKey) -> bytes:
    """The account's X25519 private key (32 bytes), derived from its signing seed."""
    return hkdf_expand(hkdf_extract(b"", account.seed), DERIVATION_INFO, 32)


def encryption_public_key(account: PrivateKey) -> bytes:
    """What the account publishes with keys.publish_key: the X25519 public key of `encryption_private_key`."""
    return x25519_public(encryption_private_key(account))


def envelope_info(artifact: bytes) -> bytes:
    return DEFAULT_ENVELOPE_INFO + artifact


def seal_for(content_key: bytes, artifact: bytes, recipient_public: bytes) -> bytes:
    """The envelope of an artifact's content key for the holder of `recipient_public`."""
    return seal_content_key(content_key, recipient_public, envelope_info(artifact))


def open_for(envelope: bytes, artifact: bytes, account: PrivateKey) -> bytes:
    """The content key inside an envelope sealed to `account`'s encryption key (EnvelopeInvalid otherwise)."""
    return open_envelope(envelope, encryption_private_key(account), envelope_info(artifact))
