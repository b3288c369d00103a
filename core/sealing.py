"""Encryption of stored artifacts: content-key envelopes (HPKE) and per-chunk AES-256-GCM.

An artifact is encrypted under its own random 32-byte content key, chunk by chunk. The content
key reaches each reader in an *envelope*: the key sealed to the reader's X25519 public key with
HPKE base mode (RFC 9180), suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM.

    envelope = enc (32 bytes, the ephemeral public key) || AES-256-GCM(content key) (32 + 16 tag)

The HPKE functions follow RFC 9180 step by step and keep its names (LabeledExtract, Encap,
KeySchedule, ...), so that each line can be checked against the RFC. Only what the base mode
with a single message needs is here: no PSK or Auth modes, no secret export, sequence number 0.
AES-128-GCM is selectable only so that the RFC's published test vectors can be checked.

Everything here is a pure function of its arguments (plus the OS random generator where a key
is generated); nothing is read from or written to disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from core.errors import AichainError, KeyFileError
from core.hashing import HASH_SIZE

# --- errors ---------------------------------------------------------------------------------------


class EnvelopeInvalid(AichainError):
    """A content-key envelope that does not open: wrong size, wrong recipient key or altered bytes."""

    rpc_code = -32100


class ChunkDecryptionFailed(AichainError):
    """An encrypted chunk that does not decrypt for its content key, artifact and position."""

    rpc_code = -32101


# --- sizes and identifiers ------------------------------------------------------------------------

CONTENT_KEY_SIZE = 32
X25519_KEY_SIZE = 32
AEAD_TAG_SIZE = 16
AEAD_NONCE_SIZE = 12  # Nn of both AES-GCM AEADs
ENVELOPE_SIZE = X25519_KEY_SIZE + CONTENT_KEY_SIZE + AEAD_TAG_SIZE  # 80
ARTIFACT_ID_SIZE = HASH_SIZE
MAX_CHUNK_INDEX = 2**64 - 1  # the index is written as 8 bytes in the nonce and the AAD

DEFAULT_ENVELOPE_INFO = b"aichain content key v1"

# RFC 9180 §7: the algorithm identifiers of the suite.
KEM_DHKEM_X25519_HKDF_SHA256 = 0x0020
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_128_GCM = 0x0001
AEAD_AES_256_GCM = 0x0002

_AEAD_KEY_SIZES = {AEAD_AES_128_GCM: 16, AEAD_AES_256_GCM: 32}  # Nk per aead_id
_HASH_SIZE = 32  # Nh of HKDF-SHA256
_KEM_SECRET_SIZE = 32  # Nsecret of DHKEM(X25519, HKDF-SHA256)
_MODE_BASE = 0x00
_HPKE_VERSION_LABEL = b"HPKE-v1"


def i2osp(n: int, w: int) -> bytes:
    """I2OSP (RFC 8017): `n` as `w` bytes, big-endian."""
    return n.to_bytes(w, "big")


KEM_SUITE_ID = b"KEM" + i2osp(KEM_DHKEM_X25519_HKDF_SHA256, 2)


def hpke_suite_id(aead_id: int) -> bytes:
    """suite_id of the key schedule (RFC 9180 §5.1): "HPKE" || kem_id || kdf_id || aead_id."""
    return b"HPKE" + i2osp(KEM_DHKEM_X25519_HKDF_SHA256, 2) + i2osp(KDF_HKDF_SHA256, 2) + i2osp(aead_id, 2)


def _aead_key_size(aead_id: int) -> int:
    if aead_id not in _AEAD_KEY_SIZES:
        raise ValueError(f"aead_id {aead_id:#06x} is not supported: use 0x0001 (AES-128-GCM) or 0x0002 (AES-256-GCM)")
    return _AEAD_KEY_SIZES[aead_id]


# --- HKDF-SHA256 with RFC 9180 labels (§4) --------------------------------------------------------


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869): HMAC-SHA256 keyed with `salt`.

    An empty salt is the same as Nh zero bytes, because HMAC pads its key with zeros.
    """
    mac = crypto_hmac.HMAC(salt, hashes.SHA256())
    mac.update(ikm)
    return mac.finalize()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869): `length` bytes of output keying material from `prk`."""
    return HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(prk)


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    """LabeledExtract: Extract(salt, "HPKE-v1" || suite_id || label || ikm)."""
    return hkdf_extract(salt, _HPKE_VERSION_LABEL + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    """LabeledExpand: Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L)."""
    return hkdf_expand(prk, i2osp(length, 2) + _HPKE_VERSION_LABEL + suite_id + label + info, length)


# --- X25519 and DHKEM(X25519, HKDF-SHA256) (§4.1) -------------------------------------------------


def _private_key(raw: bytes, role: str) -> X25519PrivateKey:
    if len(raw) != X25519_KEY_SIZE:
        raise KeyFileError(f"the {role} X25519 private key is {len(raw)} bytes, expected {X25519_KEY_SIZE}")
    return X25519PrivateKey.from_private_bytes(raw)


def _public_key(raw: bytes, role: str) -> X25519PublicKey:
    if len(raw) != X25519_KEY_SIZE:
        raise KeyFileError(f"the {role} X25519 public key is {len(raw)} bytes, expected {X25519_KEY_SIZE}")
    return X25519PublicKey.from_public_bytes(raw)


def x25519_public(private_key: bytes) -> bytes:
    """The X25519 public key (32 raw bytes) of a 32-byte private key."""
    return _private_key(private_key, "given").public_key().public_bytes_raw()


def dh(private_key: X25519PrivateKey, public_key: X25519PublicKey) -> bytes | None:
    """X25519 Diffie-Hellman; None for an all-zero result.

    RFC 9180 §7.1.4 requires rejecting the all-zero output, which a small-order public key
    produces: it would make the shared secret independent of the private key. OpenSSL already
    refuses it (ValueError); the explicit check keeps the rule visible and backend-independent.
    """
    try:
        shared = private_key.exchange(public_key)
    except ValueError:
        return None
    return None if shared == bytes(len(shared)) else shared


def extract_and_expand(dh_output: bytes, kem_context: bytes) -> bytes:
    """ExtractAndExpand of DHKEM: the KEM shared secret from the DH output and the context."""
    eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh_output)
    return labeled_expand(KEM_SUITE_ID, eae_prk, b"shared_secret", kem_context, _KEM_SECRET_SIZE)


def encap(pk_r: bytes, ephemeral_private: bytes | None = None) -> tuple[bytes, bytes]:
    """Encap(pkR) -> (shared_secret, enc), with a fresh ephemeral key unless one is given.

    `ephemeral_private` exists for known-answer tests only: reusing an ephemeral key for two
    messages to the same recipient gives both the same key and nonce.
    """
    recipient = _public_key(pk_r, "recipient")
    if ephemeral_private is None:
        ephemeral = X25519PrivateKey.generate()
    else:
        ephemeral = _private_key(ephemeral_private, "ephemeral")
    dh_output = dh(ephemeral, recipient)
    if dh_output is None:
        raise KeyFileError(
            "the recipient X25519 public key is a low-order point and cannot receive envelopes; "
            "ask the recipient for their real public key"
        )
    enc = ephemeral.public_key().public_bytes_raw()
    return extract_and_expand(dh_output, enc + pk_r), enc


def decap(enc: bytes, sk_r: bytes) -> bytes:
    """Decap(enc, skR) -> shared_secret. Raises EnvelopeInvalid for an unusable `enc`."""
    recipient = _private_key(sk_r, "recipient")
    if len(enc) != X25519_KEY_SIZE:
        raise EnvelopeInvalid(f"the HPKE encapsulated key is {len(enc)} bytes, expected {X25519_KEY_SIZE}")
    dh_output = dh(recipient, X25519PublicKey.from_public_bytes(enc))
    if dh_output is None:
        raise EnvelopeInvalid(
            "the envelope's ephemeral key is a low-order point, so it was not made by an honest sender; "
            "ask the owner to seal the content key again"
        )
    pk_rm = recipient.public_key().public_bytes_raw()
    return extract_and_expand(dh_output, enc + pk_rm)


# --- key schedule (§5.1) --------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseContext:
    """The result of KeySchedule in mode_base, with its intermediate values for known-answer tests.

    Only `key` and `base_nonce` are used to encrypt; the rest are exposed so that tests can
    compare them with the RFC's vectors.
    """

    aead_id: int
    key_schedule_context: bytes
    secret: bytes
    key: bytes
    base_nonce: bytes
    exporter_secret: bytes

    def nonce(self, seq: int) -> bytes:
        """ComputeNonce(seq): base_nonce XOR I2OSP(seq, Nn)."""
        return bytes(a ^ b for a, b in zip(self.base_nonce, i2osp(seq, AEAD_NONCE_SIZE), strict=True))


def key_schedule_base(shared_secret: bytes, info: bytes, aead_id: int) -> BaseContext:
    """KeySchedule(mode_base, shared_secret, info, psk = "", psk_id = "")."""
    suite_id = hpke_suite_id(aead_id)
    psk_id_hash = labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(suite_id, b"", b"info_hash", info)
    key_schedule_context = i2osp(_MODE_BASE, 1) + psk_id_hash + info_hash
    secret = labeled_extract(suite_id, shared_secret, b"secret", b"")
    return BaseContext(
        aead_id=aead_id,
        key_schedule_context=key_schedule_context,
        secret=secret,
        key=labeled_expand(suite_id, secret, b"key", key_schedule_context, _aead_key_size(aead_id)),
        base_nonce=labeled_expand(suite_id, secret, b"base_nonce", key_schedule_context, AEAD_NONCE_SIZE),
        exporter_secret=labeled_expand(suite_id, secret, b"exp", key_schedule_context, _HASH_SIZE),
    )


def setup_base_s(
    pk_r: bytes, info: bytes, aead_id: int, ephemeral_private: bytes | None = None
) -> tuple[bytes, BaseContext]:
    """SetupBaseS(pkR, info) -> (enc, context) for the sender."""
    shared_secret, enc = encap(pk_r, ephemeral_private)
    return enc, key_schedule_base(shared_secret, info, aead_id)


def setup_base_r(enc: bytes, sk_r: bytes, info: bytes, aead_id: int) -> BaseContext:
    """SetupBaseR(enc, skR, info) -> context for the recipient."""
    return key_schedule_base(decap(enc, sk_r), info, aead_id)


# --- single-shot Seal / Open (§6.1) ---------------------------------------------------------------


def hpke_seal_base(
    pk_r: bytes,
    info: bytes,
    aad: bytes,
    plaintext: bytes,
    aead_id: int = AEAD_AES_256_GCM,
    ephemeral_private: bytes | None = None,
) -> tuple[bytes, bytes]:
    """SealBase(pkR, info, aad, pt) -> (enc, ct): one message, sequence number 0."""
    _aead_key_size(aead_id)  # reject an unknown AEAD before any key work
    enc, context = setup_base_s(pk_r, info, aead_id, ephemeral_private)
    return enc, AESGCM(context.key).encrypt(context.nonce(0), plaintext, aad)


def hpke_open_base(
    enc: bytes, sk_r: bytes, info: bytes, aad: bytes, ciphertext: bytes, aead_id: int = AEAD_AES_256_GCM
) -> bytes:
    """OpenBase(enc, skR, info, aad, ct) -> pt. Raises EnvelopeInvalid where the RFC raises OpenError."""
    _aead_key_size(aead_id)
    context = setup_base_r(enc, sk_r, info, aead_id)
    try:
        return AESGCM(context.key).decrypt(context.nonce(0), ciphertext, aad)
    except InvalidTag:
        raise EnvelopeInvalid(
            "the HPKE ciphertext does not open with this private key and info: it was sealed to another "
            "key or for another purpose, or its bytes were altered"
        ) from None


# --- content-key envelopes ------------------------------------------------------------------------


def new_content_key() -> bytes:
    """A fresh random content key. Every artifact gets its own; see encrypt_chunk."""
    return os.urandom(CONTENT_KEY_SIZE)


def seal_content_key(
    content_key: bytes,
    recipient_public: bytes,
    info: bytes = DEFAULT_ENVELOPE_INFO,
    *,
    ephemeral_private: bytes | None = None,
) -> bytes:
    """The 80-byte envelope of `content_key` for the holder of `recipient_public`.

    envelope = enc || ct, where (enc, ct) = SealBase(recipient_public, info, aad = "", content_key)
    with AES-256-GCM. `info` binds the envelope to its purpose: it opens only with the same info.
    `ephemeral_private` is for known-answer tests only; leave it None.
    """
    if len(content_key) != CONTENT_KEY_SIZE:
        raise ValueError(f"a content key is {CONTENT_KEY_SIZE} bytes, got {len(content_key)}")
    enc, ct = hpke_seal_base(recipient_public, info, b"", content_key, AEAD_AES_256_GCM, ephemeral_private)
    return enc + ct


def open_envelope(envelope: bytes, recipient_private: bytes, info: bytes = DEFAULT_ENVELOPE_INFO) -> bytes:
    """The content key inside `envelope`, or EnvelopeInvalid if it is malformed, altered or not ours."""
    if len(envelope) != ENVELOPE_SIZE:
        raise EnvelopeInvalid(
            f"a content-key envelope is {ENVELOPE_SIZE} bytes, this one is {len(envelope)}: it is truncated "
            "or not an envelope; fetch it again",
            size=len(envelope),
        )
    enc, ct = envelope[:X25519_KEY_SIZE], envelope[X25519_KEY_SIZE:]
    context = setup_base_r(enc, recipient_private, info, AEAD_AES_256_GCM)
    try:
        return AESGCM(context.key).decrypt(context.nonce(0), ct, b"")
    except InvalidTag:
        # AES-GCM cannot tell a wrong key from altered bytes, so the message names both causes.
        raise EnvelopeInvalid(
            "the content-key envelope does not open with this private key: it was sealed to another "
            "X25519 key (or with another info), or its bytes were altered; check that you use the key "
            "the envelope was sealed to, or ask the owner to seal the content key to you again"
        ) from None


# --- per-chunk encryption -------------------------------------------------------------------------


def _chunk_nonce(index: int) -> bytes:
    """4 zero bytes || index as 8 bytes big-endian: distinct for every chunk of one artifact."""
    return bytes(4) + i2osp(index, 8)


def _chunk_aad(artifact_id: bytes, index: int) -> bytes:
    """artifact_id || index as 8 bytes big-endian: ties a chunk to its artifact and position."""
    return artifact_id + i2osp(index, 8)


def _check_chunk_args(content_key: bytes, artifact_id: bytes, index: int) -> None:
    if len(content_key) != CONTENT_KEY_SIZE:
        raise ValueError(f"a content key is {CONTENT_KEY_SIZE} bytes, got {len(content_key)}")
    if len(artifact_id) != ARTIFACT_ID_SIZE:
        raise ValueError(f"an artifact id is a {ARTIFACT_ID_SIZE}-byte SHA-256, got {len(artifact_id)} bytes")
    if not 0 <= index <= MAX_CHUNK_INDEX:
        raise ValueError(f"chunk index {index} is outside 0..2**64-1")


def encrypt_chunk(content_key: bytes, artifact_id: bytes, index: int, plaintext: bytes) -> bytes:
    """AES-256-GCM of chunk `index` of an artifact: ciphertext || 16-byte tag.

    nonce = 4 zero bytes || index (8 bytes, big-endian)
    aad   = artifact_id (SHA-256 of the plaintext artifact, 32 bytes) || index (8 bytes, big-endian)

    The nonce is a counter, which is safe only because every artifact has its own random content
    key (new_content_key): a (key, nonce) pair is then never used for two different plaintexts.
    A content key must never be reused for another artifact or another version of one. The AAD
    makes a chunk fail to decrypt at any other position or under any other artifact id, so chunks
    cannot be reordered or spliced between artifacts that share a key.
    """
    _check_chunk_args(content_key, artifact_id, index)
    return AESGCM(content_key).encrypt(_chunk_nonce(index), plaintext, _chunk_aad(artifact_id, index))


def decrypt_chunk(content_key: bytes, artifact_id: bytes, index: int, ciphertext: bytes) -> bytes:
    """The plaintext of chunk `index`, or ChunkDecryptionFailed if the chunk does not authenticate."""
    _check_chunk_args(content_key, artifact_id, index)
    if len(ciphertext) < AEAD_TAG_SIZE:
        raise ChunkDecryptionFailed(
            f"chunk {index} of artifact {artifact_id.hex()} is {len(ciphertext)} bytes, shorter than its "
            f"{AEAD_TAG_SIZE}-byte tag: it is truncated; fetch it again",
            artifact=artifact_id.hex(),
            index=index,
        )
    try:
        return AESGCM(content_key).decrypt(_chunk_nonce(index), ciphertext, _chunk_aad(artifact_id, index))
    except InvalidTag:
        raise ChunkDecryptionFailed(
            f"chunk {index} of artifact {artifact_id.hex()} does not decrypt under this content key: the "
            "chunk is corrupt or belongs to another position or artifact, or the key is wrong; fetch the "
            "chunk again (from another peer) and check the envelope it was opened from",
            artifact=artifact_id.hex(),
            index=index,
        ) from None
