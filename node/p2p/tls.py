"""TLS 1.3 with a self-signed Ed25519 certificate per node, and the channel binding.

Rules:
- The certificate is made from the node key itself (subject CN = hex of the public key),
  self-signed, valid from yesterday for 100 years. Nobody CA-verifies it: the client uses
  `CERT_NONE` and no hostname check, the server asks for no client certificate. Identity
  is proven by the signed Hello that follows (handshake.py), not by the certificate.
- Both contexts accept TLS 1.3 only (Ed25519 certificates need it in OpenSSL 3).
- The channel binding is RFC 5929 `tls-server-end-point`: SHA-256 of the server
  certificate's DER. (RFC 5929 picks the hash from the certificate's signature algorithm;
  Ed25519 names none, so SHA-256 is used, as RFC 5929 prescribes for MD5/SHA-1.) The client
  computes it from the certificate it received, the server from its own: a relay that
  terminates TLS with its own certificate gives the two sides different bindings.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from core.hashing import sha256
from core.keys import PrivateKey
from node.p2p.errors import HandshakeError

CERT_VALID_DAYS = 36_500


def make_certificate(key: PrivateKey, *, valid_days: int = CERT_VALID_DAYS) -> x509.Certificate:
    """A self-signed X.509 certificate for the node key (Ed25519, no hash algorithm)."""
    signing_key = Ed25519PrivateKey.from_private_bytes(key.seed)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aichain-node"),
            x509.NameAttribute(NameOID.COMMON_NAME, key.public_key.hex()),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signing_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(signing_key, None)
    )


def channel_binding(cert_der: bytes) -> bytes:
    """RFC 5929 `tls-server-end-point` binding of a server certificate: SHA-256 of its DER."""
    return sha256(cert_der)


def peer_channel_binding(writer: asyncio.StreamWriter) -> bytes:
    """The binding as the client sees it: hash of the certificate the server presented."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        raise HandshakeError("the connection is not TLS")
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise HandshakeError("the server presented no certificate")
    return channel_binding(der)


def client_context() -> ssl.SSLContext:
    """TLS 1.3 only; the server certificate is not verified (the Hello proves identity)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """TLS 1.3 only, presenting `cert_pem`; no client certificate is requested.

    `ssl` loads certificates only from files, so the PEMs pass through a private temporary
    directory (mode 0700) that is removed at once.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_NONE
    with tempfile.TemporaryDirectory(prefix="aichain-tls-") as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_pem)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


@dataclass(frozen=True, slots=True)
class TLSIdentity:
    """A node's certificate and the two TLS contexts built from it."""

    cert_der: bytes
    cert_pem: bytes
    binding: bytes  # our own tls-server-end-point, used when we are the server
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext

    @classmethod
    def create(cls, key: PrivateKey) -> TLSIdentity:
        cert = make_certificate(key)
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        key_pem = key.to_pem(None)
        return cls(
            cert_der=cert_der,
            cert_pem=cert_pem,
            binding=channel_binding(cert_der),
            server_context=server_context(cert_pem, key_pem),
            client_context=client_context(),
        )
