"""Key release through running nodes: one envelope per licensee, whoever posts first, and no plaintext to strangers.

A validator and a full node of real processes. Alice publishes a private model on the full node, which keeps the
content key and is named its releaser. The issue's reproducer: the releaser's node is killed, Bob buys, Alice
posts his envelope herself from the machine she published on, and the node comes back and syncs: it must not
post a second envelope, nor send a transaction the contract would refuse; nor for a licence that ran out while
it was down. The validator, which fetched only the
ciphertext, has no plaintext to give even to a licensee.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aichain_node import Client
from aichain_node.terms import Offer
from core.keys import PrivateKey, address_hex
from core.read_request import sign_read
from node.bench.onnx_model import build_mlp
from node.devnet import DEV_ACCOUNT_KEY
from node.p2p.framing import decode_body, encode_frame, limits_for, read_frame
from node.p2p.messages import MsgType, pong_frame
from node.p2p.sync import STATUS
from tests.harness import NodeProcess
from tests.integration.support import fund
from tests.integration.testnet_support import Testnet, raw_peer, wait_for
from vm.system import KEYS

AIC = 10**9
VALIDATOR, KEEPER = 0, 1  # the key keeper is a full node: the chain goes on while it is down


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_one_envelope_per_licensee_when_the_owner_posts_while_the_releaser_is_down(tmp_path: Path) -> None:
    alice, bob, carol, dan = (PrivateKey.generate() for _ in range(4))
    source = build_mlp(tmp_path / "m.onnx", seed=31)
    with Testnet(tmp_path / "net", validators=1, full_nodes=1, start=False) as net:
        net.start(VALIDATOR, KEEPER)
        url = [node.rpc_url for node in net.nodes]
        wait_for(lambda: net.call(KEEPER, "node_status")["peers"] >= 1, 30, "the full node to connect")
        with Client(url[VALIDATOR], DEV_ACCOUNT_KEY) as dev:
            for sent in [dev.transfer(k.address, 50 * AIC, wait=False) for k in (alice, bob, carol, dan)]:
                dev.wait_ok(sent["tx_hash"])
        with Client(url[KEEPER], alice) as owner:
            published = owner.models.publish(source, "m", private=True, offer=Offer.parse("price=1"))
        artifact = published.artifact
        assert published.releaser == net.call(KEEPER, "node_status")["releaser"]
        assert get(f"{url[KEEPER]}/artifacts/{artifact}")[0] == 401  # the curl: no plaintext unsigned

        def envelopes(licensee: PrivateKey) -> int:
            events = net.call(VALIDATOR, "contract_getEvents", "0x" + KEYS.hex(), 1, None, "EnvelopePosted")
            return sum(e["fields"]["licensee"] == address_hex(licensee.address) for e in events)

        with Client(url[VALIDATOR], carol) as buyer:  # the releaser serves a buyer by itself
            buyer.models.buy("m")
        wait_for(lambda: envelopes(carol) == 1, 30, "the releaser to post Carol's envelope")

        releaser = published.releaser
        assert releaser is not None
        with Client(url[VALIDATOR], alice) as owner:
            brief = owner.models.make_offer("m@1", Offer.parse("price=1,duration=1s"))
        net.kill(KEEPER)
        nonce_before = int(net.call(VALIDATOR, "state_getAccount", releaser)["nonce"])
        with Client(url[VALIDATOR], bob) as buyer:
            buyer.models.buy("m")
        with Client(url[VALIDATOR], alice) as owner:  # this machine kept the content key when it published
            assert owner.models.release("m@1", [bob.address]) == [address_hex(bob.address)]
        assert envelopes(bob) == 1
        with Client(url[VALIDATOR], dan) as buyer:  # a licence that is over before the releaser is back
            buyer.models.buy("m", offer=brief)
        time.sleep(1.5)
        net.start(KEEPER)
        wait_for(lambda: net.height(KEEPER) >= net.height(VALIDATOR), 60, "the releaser's node to catch up")
        time.sleep(3)  # fifteen blocks more: time for it to act on the licences it synced
        assert envelopes(bob) == 1 and envelopes(carol) == 1 and envelopes(dan) == 0
        assert int(net.call(VALIDATOR, "state_getAccount", releaser)["nonce"]) == nonce_before  # nothing sent

        # Bob's machine opens its envelope and pulls through the validator, which fetches the ciphertext only.
        with Client(url[VALIDATOR], bob) as buyer:
            pulled = buyer.models.pull("m@1")
            assert pulled.path.read_bytes() == source.read_bytes()
        stored = get(f"{url[VALIDATOR]}/artifacts/{artifact}/stored")[1]
        assert stored == get(f"{url[KEEPER]}/artifacts/{artifact}/stored")[1]
        assert hashlib.sha256(stored).hexdigest() != artifact[7:] and source.read_bytes()[:64] not in stored
        path = f"/artifacts/{artifact}"
        validator = bytes.fromhex(net.call(VALIDATOR, "node_status")["node_key"][2:])
        read = sign_read(
            bob,
            net.chain_id,
            bytes.fromhex(artifact[7:]),
            "m",
            1,
            "GET",
            path,
            audience=validator,
            timestamp_ms=int(time.time() * 1000),
        )
        status, body = get(url[VALIDATOR] + path, {"Authorization": read.header()})
        assert status == 409 and b"has not got its content key" in body  # a licensee, but no key on that node


def test_a_peer_claiming_a_head_nobody_has_does_not_hold_up_releases(tmp_path: Path) -> None:
    """A peer that completes a handshake, claims a head of 10^9 and answers pings keeps the node "syncing" for as
    long as it stays. Each licence used to wait out the whole 60 s catch-up budget in turn: two buyers got their
    envelopes after 60 and 120 s. A node whose head is recent is at the tip, whatever a peer claims."""
    with NodeProcess(tmp_path, block_time_ms=200) as node:
        alice, *buyers = (fund(node, 50 * AIC) for _ in range(3))
        with Client(node.url, alice) as owner:
            owner.models.publish(
                build_mlp(tmp_path / "m.onnx", seed=33), "m", private=True, offer=Offer.parse("price=1")
            )
        status = node.rpc.call("node_status")
        stop = threading.Event()
        liar = threading.Thread(target=asyncio.run, args=(_claim_a_head(status, 10**9, stop),))
        liar.start()
        try:
            wait_for(lambda: node.rpc.call("node_status")["syncing"], 10, "the claimed head to make the node sync")
            started = time.monotonic()
            for buyer in buyers:
                with Client(node.url, buyer) as licensee:
                    licensee.models.buy("m@1")

            def served() -> bool:
                with Client(node.url) as reader:
                    return all(reader.view(KEYS, "envelope_for", "m", 1, b.address) for b in buyers)

            wait_for(served, 20, "both envelopes")
            assert node.rpc.call("node_status")["syncing"], "the lying peer was still connected throughout"
            print(f"both envelopes {time.monotonic() - started:.1f} s after the first purchase (60 and 120 s before)")
        finally:
            stop.set()
            liar.join(10)


async def _claim_a_head(status: dict[str, Any], height: int, stop: threading.Event) -> None:
    """Connect as a peer, claim `height` as its head, answer pings until `stop`."""
    peer = await raw_peer(
        status["p2p_port"], status["chain_id"], bytes.fromhex(status["genesis_hash"][2:]), "127.0.0.1"
    )
    await peer.send_raw(encode_frame(STATUS, [STATUS, height, b"\x07" * 32]))
    while not stop.is_set():
        try:
            frame = await asyncio.wait_for(
                read_frame(peer.reader, max_frame_size=1 << 26, idle_timeout=None, body_timeout=5), 0.5
            )
        except TimeoutError:
            continue
        if frame.msg_type == MsgType.PING:
            await peer.send_raw(pong_frame(decode_body(frame.body, limits_for(1 << 26))[1]))
    peer.close()
