"""Signed reads of private plaintext (core.read_request): one signature covers one request, on one chain."""

from __future__ import annotations

import base64
import os

import pytest

from core import codec
from core.keys import PrivateKey
from core.read_request import SCHEME, ReadRequestInvalid, parse_read, sign_read

KEY = PrivateKey.from_seed(b"\x05" * 32)
ART = b"\x42" * 32
PATH = "/artifacts/sha256:" + ART.hex()


def signed(**changes: object) -> str:
    fields: dict[str, object] = {"model": "m", "version": 1, "method": "GET", "path": PATH, "range_header": "",
                                 "timestamp_ms": 1_000, "nonce": b"\x01" * 16}  # fmt: skip
    fields.update(changes)
    return sign_read(KEY, 7, ART, **fields).header()  # type: ignore[arg-type]


def test_a_signed_read_verifies_for_its_own_request_only() -> None:
    header = signed(range_header="bytes=0-9")
    read = parse_read(header, ART, "GET", PATH, "bytes=0-9")
    assert read.verifies(7) and read.account == KEY.address
    assert read.request.model == "m" and read.request.version == 1 and read.request.timestamp_ms == 1_000
    others = {
        "another chain": (parse_read(header, ART, "GET", PATH, "bytes=0-9"), 8),
        "another artifact": (parse_read(header, b"\x43" * 32, "GET", PATH, "bytes=0-9"), 7),
        "another method": (parse_read(header, ART, "HEAD", PATH, "bytes=0-9"), 7),
        "another path": (parse_read(header, ART, "GET", PATH + "/files/a", "bytes=0-9"), 7),
        "another range": (parse_read(header, ART, "GET", PATH, "bytes=0-"), 7),
        "no range": (parse_read(header, ART, "GET", PATH, ""), 7),
    }
    for what, (other, chain) in others.items():
        assert not other.verifies(chain), what


def test_the_token_names_what_it_relies_on_and_a_changed_field_breaks_the_signature() -> None:
    header = signed()
    fields = codec.decode(base64.b64decode(header.split(" ", 1)[1]))
    for index, value in ((1, "other"), (2, 2), (3, 1_001), (4, b"\x02" * 16)):  # model, version, time, nonce
        changed = list(fields)
        changed[index] = value
        forged = f"{SCHEME} {base64.b64encode(codec.encode(changed)).decode()}"
        assert not parse_read(forged, ART, "GET", PATH, "").verifies(7)
    stranger = PrivateKey.generate()
    changed = list(fields)
    changed[0] = stranger.public_key  # someone else's key beside this signature
    assert not parse_read(f"{SCHEME} {base64.b64encode(codec.encode(changed)).decode()}", ART, "GET", PATH,
                          "").verifies(7)  # fmt: skip


@pytest.mark.parametrize("header", [
    "Bearer abc", f"{SCHEME}", f"{SCHEME} !!!", f"{SCHEME} " + "A" * 2000,
    f"{SCHEME} " + base64.b64encode(b"\xc1").decode(),  # not msgpack
    f"{SCHEME} " + base64.b64encode(codec.encode([1, 2, 3])).decode(),  # the wrong shape
    f"{SCHEME} " + base64.b64encode(codec.encode([b"k" * 31, "m", 1, 1, b"n" * 16, b"s" * 64])).decode(),
    f"{SCHEME} " + base64.b64encode(codec.encode([b"k" * 32, "m" * 65, 1, 1, b"n" * 16, b"s" * 64])).decode(),
    f"{SCHEME} " + base64.b64encode(codec.encode([b"k" * 32, "m", -1, 1, b"n" * 16, b"s" * 64])).decode(),
    f"{SCHEME} " + base64.b64encode(codec.encode([b"k" * 32, "m", 1, 1, b"n" * 15, b"s" * 64])).decode(),
    f"{SCHEME} " + base64.b64encode(os.urandom(200)).decode(),
])  # fmt: skip
def test_malformed_headers_are_refused_with_a_reason(header: str) -> None:
    with pytest.raises(ReadRequestInvalid, match=SCHEME):
        parse_read(header, ART, "GET", PATH, "")
