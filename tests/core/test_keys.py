"""Ed25519 keys: domain-separated signatures, addresses and PKCS#8 PEM key files."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from core.block import Vote, VoteType
from core.errors import InvalidAddress, KeyFileError, WrongPassword
from core.keys import (
    ADDRESS_SIZE,
    DOMAIN_HANDSHAKE,
    DOMAIN_PROPOSAL,
    DOMAIN_TX,
    DOMAIN_VOTE,
    PrivateKey,
    address_hex,
    address_of,
    parse_address,
    read_key_file,
    signing_message,
    verify,
    write_key_file,
)
from core.transaction import Transaction, TxKind

CHAIN = 7777
DOMAINS = [DOMAIN_TX, DOMAIN_VOTE, DOMAIN_PROPOSAL, DOMAIN_HANDSHAKE]
OPENSSL = shutil.which("openssl")


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


def signed_tx(k: PrivateKey, chain_id: int = CHAIN, **overrides: Any) -> Transaction:
    fields: dict[str, Any] = dict(
        chain_id=chain_id,
        sender=b"",
        nonce=3,
        gas_limit=21_000,
        gas_price=2,
        kind=int(TxKind.TRANSFER),
        to=key(99).address,
        value=12345,
        data=b"memo",
    )
    fields.update(overrides)
    return Transaction(**fields).signed_by(k)


# --- keys -----------------------------------------------------------------------------------------


def test_from_seed_is_deterministic() -> None:
    a, b = key(1), key(1)
    assert a.public_key == b.public_key and a.address == b.address
    assert a.seed == bytes([1]) * 32
    assert key(2).public_key != a.public_key
    assert len(a.public_key) == 32
    assert a.address == address_of(a.public_key)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_seed_must_be_32_bytes(seed: bytes) -> None:
    with pytest.raises(KeyFileError):
        PrivateKey.from_seed(seed)


def test_repr_does_not_leak_the_seed() -> None:
    k = key(1)
    text = repr(k)
    assert k.seed.hex() not in text
    assert address_hex(k.address) in text


def test_generate_gives_distinct_keys() -> None:
    assert PrivateKey.generate().public_key != PrivateKey.generate().public_key


# --- signatures -----------------------------------------------------------------------------------


def test_signing_message_layout() -> None:
    assert signing_message(b"dom", 258, b"payload") == b"dom\x00" + (258).to_bytes(8, "big") + b"payload"


def test_sign_and_verify() -> None:
    k = key(1)
    sig = k.sign(DOMAIN_TX, CHAIN, b"hello")
    assert len(sig) == 64
    assert verify(k.public_key, sig, DOMAIN_TX, CHAIN, b"hello")
    assert not verify(k.public_key, sig, DOMAIN_TX, CHAIN, b"hellO")
    assert not verify(key(2).public_key, sig, DOMAIN_TX, CHAIN, b"hello")
    assert not verify(k.public_key, sig, DOMAIN_TX, CHAIN + 1, b"hello")  # signed for one chain only


@pytest.mark.parametrize(("public_key", "signature"), [(bytes(31), bytes(64)), (bytes(32), bytes(63)), (b"", b"")])
def test_verify_rejects_wrong_sizes(public_key: bytes, signature: bytes) -> None:
    assert not verify(public_key, signature, DOMAIN_TX, CHAIN, b"x")


def test_verify_rejects_garbage_keys_and_signatures() -> None:
    k = key(1)
    sig = k.sign(DOMAIN_TX, CHAIN, b"x")
    assert not verify(bytes(32), sig, DOMAIN_TX, CHAIN, b"x")  # small-order key
    assert not verify(b"\xff" * 32, sig, DOMAIN_TX, CHAIN, b"x")  # not a curve point
    assert not verify(k.public_key, bytes(64), DOMAIN_TX, CHAIN, b"x")
    # a non-canonical S (S + L) must not verify (no malleability)
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little")
    malleated = sig[:32] + (s + order).to_bytes(32, "little")
    assert not verify(k.public_key, malleated, DOMAIN_TX, CHAIN, b"x")


@settings(max_examples=60)
@given(
    st.sampled_from(DOMAINS),
    st.sampled_from(DOMAINS),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.binary(max_size=64),
    st.binary(max_size=64),
)
def test_signature_verifies_only_for_its_domain_chain_and_payload(
    d1: bytes, d2: bytes, c1: int, c2: int, p1: bytes, p2: bytes
) -> None:
    k = key(5)
    sig = k.sign(d1, c1, p1)
    assert verify(k.public_key, sig, d2, c2, p2) == ((d1, c1, p1) == (d2, c2, p2))


def test_tx_signature_never_verifies_as_a_vote_or_on_another_chain() -> None:
    k = key(1)
    tx = signed_tx(k)
    assert tx.signature_valid()
    payload = tx.signing_payload()
    for domain in (DOMAIN_VOTE, DOMAIN_PROPOSAL, DOMAIN_HANDSHAKE):
        assert not verify(k.public_key, tx.signature, domain, CHAIN, payload)
    for chain in (0, CHAIN - 1, CHAIN + 1, 2**64 - 1):
        assert not verify(k.public_key, tx.signature, DOMAIN_TX, chain, payload)
    # the same transaction body on another chain id has another payload and signature
    other = signed_tx(k, chain_id=CHAIN + 1)
    assert other.signature != tx.signature
    moved = dataclasses.replace(tx, chain_id=CHAIN + 1)
    assert not moved.signature_valid()


def test_vote_signature_never_verifies_as_a_tx_or_on_another_chain() -> None:
    k = key(1)
    vote = Vote(VoteType.PRECOMMIT, 5, 0, bytes(32), k.address).signed_by(k, CHAIN)
    assert vote.verify(k.public_key, CHAIN)
    assert not vote.verify(k.public_key, CHAIN + 1)
    assert not verify(k.public_key, vote.signature, DOMAIN_TX, CHAIN, vote.signing_payload())
    assert not dataclasses.replace(vote, vote_type=VoteType.PREVOTE).verify(k.public_key, CHAIN)
    assert not dataclasses.replace(vote, round=1).verify(k.public_key, CHAIN)
    assert not dataclasses.replace(vote, height=6).verify(k.public_key, CHAIN)
    assert not dataclasses.replace(vote, block_hash=b"").verify(k.public_key, CHAIN)


# --- addresses ------------------------------------------------------------------------------------


def test_address_is_last_20_bytes_of_sha256() -> None:
    k = key(3)
    assert k.address == hashlib.sha256(k.public_key).digest()[-20:]
    assert len(k.address) == ADDRESS_SIZE


def test_address_hex_format() -> None:
    address = bytes(range(20))
    text = address_hex(address)
    assert text == "0x000102030405060708090a0b0c0d0e0f10111213"
    assert text == text.lower() and len(text) == 42


@settings(max_examples=100)
@given(st.binary(min_size=20, max_size=20))
def test_address_round_trip(address: bytes) -> None:
    text = address_hex(address)
    assert parse_address(text) == address
    assert parse_address(text.upper().replace("0X", "0x")) == address
    assert parse_address("0X" + text[2:]) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        "00" * 20,  # no prefix
        "0x" + "00" * 19,  # too short
        "0x" + "00" * 21,  # too long
        "0x" + "0" * 39,  # odd length
        "0x" + "zz" * 20,  # not hex
        "0x" + "00" * 19 + "0g",
        " 0x" + "00" * 20,
        "0x" + "00" * 20 + " ",
        "0x" + "00" * 19 + "  ",  # whitespace instead of the last byte
        "0x" + "00 " * 13 + "0",  # whitespace between bytes
        "0x" + "00" * 19 + "\t\n",
        "1x" + "00" * 20,
        "0x" + "٠٠" * 20,  # non-ASCII digits
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(text)


@pytest.mark.parametrize("value", [None, 5, b"0x" + b"00" * 20])
def test_parse_address_rejects_non_strings(value: Any) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(value)


@settings(max_examples=200)
@given(st.text(max_size=44))
def test_parse_address_returns_20_bytes_or_raises(text: str) -> None:
    try:
        address = parse_address(text)
    except InvalidAddress:
        return
    assert len(address) == ADDRESS_SIZE
    assert address_hex(address) == text.lower()


# --- key files ------------------------------------------------------------------------------------


def test_pem_round_trip_encrypted() -> None:
    k = key(1)
    pem = k.to_pem("correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert k.seed not in pem
    loaded = PrivateKey.from_pem(pem, "correct horse")
    assert loaded.seed == k.seed and loaded.public_key == k.public_key


def test_pem_round_trip_unencrypted() -> None:
    k = key(2)
    pem = k.to_pem(None)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert PrivateKey.from_pem(pem, None).seed == k.seed


def test_pem_round_trip_unicode_password() -> None:
    k = key(3)
    assert PrivateKey.from_pem(k.to_pem("pässwörd ✓"), "pässwörd ✓").seed == k.seed


def test_encrypted_pem_is_salted() -> None:
    k = key(1)
    assert k.to_pem("pw") != k.to_pem("pw")


def test_wrong_password() -> None:
    pem = key(1).to_pem("right")
    with pytest.raises(WrongPassword):
        PrivateKey.from_pem(pem, "wrong")
    with pytest.raises(WrongPassword):
        PrivateKey.from_pem(pem, "")
    with pytest.raises(WrongPassword):
        PrivateKey.from_pem(pem, None)


def test_password_for_an_unencrypted_file() -> None:
    with pytest.raises(KeyFileError) as info:
        PrivateKey.from_pem(key(1).to_pem(None), "pw")
    assert not isinstance(info.value, WrongPassword)


@pytest.mark.parametrize("pem", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_not_a_pem(pem: bytes) -> None:
    with pytest.raises(KeyFileError):
        PrivateKey.from_pem(pem, None)


def test_a_key_that_is_not_ed25519() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFileError, match="Ed25519"):
        PrivateKey.from_pem(pem, None)


def test_key_file_write_and_read(tmp_path: Path) -> None:
    k = key(4)
    path = tmp_path / "sub" / "validator.pem"
    write_key_file(path, k, "pw")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["validator.pem"]  # no temp file left
    assert read_key_file(path, "pw").seed == k.seed
    with pytest.raises(WrongPassword):
        read_key_file(path, "nope")
    # overwrite in place
    write_key_file(path, key(5), None)
    assert read_key_file(path, None).seed == key(5).seed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_empty_password_is_refused_without_leaving_a_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="empty"):
        key(1).to_pem("")
    path = tmp_path / "k.pem"
    with pytest.raises(KeyFileError):
        write_key_file(path, key(1), "")
    assert list(tmp_path.iterdir()) == []


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no key file"):
        read_key_file(tmp_path / "absent.pem", "pw")


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=30, env={**os.environ})


def test_pem_is_openssl_compatible(tmp_path: Path) -> None:
    k = key(6)
    enc = tmp_path / "enc.pem"
    plain = tmp_path / "plain.pem"
    write_key_file(enc, k, "s3cret")
    write_key_file(plain, k, None)
    # our own reader accepts both in any case
    assert read_key_file(enc, "s3cret").seed == k.seed
    assert read_key_file(plain, None).seed == k.seed
    if OPENSSL is None:
        return
    assert _openssl("pkey", "-in", str(enc), "-passin", "pass:s3cret", "-noout").returncode == 0
    assert _openssl("pkey", "-in", str(enc), "-passin", "pass:wrong", "-noout").returncode != 0
    assert _openssl("pkey", "-in", str(plain), "-noout").returncode == 0
    # openssl derives the same public key
    out = _openssl(
        "pkey",
        "-in",
        str(enc),
        "-passin",
        "pass:s3cret",
        "-pubout",
        "-outform",
        "DER",
        "-out",
        str(tmp_path / "pub.der"),
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pub.der").read_bytes()[-32:] == k.public_key
    # and a key that openssl made and encrypted loads here
    made = tmp_path / "openssl.pem"
    out = _openssl("genpkey", "-algorithm", "ed25519", "-aes-256-cbc", "-pass", "pass:pw2", "-out", str(made))
    assert out.returncode == 0, out.stderr
    loaded = read_key_file(made, "pw2")
    with pytest.raises(WrongPassword):
        read_key_file(made, "pw3")
    assert len(loaded.public_key) == 32
