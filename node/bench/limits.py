"""The machine's own limits, measured in the same run as a benchmark so that ratios mean something."""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.keys import DOMAIN_TX, PrivateKey, verify


def _rate(fn: Callable[[], object], count: int, repeats: int = 3) -> float:
    """Median operations per second of `fn()` (which performs `count` operations) over `repeats` runs."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def ed25519_verifications_per_s(count: int = 4000) -> float:
    """One core, libsodium (the verifier the node uses), on transaction-sized messages."""
    key = PrivateKey.generate()
    payload = os.urandom(150)
    sig = key.sign(DOMAIN_TX, 1, payload)
    public = key.public_key

    def run() -> None:
        for _ in range(count):
            verify(public, sig, DOMAIN_TX, 1, payload)

    return _rate(run, count)


def ed25519_openssl_verifications_per_s(count: int = 2000) -> float:
    """One core, OpenSSL through `cryptography`, for comparison."""
    key = PrivateKey.generate()
    message = os.urandom(150)
    sig = key._key.sign(message)
    public = Ed25519PublicKey.from_public_bytes(key.public_key)

    def run() -> None:
        for _ in range(count):
            public.verify(sig, message)

    return _rate(run, count)


def sha256_small_per_s(count: int = 200_000) -> float:
    """SHA-256 of 64-byte inputs per second (the size of tree nodes' typical input), one core."""
    data = os.urandom(64)
    sha = hashlib.sha256

    def run() -> None:
        for _ in range(count):
            sha(data).digest()

    return _rate(run, count)
