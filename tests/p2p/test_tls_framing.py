"""Certificates, TLS 1.3, the channel binding, and frame encoding/decoding."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.errors import ConfigError
from core.keys import PrivateKey
from node.p2p.config import Bootnode, P2PConfig
from node.p2p.errors import FrameTooLarge, MalformedFrame, PeerClosed, ReadTimeout
from node.p2p.framing import decode_body, encode_frame, frame_from_body, limits_for, read_frame
from node.p2p.gossip import SeenSet, message_id
from node.p2p.scoring import BanList, Score, TokenBucket
from node.p2p.tls import TLSIdentity, client_context, peer_channel_binding


def test_certificate_is_self_signed_ed25519_of_the_node_key(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    identity = TLSIdentity.create(key)
    cert = x509.load_der_x509_certificate(identity.cert_der)
    public = cert.public_key()
    assert isinstance(public, Ed25519PublicKey)
    assert public.public_bytes_raw() == key.public_key
    assert cert.issuer == cert.subject
    public.verify(cert.signature, cert.tbs_certificate_bytes)
    openssl = shutil.which("openssl")
    if openssl:  # a second opinion from the OpenSSL CLI when it is installed
        path = tmp_path / "cert.pem"
        path.write_bytes(identity.cert_pem)
        text = subprocess.run([openssl, "x509", "-in", str(path), "-noout", "-text"], capture_output=True, text=True)
        assert text.returncode == 0
        assert "ED25519" in text.stdout.upper()


async def test_tls13_only_and_both_sides_compute_the_same_binding() -> None:
    identity = TLSIdentity.create(PrivateKey.generate())
    seen: dict[str, object] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["server_version"] = writer.get_extra_info("ssl_object").version()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=identity.server_context)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(), server_hostname="")
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
    assert peer_channel_binding(writer) == identity.binding
    writer.close()
    server.close()
    await server.wait_closed()
    assert client_context().minimum_version.name == "TLSv1_3"
    assert identity.server_context.minimum_version.name == "TLSv1_3"


def _reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_frame_round_trip() -> None:
    frame = encode_frame(42, [42, b"x" * 100, "hi", 7])
    assert struct.unpack(">I", frame[:4])[0] == len(frame) - 4
    raw = await read_frame(_reader(frame), idle_timeout=1, body_timeout=1)
    assert raw.msg_type == 42 and raw.size == len(frame)
    assert decode_body(raw.body, limits_for(1024)) == [42, b"x" * 100, "hi", 7]


async def test_oversized_frame_is_rejected_from_its_header_alone() -> None:
    # Only the header is available: a reader that tried to read the body would hang.
    reader = _reader(struct.pack(">I", 1025) + b"\x10", eof=False)
    with pytest.raises(FrameTooLarge):
        await read_frame(reader, max_frame_size=1024, idle_timeout=1, body_timeout=1)


async def test_empty_truncated_and_slow_frames() -> None:
    with pytest.raises(MalformedFrame):
        await read_frame(_reader(struct.pack(">I", 0)), idle_timeout=1, body_timeout=1)
    with pytest.raises(PeerClosed):
        await read_frame(_reader(struct.pack(">I", 10) + b"\x10abc"), idle_timeout=1, body_timeout=1)
    with pytest.raises(ReadTimeout):
        await read_frame(_reader(b"", eof=False), idle_timeout=0.05, body_timeout=1)
    with pytest.raises(ReadTimeout):
        await read_frame(_reader(struct.pack(">I", 10) + b"\x10", eof=False), idle_timeout=1, body_timeout=0.05)


@pytest.mark.parametrize(
    "body",
    [b"\xc1", b"\xcc\x01", b"\x91\x01\x02", b"\xcb" + bytes(8), b"\x81\x01\x02", b"\xd4\x01\x01"],
    ids=["garbage", "non-canonical", "trailing", "float", "map", "ext"],
)
def test_payloads_that_are_not_canonical_msgpack_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedFrame):
        decode_body(frame_from_body(20, body)[5:], limits_for(1024))


def test_seen_set_is_a_bounded_lru() -> None:
    seen = SeenSet(capacity=3)
    ids = [message_id(20, [20, i]) for i in range(4)]
    assert all(seen.add(i) for i in ids[:3])
    assert not seen.add(ids[0])  # refreshes ids[0]
    assert seen.add(ids[3])  # evicts ids[1], the least recently seen
    assert ids[0] in seen and ids[1] not in seen and len(seen) == 3


def test_token_bucket_score_and_bans_with_a_fake_clock() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=5, clock=lambda: now[0])
    assert sum(bucket.take() for _ in range(10)) == 5
    now[0] += 0.2
    assert sum(bucket.take() for _ in range(10)) == 2
    score = Score(threshold=-100, recovery_per_s=10, clock=lambda: now[0])
    assert not score.penalize(60)
    now[0] += 2  # recovers 20
    assert score.value == -40
    assert score.penalize(60)
    bans = BanList(clock=lambda: now[0])
    bans.ban(node_key=b"k", ip="1.2.3.4", seconds=5)
    assert bans.key_banned(b"k") and bans.ip_banned("1.2.3.4") and len(bans) == 2
    now[0] += 5
    assert not bans.key_banned(b"k") and not bans.ip_banned("1.2.3.4")


def test_bootnode_syntax() -> None:
    key = PrivateKey.generate().public_key
    assert Bootnode.parse(f"{key.hex()}@10.0.0.1:30303") == Bootnode("10.0.0.1", 30303, key)
    assert Bootnode.parse(f"0x{key.hex()}@[::1]:30303") == Bootnode("::1", 30303, key)
    assert Bootnode.parse("node1.example:1") == Bootnode("node1.example", 1, None)
    assert str(Bootnode("::1", 5, key)) == f"{key.hex()}@[::1]:5"
    for bad in ["nokey@1.2.3.4:5", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:70000", f"{key.hex()[:10]}@h:1"]:
        with pytest.raises(ConfigError):
            Bootnode.parse(bad)
    with pytest.raises(ConfigError):
        P2PConfig(chain_id=1, genesis_hash=bytes(32), bootnodes=("bad",))
