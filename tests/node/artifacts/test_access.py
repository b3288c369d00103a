"""Who may read a private artifact's plaintext (node.artifacts.access), decided against the real system contracts
on a state view whose block time the test sets; the HTTP routes and a running node: tests/integration/
test_private_access.py. Each hostile request below is refused with the status and reason it deserves."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from core import codec
from core.artifact import KIND_FILE, Manifest
from core.keys import PrivateKey
from core.read_request import WINDOW_MS, sign_read
from node.artifacts.access import AccessDenied, ArtifactAccess, PublisherBindings
from node.artifacts.replay_cache import MAX_NONCES_PER_ACCOUNT, ReplayCache
from tests.vm.system_chain import CHAIN, Chain
from vm.system import LICENSING, MODELS

SECRET = b"\x51" * 32
THIS_NODE, OTHER_NODE = PrivateKey.from_seed(b"\x0a" * 32).public_key, PrivateKey.from_seed(b"\x0b" * 32).public_key
COPY = "copycat"  # Mallory's model naming Alice's artifact id, which is public on chain
NOW_MS = 1_700_000_000_000


class World:
    def __init__(self, root: Path) -> None:
        self.alice, self.bob, self.carol, self.mallory = (PrivateKey.from_seed(bytes([i]) * 32) for i in (1, 2, 3, 4))
        self.chain = Chain(*(k.address for k in (self.alice, self.bob, self.carol, self.mallory)))
        self.chain.time_ms = NOW_MS
        self.clock_ms = NOW_MS
        a = self.alice.address
        self.chain.call(MODELS, a, "register_model", "m", SECRET, "onnx", b"", [[a, 10_000]])
        self.chain.call(MODELS, a, "publish_version", "m", b"\x52" * 32, [], [])  # version 2: other bytes
        self.offer = self.chain.license(a, "make_offer", "m", 1, 5, 3600, 0, 0, [], 0)
        self.manifest = Manifest(SECRET, KIND_FILE, 10, 4 * 1024 * 1024, (b"\x00" * 32,), encrypted=True)
        self.bindings = PublisherBindings(root / "publishers")
        self.bindings.bind(SECRET, a)  # Alice uploaded the bytes, naming herself the publisher
        self.access = ArtifactAccess(CHAIN, THIS_NODE, self.view, self.bindings, clock=lambda: self.clock_ms / 1000)

    def view(self, contract: bytes, function: str, *args: Any, time_ms: int | None = None) -> Any:
        saved = self.chain.time_ms
        self.chain.time_ms = max(saved, time_ms or 0)
        try:
            return self.chain.call(contract, bytes(20), function, *args)
        finally:
            self.chain.time_ms = saved

    def header(
        self,
        key: PrivateKey,
        model: str = "m",
        version: int = 1,
        *,
        path: str | None = None,
        method: str = "GET",
        range_header: str = "",
        at_ms: int | None = None,
        chain_id: int = CHAIN,
        artifact: bytes = SECRET,
        nonce: bytes | None = None,
        node: bytes = THIS_NODE,
    ) -> str:
        signed = sign_read(
            key,
            chain_id,
            artifact,
            model,
            version,
            method,
            path or self.path,
            range_header,
            audience=node,
            timestamp_ms=self.clock_ms if at_ms is None else at_ms,
            nonce=nonce,
        )
        return signed.header()

    @property
    def path(self) -> str:
        return f"/artifacts/{self.manifest.artifact_id}"

    def ask(self, header: str | None, *, method: str = "GET", path: str | None = None, range_header: str = "") -> Any:
        return self.access.authorize(self.manifest, method, path or self.path, range_header, header)

    def refused(self, header: str | None, status: int, reason: str, **request: Any) -> None:
        with pytest.raises(AccessDenied, match=reason) as caught:
            self.ask(header, **request)
        assert caught.value.status == status, caught.value.message


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_owners_and_licensees_read_and_nobody_else(world: World) -> None:
    world.refused(None, 401, "is private: its plaintext is served only to a request signed")
    assert world.ask(world.header(world.alice)).account == world.alice.address  # the owner
    world.refused(world.header(world.bob), 403, "holds no valid licence to m@1")  # not yet
    world.chain.license(world.bob.address, "buy", "m", world.offer, value=5)
    grant = world.ask(world.header(world.bob))
    assert (grant.account, grant.model, grant.version) == (world.bob.address, "m", 1)
    assert world.access.granted == 2 and world.access.refused == 2


def test_a_signed_read_is_good_for_its_own_request_once(world: World) -> None:
    header = world.header(world.alice, range_header="bytes=0-3")
    world.refused(header, 401, "does not verify", range_header="bytes=0-")  # another Range
    world.refused(header, 401, "does not verify", range_header="bytes=0-3", method="HEAD")  # another method
    world.refused(header, 401, "does not verify", range_header="bytes=0-3", path=world.path + "/files/x")
    world.refused(world.header(world.alice, chain_id=CHAIN + 1), 401, "does not verify")  # another chain
    world.refused(world.header(world.alice, artifact=b"\x53" * 32), 401, "does not verify")  # another artifact
    world.ask(header, range_header="bytes=0-3")
    world.refused(header, 401, "used already", range_header="bytes=0-3")  # replayed
    world.refused(world.header(world.alice, at_ms=NOW_MS - WINDOW_MS - 1), 401, "from this node's clock")
    world.refused(world.header(world.alice, at_ms=NOW_MS + WINDOW_MS + 1), 401, "from this node's clock")
    world.refused("AichainRead ???", 401, "not base64")


def test_a_read_signed_for_another_node_is_refused_here(world: World) -> None:
    """The relay: a licensee's read sent to another node (one without the key, run by someone else) is replayed
    here by that node's operator, within the window and before its nonce is spent here. It names the other node."""
    world.chain.license(world.bob.address, "buy", "m", world.offer, value=5)
    nonce = b"\x07" * 16
    relayed = world.header(world.bob, node=OTHER_NODE, nonce=nonce)
    world.refused(
        relayed,
        403,
        f"this signed read is for node 0x{OTHER_NODE.hex()}, and this is node "
        f"0x{THIS_NODE.hex()}: a node serves only reads signed for itself",
    )
    world.refused(relayed, 403, "is for node 0x")  # again: refused for what it is, not as a replay
    token = codec.decode(base64.b64decode(relayed.split(" ", 1)[1]))  # re-addressed here: its signature fails
    token[1] = THIS_NODE
    world.refused(f"AichainRead {base64.b64encode(codec.encode(token)).decode()}", 401, "does not verify")
    grant = world.ask(world.header(world.bob, nonce=nonce))  # the licensee's own read, for this node: served
    assert grant.account == world.bob.address and world.access.granted == 1
    old = codec.encode([world.bob.public_key, "m", 1, NOW_MS, b"\x08" * 16, b"s" * 64])  # a client from before
    world.refused(f"AichainRead {base64.b64encode(old).decode()}", 401, "names no node.*Upgrade aichain-node")


def test_a_licence_that_expired_ended_or_is_for_another_version_reads_nothing(world: World) -> None:
    world.chain.license(world.bob.address, "buy", "m", world.offer, value=5)
    world.ask(world.header(world.bob))
    world.clock_ms += 3_600_000  # the licence ran out by the node's clock, though no block came since
    world.refused(world.header(world.bob), 403, "holds no valid licence to m@1")
    world.refused(world.header(world.bob, version=2), 403, "m@2 is sha256:5252")  # a version naming other bytes
    world.chain.time_ms = world.clock_ms
    perpetual = world.chain.license(world.alice.address, "make_offer", "m", 1, 5, 0, 0, 0, [], 0)
    world.chain.license(world.carol.address, "buy", "m", perpetual, value=5)
    world.ask(world.header(world.carol))
    world.chain.license(world.carol.address, "end_licence", "m", 1)
    world.refused(world.header(world.carol), 403, "holds no valid licence")
    world.refused(world.header(world.bob, model="nowhere"), 403, "nowhere@1 is not on chain")


def test_a_former_owner_reads_nothing_and_the_new_owner_reads(world: World) -> None:
    world.ask(world.header(world.alice))
    world.chain.call(MODELS, world.alice.address, "set_owners", "m", [[world.carol.address, 10_000]])
    world.refused(world.header(world.alice), 403, "holds no valid licence to m@1 and does not own it")
    world.ask(world.header(world.carol))  # the version's publisher stays Alice: the key is still for m@1


def test_owning_a_copy_that_names_someone_elses_artifact_unlocks_nothing(world: World) -> None:
    mallory = world.mallory.address
    world.chain.call(MODELS, mallory, "register_model", COPY, SECRET, "onnx", b"", [[mallory, 10_000]])
    assert world.chain.call(LICENSING, mallory, "is_licensed", mallory, COPY, 1) is True  # she owns the copy
    world.refused(world.header(world.mallory, model=COPY), 403, "copycat@1 was published by 0x")
    world.refused(world.header(world.mallory), 403, "holds no valid licence to m@1")
    unbound = World.__new__(World)  # the same chain, but this node kept the key without a publisher
    unbound.__dict__.update(world.__dict__)
    unbound.bindings = PublisherBindings(world.bindings.root.parent / "none")
    unbound.access = ArtifactAccess(CHAIN, THIS_NODE, world.view, unbound.bindings, clock=lambda: world.clock_ms / 1000)
    unbound.refused(world.header(world.alice, nonce=b"\x09" * 16), 403, "without a publisher")


def test_the_first_publisher_bound_stays_and_files_are_private(tmp_path: Path) -> None:
    bindings = PublisherBindings(tmp_path / "publishers")
    assert bindings.publisher_of(SECRET) is None
    assert bindings.bind(SECRET, b"\x01" * 20) == b"\x01" * 20
    assert bindings.bind(SECRET, b"\x02" * 20) == b"\x01" * 20  # a later upload of the same bytes takes nothing
    assert bindings.publisher_of(SECRET) == b"\x01" * 20
    assert (tmp_path / "publishers").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "publishers" / SECRET.hex()).stat().st_mode & 0o777 == 0o600


def test_the_replay_cache_is_bounded_and_what_it_forgets_cannot_be_replayed(world: World) -> None:
    cache = ReplayCache(max_entries=3, per_account=2)
    cache.add(b"a", b"1", 100)
    cache.add(b"a", b"2", 200)
    assert not cache.room_for(b"a") and cache.room_for(b"b")  # an account at its bound waits
    cache.add(b"b", b"1", 300)
    assert cache.room_for(b"c")  # full: a newcomer does not wait ...
    cache.add(b"c", b"1", 400)  # ... the account holding the most forgets its oldest nonce
    assert len(cache) == 3 and not cache.seen(b"a", b"1", 0) and cache.forgotten == 1
    assert cache.below_floor(b"a", 100) and not cache.below_floor(b"a", 101)  # so a's reads up to it are refused
    assert not cache.below_floor(b"b", 0) and cache.seen(b"b", b"1", 0) and cache.seen(b"c", b"1", 0)
    assert cache.seen(b"a", b"2", 200) and not cache.seen(b"a", b"2", 201)  # expired: dropped
    assert len(cache) == 2
    world.access.replays = ReplayCache(per_account=1)
    world.ask(world.header(world.alice))
    world.refused(world.header(world.alice), 429, "too many signed reads")
    world.clock_ms += WINDOW_MS + 1
    world.ask(world.header(world.alice))
    assert MAX_NONCES_PER_ACCOUNT >= 1_000  # a directory artifact costs one read per file


def test_accounts_that_flood_the_replay_cache_crowd_out_only_themselves(world: World) -> None:
    """Anyone can upload a private artifact of its own and own its model with 16 accounts; granted reads of
    it fill the node's replay cache (65,536 nonces for up to 2 minutes: about 24 s of reads on a 2-core
    machine). That used to answer 429 to every other owner and licensee for as long as the flood went
    on. Now the cache forgets the oldest nonce of the account holding the most, and refuses that
    account's reads signed up to it: a replay is still refused, the flooders are slowed, no one else is."""
    world.access.replays = ReplayCache(max_entries=4, per_account=2)
    carol = world.carol.address
    world.chain.call(MODELS, world.alice.address, "set_owners", "m", [[world.alice.address, 5_000], [carol, 5_000]])
    floods = [world.header(who, at_ms=NOW_MS + WINDOW_MS) for who in (world.alice, world.carol) for _ in range(2)]
    for header in floods:  # dated as late as the node allows: remembered for two windows
        world.ask(header)
    world.chain.license(world.bob.address, "buy", "m", world.offer, value=5)
    honest = world.header(world.bob)
    assert world.ask(honest).account == world.bob.address  # used to be 429: the cache was full
    world.refused(honest, 401, "used already")  # still remembered
    world.refused(floods[0], 429, "sign it anew")  # forgotten, but not replayable: below Alice's floor
    for header in floods[1:]:
        world.refused(header, 401, "used already")
    assert len(world.access.replays) <= 4
    world.ask(world.header(world.bob))  # Bob again: Carol, who now holds the most, gives way, not he
    world.refused(floods[2], 429, "sign it anew")
    world.refused(world.header(world.alice, at_ms=NOW_MS + WINDOW_MS - 1), 429, "sign it anew")  # below her floor
    world.refused(world.header(world.alice, at_ms=NOW_MS + WINDOW_MS), 429, "sign it anew")  # dated her future
    world.clock_ms += 2 * WINDOW_MS + 1  # everything expired, floors included
    for who in (world.alice, world.bob, world.carol):
        world.ask(world.header(who))
