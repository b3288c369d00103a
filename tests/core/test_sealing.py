"""Artifact sealing: HPKE content-key envelopes and per-chunk AES-256-GCM.

Known-answer tests use published vectors, copied exactly; each names its source. The property
tests then check the rules the known answers cannot: envelopes open only for their recipient and
only unaltered, and chunks decrypt only at their own position in their own artifact.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import AichainError, KeyFileError
from core.sealing import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    CONTENT_KEY_SIZE,
    DEFAULT_ENVELOPE_INFO,
    ENVELOPE_SIZE,
    ChunkDecryptionFailed,
    EnvelopeInvalid,
    decap,
    decrypt_chunk,
    encap,
    encrypt_chunk,
    hpke_open_base,
    hpke_seal_base,
    key_schedule_base,
    new_content_key,
    open_envelope,
    seal_content_key,
    x25519_public,
)

h = bytes.fromhex

# --- RFC 9180 Appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, mode_base ----
# Source: RFC 9180 §A.1.1 (https://www.rfc-editor.org/rfc/rfc9180#appendix-A.1.1), values as in
# Go's src/crypto/internal/hpke/testdata/rfc9180-vectors.json, which copies the appendix.

A11_INFO = h("4f6465206f6e2061204772656369616e2055726e")
A11_SK_EM = h("52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736")
A11_PK_EM = h("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
A11_SK_RM = h("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8")
A11_PK_RM = h("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d")
A11_ENC = h("37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431")
A11_SHARED_SECRET = h("fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc")
A11_KEY_SCHEDULE_CONTEXT = h(
    "00725611c9d98c07c03f60095cd32d400d8347d45ed67097bbad50fc56da742d07"
    "cb6cffde367bb0565ba28bb02c90744a20f5ef37f30523526106f637abb05449"
)
A11_SECRET = h("12fff91991e93b48de37e7daddb52981084bd8aa64289c3788471d9a9712f397")
A11_KEY = h("4531685d41d65f03dc48f6b8302c05b0")
A11_BASE_NONCE = h("56d890e5accaaf011cff4b7d")
A11_EXPORTER_SECRET = h("45ff1c2e220db587171952c0592d5f5ebe103f1561a2614e38f2ffd47e99e3f8")
# Encryption with sequence number 0.
A11_PT = h("4265617574792069732074727574682c20747275746820626561757479")
A11_AAD_0 = h("436f756e742d30")
A11_CT_0 = h("f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a")
# The nonces of later sequence numbers in the same appendix: base_nonce XOR seq.
A11_NONCES = {
    0: h("56d890e5accaaf011cff4b7d"),
    1: h("56d890e5accaaf011cff4b7c"),
    2: h("56d890e5accaaf011cff4b7f"),
    4: h("56d890e5accaaf011cff4b79"),
    255: h("56d890e5accaaf011cff4b82"),
    256: h("56d890e5accaaf011cff4a7d"),
}

# --- RFC 9180 test-vectors.json: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, mode 0 ------
# The production suite. Not printed in the RFC's appendix, but in the CFRG test-vectors.json
# published with it (github.com/cfrg/draft-irtf-cfrg-hpke); values as converted in BoringSSL's /
# aws-lc's crypto/hpke/hpke_test_vectors.txt (entry mode = 0, kem_id = 32, kdf_id = 1, aead_id = 2),
# encryptions[0].

V256_INFO = h("4f6465206f6e2061204772656369616e2055726e")
V256_SK_RM = h("497b4502664cfea5d5af0b39934dac72242a74f8480451e1aee7d6a53320333d")
V256_SK_EM = h("179d4b53b6365c45b600c4163b61d95cbc2f4d9e36f1695558dce265ab8bab11")
V256_PK_RM = h("430f4b9859665145a6b1ba274024487bd66f03a2dd577d7753c68d7d7d00c00c")
V256_PK_EM = h("6c93e09869df3402d7bf231bf540fadd35cd56be14f97178f0954db94b7fc256")
V256_AAD_0 = h("436f756e742d30")
V256_PT = h("4265617574792069732074727574682c20747275746820626561757479")
V256_CT_0 = h("e5d84cd531cfb583096e7cfa9641bd3079cf3a91cda813c52deb5f512be9931980a41de125a925cdad859d5b7a")


def test_rfc9180_a11_key_pairs_match() -> None:
    assert x25519_public(A11_SK_EM) == A11_PK_EM
    assert x25519_public(A11_SK_RM) == A11_PK_RM


def test_rfc9180_a11_encap_decap() -> None:
    shared_secret, enc = encap(A11_PK_RM, A11_SK_EM)
    assert enc == A11_ENC
    assert shared_secret == A11_SHARED_SECRET
    assert decap(A11_ENC, A11_SK_RM) == A11_SHARED_SECRET


def test_rfc9180_a11_key_schedule() -> None:
    context = key_schedule_base(A11_SHARED_SECRET, A11_INFO, AEAD_AES_128_GCM)
    assert context.key_schedule_context == A11_KEY_SCHEDULE_CONTEXT
    assert context.secret == A11_SECRET
    assert context.key == A11_KEY
    assert context.base_nonce == A11_BASE_NONCE
    assert context.exporter_secret == A11_EXPORTER_SECRET
    for seq, nonce in A11_NONCES.items():
        assert context.nonce(seq) == nonce


def test_rfc9180_a11_seal_and_open() -> None:
    enc, ct = hpke_seal_base(A11_PK_RM, A11_INFO, A11_AAD_0, A11_PT, AEAD_AES_128_GCM, A11_SK_EM)
    assert (enc, ct) == (A11_ENC, A11_CT_0)
    assert hpke_open_base(A11_ENC, A11_SK_RM, A11_INFO, A11_AAD_0, A11_CT_0, AEAD_AES_128_GCM) == A11_PT


def test_rfc9180_x25519_aes256gcm_seal_and_open() -> None:
    assert x25519_public(V256_SK_RM) == V256_PK_RM
    assert x25519_public(V256_SK_EM) == V256_PK_EM
    enc, ct = hpke_seal_base(V256_PK_RM, V256_INFO, V256_AAD_0, V256_PT, AEAD_AES_256_GCM, V256_SK_EM)
    assert (enc, ct) == (V256_PK_EM, V256_CT_0)
    assert hpke_open_base(V256_PK_EM, V256_SK_RM, V256_INFO, V256_AAD_0, V256_CT_0, AEAD_AES_256_GCM) == V256_PT


def test_vector_ciphertext_does_not_open_with_other_aad_or_suite() -> None:
    with pytest.raises(EnvelopeInvalid):
        hpke_open_base(V256_PK_EM, V256_SK_RM, V256_INFO, b"Count-1", V256_CT_0, AEAD_AES_256_GCM)
    with pytest.raises(EnvelopeInvalid):
        hpke_open_base(A11_ENC, A11_SK_RM, A11_INFO, A11_AAD_0, A11_CT_0, AEAD_AES_256_GCM)


def test_unknown_aead_id_is_refused() -> None:
    with pytest.raises(ValueError, match="aead_id"):
        hpke_seal_base(A11_PK_RM, A11_INFO, b"", b"", 0x0003)


# --- RFC 7748 §6.1: X25519 Diffie-Hellman -----------------------------------------------------------
# Source: RFC 7748 §6.1 (https://www.rfc-editor.org/rfc/rfc7748#section-6.1).

ALICE_PRIVATE = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
ALICE_BOB_SHARED = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def test_rfc7748_x25519_diffie_hellman() -> None:
    assert x25519_public(ALICE_PRIVATE) == ALICE_PUBLIC
    assert x25519_public(BOB_PRIVATE) == BOB_PUBLIC
    alice = X25519PrivateKey.from_private_bytes(ALICE_PRIVATE)
    bob = X25519PrivateKey.from_private_bytes(BOB_PRIVATE)
    assert alice.exchange(X25519PublicKey.from_public_bytes(BOB_PUBLIC)) == ALICE_BOB_SHARED
    assert bob.exchange(X25519PublicKey.from_public_bytes(ALICE_PUBLIC)) == ALICE_BOB_SHARED


# --- AES-256-GCM: McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Test Case 16 -------
# Source: the GCM specification submitted to NIST (gcm-spec.pdf, Appendix B, Test Case 16):
# 256-bit key, 96-bit IV, 20 bytes of AAD, 60 bytes of plaintext.

GCM16_KEY = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
GCM16_IV = h("cafebabefacedbaddecaf888")
GCM16_PT = h(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
GCM16_AAD = h("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM16_CT = h(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
)
GCM16_TAG = h("76fc6ece0f4e1768cddf8853bb2d551b")


def test_gcm_spec_test_case_16() -> None:
    # The same call encrypt_chunk and the HPKE AEAD make: ciphertext || tag, tag last.
    assert AESGCM(GCM16_KEY).encrypt(GCM16_IV, GCM16_PT, GCM16_AAD) == GCM16_CT + GCM16_TAG
    assert AESGCM(GCM16_KEY).decrypt(GCM16_IV, GCM16_CT + GCM16_TAG, GCM16_AAD) == GCM16_PT


# --- content-key envelopes ------------------------------------------------------------------------


def generate_x25519() -> tuple[bytes, bytes]:
    """A new random X25519 key pair as (private key, public key), 32 raw bytes each."""
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


RECIPIENT_PRIVATE, RECIPIENT_PUBLIC = generate_x25519()
OTHER_PRIVATE, _ = generate_x25519()
CONTENT_KEY = bytes(range(32))
ENVELOPE = seal_content_key(CONTENT_KEY, RECIPIENT_PUBLIC)

content_keys = st.binary(min_size=CONTENT_KEY_SIZE, max_size=CONTENT_KEY_SIZE)


def test_generated_key_pair_is_consistent() -> None:
    private, public = generate_x25519()
    assert len(private) == len(public) == 32
    assert x25519_public(private) == public


def test_envelope_is_enc_then_hpke_ciphertext() -> None:
    ephemeral, _ = generate_x25519()
    envelope = seal_content_key(CONTENT_KEY, RECIPIENT_PUBLIC, ephemeral_private=ephemeral)
    enc, ct = hpke_seal_base(RECIPIENT_PUBLIC, DEFAULT_ENVELOPE_INFO, b"", CONTENT_KEY, AEAD_AES_256_GCM, ephemeral)
    assert envelope == enc + ct
    assert enc == x25519_public(ephemeral)
    assert len(envelope) == ENVELOPE_SIZE == 80


def test_envelopes_use_a_fresh_ephemeral_key() -> None:
    first = seal_content_key(CONTENT_KEY, RECIPIENT_PUBLIC)
    second = seal_content_key(CONTENT_KEY, RECIPIENT_PUBLIC)
    assert first[:32] != second[:32]
    assert open_envelope(first, RECIPIENT_PRIVATE) == open_envelope(second, RECIPIENT_PRIVATE) == CONTENT_KEY


@settings(max_examples=50, deadline=None)
@given(content_keys)
def test_envelope_round_trip(content_key: bytes) -> None:
    envelope = seal_content_key(content_key, RECIPIENT_PUBLIC)
    assert len(envelope) == ENVELOPE_SIZE
    assert open_envelope(envelope, RECIPIENT_PRIVATE) == content_key


@settings(max_examples=25, deadline=None)
@given(content_keys)
def test_envelope_does_not_open_with_another_key(content_key: bytes) -> None:
    envelope = seal_content_key(content_key, RECIPIENT_PUBLIC)
    with pytest.raises(EnvelopeInvalid, match="does not open with this private key"):
        open_envelope(envelope, OTHER_PRIVATE)


def test_envelope_does_not_open_with_another_info() -> None:
    envelope = seal_content_key(CONTENT_KEY, RECIPIENT_PUBLIC, b"aichain something else v1")
    with pytest.raises(EnvelopeInvalid):
        open_envelope(envelope, RECIPIENT_PRIVATE)
    assert open_envelope(envelope, RECIPIENT_PRIVATE, b"aichain something else v1") == CONTENT_KEY


def test_every_single_bit_flip_of_an_envelope_is_detected() -> None:
    # All 640 bits, including the top bit of enc, which X25519 itself ignores (RFC 7748 §5):
    # enc also enters the KEM context, so the flip still changes the shared secret.
    for bit in range(ENVELOPE_SIZE * 8):
        flipped = bytearray(ENVELOPE)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(EnvelopeInvalid):
            open_envelope(bytes(flipped), RECIPIENT_PRIVATE)


@settings(max_examples=50, deadline=None)
@given(content_keys, st.integers(min_value=0, max_value=ENVELOPE_SIZE * 8 - 1))
def test_random_bit_flip_of_random_envelope_is_detected(content_key: bytes, bit: int) -> None:
    flipped = bytearray(seal_content_key(content_key, RECIPIENT_PUBLIC))
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(EnvelopeInvalid):
        open_envelope(bytes(flipped), RECIPIENT_PRIVATE)


@pytest.mark.parametrize("size", [0, 32, 79, 81, 160])
def test_envelope_of_wrong_length_is_invalid(size: int) -> None:
    envelope = (ENVELOPE * 2)[:size]
    with pytest.raises(EnvelopeInvalid, match=f"this one is {size}"):
        open_envelope(envelope, RECIPIENT_PRIVATE)


def test_envelope_with_low_order_ephemeral_key_is_invalid() -> None:
    # u = 0 is a point of small order: the DH output would be all zero (RFC 9180 §7.1.4).
    with pytest.raises(EnvelopeInvalid, match="low-order"):
        open_envelope(bytes(32) + ENVELOPE[32:], RECIPIENT_PRIVATE)


def test_sealing_to_a_low_order_or_malformed_public_key_is_refused() -> None:
    with pytest.raises(KeyFileError, match="low-order"):
        seal_content_key(CONTENT_KEY, bytes(32))
    with pytest.raises(KeyFileError, match="31 bytes"):
        seal_content_key(CONTENT_KEY, RECIPIENT_PUBLIC[:31])
    with pytest.raises(KeyFileError, match="33 bytes"):
        open_envelope(ENVELOPE, RECIPIENT_PRIVATE + b"\x00")


def test_only_32_byte_content_keys_are_sealed() -> None:
    with pytest.raises(ValueError, match="content key"):
        seal_content_key(CONTENT_KEY[:16], RECIPIENT_PUBLIC)


def test_new_content_keys_are_random_32_bytes() -> None:
    keys = {new_content_key() for _ in range(8)}
    assert len(keys) == 8
    assert all(len(key) == CONTENT_KEY_SIZE for key in keys)


# --- per-chunk encryption -------------------------------------------------------------------------

ARTIFACT_ID = hashlib.sha256(b"an artifact").digest()
OTHER_ARTIFACT_ID = hashlib.sha256(b"another artifact").digest()
chunk_indexes = st.integers(min_value=0, max_value=2**64 - 1)
chunks = st.binary(max_size=4096)


def test_chunk_nonce_and_aad_layout() -> None:
    # The rule written out by hand: nonce = 0^4 || index (8 bytes BE), aad = artifact_id || index.
    index = 0x0102030405060708
    nonce = bytes(4) + bytes.fromhex("0102030405060708")
    aad = ARTIFACT_ID + bytes.fromhex("0102030405060708")
    expected = AESGCM(CONTENT_KEY).encrypt(nonce, b"chunk bytes", aad)
    assert encrypt_chunk(CONTENT_KEY, ARTIFACT_ID, index, b"chunk bytes") == expected


@settings(max_examples=100, deadline=None)
@given(content_keys, chunk_indexes, chunks)
def test_chunk_round_trip(content_key: bytes, index: int, plaintext: bytes) -> None:
    ciphertext = encrypt_chunk(content_key, ARTIFACT_ID, index, plaintext)
    assert len(ciphertext) == len(plaintext) + 16
    assert decrypt_chunk(content_key, ARTIFACT_ID, index, ciphertext) == plaintext


@settings(max_examples=50, deadline=None)
@given(chunk_indexes, chunk_indexes, chunks)
def test_chunk_does_not_decrypt_at_another_index(index: int, other: int, plaintext: bytes) -> None:
    if index == other:
        other = (index + 1) % 2**64
    ciphertext = encrypt_chunk(CONTENT_KEY, ARTIFACT_ID, index, plaintext)
    with pytest.raises(ChunkDecryptionFailed, match=f"chunk {other} of artifact"):
        decrypt_chunk(CONTENT_KEY, ARTIFACT_ID, other, ciphertext)


@settings(max_examples=50, deadline=None)
@given(chunk_indexes, chunks)
def test_chunk_does_not_decrypt_for_another_artifact(index: int, plaintext: bytes) -> None:
    ciphertext = encrypt_chunk(CONTENT_KEY, ARTIFACT_ID, index, plaintext)
    with pytest.raises(ChunkDecryptionFailed):
        decrypt_chunk(CONTENT_KEY, OTHER_ARTIFACT_ID, index, ciphertext)


@settings(max_examples=50, deadline=None)
@given(chunk_indexes, chunks, content_keys)
def test_chunk_does_not_decrypt_under_another_key(index: int, plaintext: bytes, other_key: bytes) -> None:
    if other_key == CONTENT_KEY:
        other_key = bytes(32)
    ciphertext = encrypt_chunk(CONTENT_KEY, ARTIFACT_ID, index, plaintext)
    with pytest.raises(ChunkDecryptionFailed):
        decrypt_chunk(other_key, ARTIFACT_ID, index, ciphertext)


@settings(max_examples=100, deadline=None)
@given(chunk_indexes, chunks, st.data())
def test_chunk_bit_flip_is_detected(index: int, plaintext: bytes, data: st.DataObject) -> None:
    ciphertext = bytearray(encrypt_chunk(CONTENT_KEY, ARTIFACT_ID, index, plaintext))
    bit = data.draw(st.integers(min_value=0, max_value=len(ciphertext) * 8 - 1))
    ciphertext[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ChunkDecryptionFailed):
        decrypt_chunk(CONTENT_KEY, ARTIFACT_ID, index, bytes(ciphertext))


@pytest.mark.parametrize("size", [0, 1, 15])
def test_chunk_shorter_than_its_tag_is_refused(size: int) -> None:
    with pytest.raises(ChunkDecryptionFailed, match="truncated"):
        decrypt_chunk(CONTENT_KEY, ARTIFACT_ID, 0, bytes(size))


def test_truncated_chunk_is_refused() -> None:
    ciphertext = encrypt_chunk(CONTENT_KEY, ARTIFACT_ID, 3, b"x" * 100)
    with pytest.raises(ChunkDecryptionFailed):
        decrypt_chunk(CONTENT_KEY, ARTIFACT_ID, 3, ciphertext[:-1])


def test_chunk_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="content key"):
        encrypt_chunk(CONTENT_KEY[:16], ARTIFACT_ID, 0, b"")
    with pytest.raises(ValueError, match="artifact id"):
        encrypt_chunk(CONTENT_KEY, ARTIFACT_ID[:20], 0, b"")
    for index in (-1, 2**64):
        with pytest.raises(ValueError, match="index"):
            encrypt_chunk(CONTENT_KEY, ARTIFACT_ID, index, b"")


def test_chunk_error_carries_artifact_and_index() -> None:
    ciphertext = encrypt_chunk(CONTENT_KEY, ARTIFACT_ID, 5, b"payload")
    with pytest.raises(ChunkDecryptionFailed) as caught:
        decrypt_chunk(CONTENT_KEY, ARTIFACT_ID, 6, ciphertext)
    assert caught.value.data == {"artifact": ARTIFACT_ID.hex(), "index": 6}


# --- errors ---------------------------------------------------------------------------------------


def test_error_types_and_codes() -> None:
    assert issubclass(EnvelopeInvalid, AichainError)
    assert issubclass(ChunkDecryptionFailed, AichainError)
    assert EnvelopeInvalid.rpc_code == -32100
    assert ChunkDecryptionFailed.rpc_code == -32101
