"""Signed reads of private plaintext (core.read_request): one signature covers one request, at one node, on one
chain."""

from __future__ import annotations

import base64
import os

import pytest

from core import codec
from core.keys import PrivateKey
from core.read_request import DOMAIN_READ, SCHEME, ReadRequestInvalid, parse_node_key, parse_read, sign_read

KEY = PrivateKey.from_seed(b"\x05" * 32)
NODE_A, NODE_B = b"\xaa" * 32, b"\xbb" * 32  # two nodes' keys
ART = b"\x42" * 32
PATH = "/artifacts/sha256:" + ART.hex()


def signed(**changes: object) -> str:
    fields: dict[str, object] = {
        "model": "m",
        "version": 1,
        "method": "GET",
        "path": PATH,
        "range_header": "",
        "audience": NODE_A,
        "timestamp_ms": 1_000,
        "nonce": b"\x01" * 16,
    }
    fields.update(changes)
    return sign_read(KEY, 7, ART, **fields).header()  # type: ignore[arg-type]


def test_a_signed_read_verifies_for_its_own_request_only() -> None:
    header = signed(range_header="bytes=0-9")
    read = parse_read(header, ART, "GET", PATH, "bytes=0-9")
    assert read.verifies(7) and read.account == KEY.address and read.request.audience == NODE_A
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
    assert fields[1] == NODE_A  # the node it is for travels in the token, and is signed
    for index, value in ((1, NODE_B), (2, "other"), (3, 2), (4, 1_001), (5, b"\x02" * 16)):  # audience, model, …
        changed = list(fields)
        changed[index] = value
        forged = f"{SCHEME} {base64.b64encode(codec.encode(changed)).decode()}"
        assert not parse_read(forged, ART, "GET", PATH, "").verifies(7)
    stranger = PrivateKey.generate()
    changed = list(fields)
    changed[0] = stranger.public_key  # someone else's key beside this signature
    assert not parse_read(
        f"{SCHEME} {base64.b64encode(codec.encode(changed)).decode()}", ART, "GET", PATH, ""
    ).verifies(7)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        f"{SCHEME}",
        f"{SCHEME} !!!",
        f"{SCHEME} " + "A" * 2000,
        f"{SCHEME} " + base64.b64encode(b"\xc1").decode(),  # not msgpack
        f"{SCHEME} " + base64.b64encode(codec.encode([1, 2, 3])).decode(),  # the wrong shape
        f"{SCHEME} " + base64.b64encode(codec.encode([b"k" * 31, NODE_A, "m", 1, 1, b"n" * 16, b"s" * 64])).decode(),
        f"{SCHEME} " + base64.b64encode(codec.encode([b"k" * 32, b"a" * 31, "m", 1, 1, b"n" * 16, b"s" * 64])).decode(),
        f"{SCHEME} " + base64.b64encode(codec.encode([b"k" * 32, "node", "m", 1, 1, b"n" * 16, b"s" * 64])).decode(),
        f"{SCHEME} "
        + base64.b64encode(codec.encode([b"k" * 32, NODE_A, "m" * 65, 1, 1, b"n" * 16, b"s" * 64])).decode(),
        f"{SCHEME} " + base64.b64encode(codec.encode([b"k" * 32, NODE_A, "m", -1, 1, b"n" * 16, b"s" * 64])).decode(),
        f"{SCHEME} " + base64.b64encode(codec.encode([b"k" * 32, NODE_A, "m", 1, 1, b"n" * 15, b"s" * 64])).decode(),
        f"{SCHEME} " + base64.b64encode(os.urandom(200)).decode(),
    ],
)
def test_malformed_headers_are_refused_with_a_reason(header: str) -> None:
    with pytest.raises(ReadRequestInvalid, match=SCHEME):
        parse_read(header, ART, "GET", PATH, "")


def test_a_read_signed_for_one_node_does_not_verify_as_another_nodes() -> None:
    """The audience is under the signature: a node that was sent a read cannot re-address it to another."""
    for_b = parse_read(signed(audience=NODE_B), ART, "GET", PATH, "")
    assert for_b.verifies(7) and for_b.request.audience == NODE_B
    fields = codec.decode(base64.b64decode(signed(audience=NODE_B).split(" ", 1)[1]))
    fields[1] = NODE_A  # B's operator re-addresses the token to A, signature unchanged
    readdressed = parse_read(f"{SCHEME} {base64.b64encode(codec.encode(fields)).decode()}", ART, "GET", PATH, "")
    assert readdressed.request.audience == NODE_A and not readdressed.verifies(7)
    assert signed(audience=NODE_A) != signed(audience=NODE_B)  # same request, another node: another signature
    with pytest.raises(ValueError, match="node key of 32 bytes"):
        sign_read(KEY, 7, ART, "m", 1, "GET", PATH, audience=b"\xaa" * 20, timestamp_ms=1)
    assert DOMAIN_READ.endswith(b"/v2")  # a v1 signature (no audience) can never verify as a v2 one


def test_a_token_without_an_audience_is_refused_with_upgrade_advice() -> None:
    """The token older clients sent: [public key, model, version, timestamp ms, nonce, signature]."""
    old = codec.encode([KEY.public_key, "m", 1, 1_000, b"\x01" * 16, b"s" * 64])
    with pytest.raises(ReadRequestInvalid, match=r"names no node.*Upgrade aichain-node"):
        parse_read(f"{SCHEME} {base64.b64encode(old).decode()}", ART, "GET", PATH, "")


def test_a_node_key_is_read_as_node_status_writes_it() -> None:
    assert parse_node_key("0x" + NODE_A.hex()) == NODE_A == parse_node_key(NODE_A.hex())
    for bad in (None, "", "0x12", "0x" + "zz" * 32, "0x" + NODE_A.hex() + "00", 5):
        with pytest.raises(ValueError, match="a node key is 0x and 64 hex digits"):
            parse_node_key(bad)
