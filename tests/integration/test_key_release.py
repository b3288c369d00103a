"""Key release through running nodes: one envelope per licensee, whoever posts first, and no plaintext to strangers.

A validator and a full node of real processes. Alice publishes a private model on the full node, which keeps the
content key and is named its releaser. The issue's reproducer: the releaser's node is killed, Bob buys, Alice
posts his envelope herself from the machine she published on, and the node comes back and syncs: it must not
post a second envelope, nor send a transaction the contract would refuse; nor for a licence that ran out while
it was down. The validator, which fetched only the
ciphertext, has no plaintext to give even to a licensee.
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from pathlib import Path

from core.keys import PrivateKey, address_hex
from core.read_request import sign_read
from node.bench.onnx_model import build_mlp
from node.devnet import DEV_ACCOUNT_KEY
from node.sdk import Client
from node.sdk.terms import Offer
from tests.integration.testnet_support import Testnet, wait_for
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
        read = sign_read(bob, net.chain_id, bytes.fromhex(artifact[7:]), "m", 1, "GET", path,
                         timestamp_ms=int(time.time() * 1000))  # fmt: skip
        status, body = get(url[VALIDATOR] + path, {"Authorization": read.header()})
        assert status == 409 and b"has not got its content key" in body  # a licensee, but no key on that node
