"""Fuzzing a real node's P2P port (issue 18, acceptance: nothing a peer sends hurts the node).

A testnet of a validator (the target) and a full node (its honest peer). Hostile peers, each a
real TLS connection with a real signed Hello, send the target: garbage before and during the
handshake and connections left half-open; every message type it registers with mutated, boundary
and oversized payloads; frames with the most values a frame can carry; replays and duplicates of
the node's own messages; floods; votes and proposals for far heights and rounds; requests for huge
block ranges and many artifact chunks; a peer that never reads; unsolicited blocks full of
transactions; batches of well-signed transactions from accounts holding nothing.

After each campaign, through the node's public interfaces: no traceback or ERROR in its log (one-line
warnings only), no event-loop stall over 100 ms, RSS bounded, blocks still finalized and followed by
the honest peer, which was never disconnected, RPC answering; and the misbehaving peers penalised and
banned as docs/network.md says. The soak variant (`-m soak`) runs every campaign again and again,
bigger, and checks that RSS levels off. Inputs are counted in `COUNTS` (printed with -s); the seed is
`P2P_FUZZ_SEED` (default 1817).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from core.block import Vote, VoteType
from core.keys import PrivateKey
from core.proposal import Proposal
from node.p2p.framing import DEFAULT_MAX_FRAME_SIZE
from tests.integration.p2p_attack import Attacker, Target, captured, client_hello, raw_connection, tls_connection
from tests.integration.p2p_frames import (
    BLOCKS,
    GET,
    GET_BLOCKS,
    HAVE,
    PROPOSAL,
    ROUND_STEP,
    STATUS,
    TXS,
    VOTE,
    WANT,
    Templates,
    big_frames,
    block_with_txs,
    built_templates,
    frame,
    mutated,
    pre_handshake_inputs,
    signed_tx,
    unsigned_txs,
)
from tests.integration.testnet_support import Testnet, wait_for
from tests.node_health import Health, stall_lines, tracebacks

SEED = int(os.environ.get("P2P_FUZZ_SEED", "1817"))
# Freed buffers stay in the node's heap for reuse (node/process_tuning.py keeps up to 512 MiB before trimming),
# so RSS after 16 MiB frames and 4 MiB chunks is not a leak; the soak run checks that it levels off.
RSS_GROWTH_KIB = 400 * 1024
# The soak's rounds are ten times bigger; the heap may then keep its whole 512 MiB of freed memory (a run grew
# 98 -> 509 MiB, levelling off: +4 % over the last four rounds). What tells a leak is the levelling off.
SOAK_RSS_GROWTH_KIB = 640 * 1024
COUNTS: Counter[str] = Counter()


@dataclass
class Net:
    net: Testnet
    target: Target
    honest: Target
    artifact: bytes
    baseline: Health
    honest_disconnects: float
    checked: Health | None = None  # the node's health at the end of the last check
    log_checked: int = 0  # how much of its log the last check read


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with Testnet(tmp_path_factory.mktemp("p2pfuzz"), validators=1, full_nodes=1, block_time_ms=200) as testnet:
        testnet.start(1)
        wait_for(lambda: testnet.call(1, "node_status")["peers"] == 1, 20, "the two nodes to connect")
        target, honest = Target.of(testnet.nodes[0]), Target.of(testnet.nodes[1])
        data = random.Random(SEED).randbytes(9 * 1024 * 1024)  # three chunks of 4 MiB
        request = urllib.request.Request(target.url + "/artifacts", data=data, method="PUT")
        with urllib.request.urlopen(request, timeout=60) as response:
            artifact = bytes.fromhex(json.loads(response.read())["id"].split(":")[1])
        testnet.wait_height([0, 1], 3, 20)
        yield Net(testnet, target, honest, artifact, target.health(), honest.metric("aichain_p2p_disconnects_total"))
    print(f"\np2p fuzz inputs (seed {SEED}): {dict(sorted(COUNTS.items()))}")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def check_node(net: Net, *, what: str, rss_growth_kib: int = RSS_GROWTH_KIB) -> Health:
    """What every campaign ends with (see the module docstring)."""
    # Each campaign answers for what happened since the last check, not for an earlier campaign's stall.
    full = net.target.log()
    text, net.log_checked = full[net.log_checked :], len(full)
    now = net.target.health()
    since, net.checked = net.checked or net.baseline, now
    assert not tracebacks(text), (what, tracebacks(text)[:5])
    assert not stall_lines(text), (what, stall_lines(text)[:5])
    assert now.stalls_since(since) == 0, (what, now)
    assert now.rss_kib - net.baseline.rss_kib < rss_growth_kib, (what, net.baseline.rss_kib, now.rss_kib)
    head = net.target.status()["head_height"]
    net.net.wait_height([0, 1], head + 2, 20)  # the chain goes on, and the honest peer follows it
    assert net.honest.status()["peers"] == 1, what
    assert net.honest.metric("aichain_p2p_disconnects_total") == net.honest_disconnects, what
    return now


def penalties(net: Net, reason: str) -> float:
    return net.target.metric("aichain_p2p_penalties_total", reason=reason)


async def templates_from(net: Net, rng: random.Random) -> Templates:
    """Well-formed payloads: the node's own status and round steps, its blocks, its artifact's manifest."""
    spy = Attacker(net.target)
    await spy.connect()
    head = net.target.status()["head_height"]
    await spy.send(frame(GET_BLOCKS, [GET_BLOCKS, 1, 3]) + frame(WANT, [WANT, net.artifact]))
    await spy.settle()
    deadline = time.monotonic() + 10
    while not (captured([spy], BLOCKS) and captured([spy], HAVE) and captured([spy], ROUND_STEP)):
        assert time.monotonic() < deadline, "the node sent no blocks, manifest or round step"
        await asyncio.sleep(0.01)
    templates = Templates(net.target.chain_id, head)
    for msg_type in (STATUS, BLOCKS, HAVE, ROUND_STEP, PROPOSAL, VOTE):
        for payload in captured([spy], msg_type)[:5]:
            templates.add(msg_type, payload)
    built_templates(templates, rng)
    await spy.close()
    return templates


# --- campaigns ------------------------------------------------------------------------------------


async def mutated_campaign(net: Net, rng: random.Random, inputs: int) -> Counter[str]:
    """Every registered type, and unknown and control types, with mutated payloads, from three peers."""
    templates = await templates_from(net, rng)
    attackers = [Attacker(net.target, source=f"127.0.0.{2 + i}") for i in range(3)]
    seen: Counter[str] = Counter()
    for n in range(inputs):
        attacker = attackers[n % len(attackers)]
        category, data = mutated(rng, templates)
        seen[f"type {category.split(' ')[0]}" if category[0].isdigit() else category] += 1
        await attacker.send(data)
        if n % 8 == 7:
            await attacker.settle()
    for attacker in attackers:
        await attacker.settle()
        await attacker.close()
    seen["sessions"] = sum(a.sessions for a in attackers)
    seen["banned"] = sum(a.ended["banned"] for a in attackers)
    return seen


async def limits_campaign(net: Net, rng: random.Random) -> Counter[str]:
    """Frames at the size limit, and with the most values a frame can carry (16 million nils)."""
    seen: Counter[str] = Counter()
    for category, data in big_frames(rng, net.target.chain_id, DEFAULT_MAX_FRAME_SIZE):
        attacker = Attacker(net.target)
        await attacker.send(data)
        await attacker.settle(timeout=30)
        seen[category] += 1
        await attacker.close()
    return seen


async def unsolicited_blocks_campaign(net: Net, rng: random.Random) -> Counter[str]:
    """Blocks nobody asked for, full of transactions that decode: one of 50,000, and 128 of 900."""
    templates = await templates_from(net, rng)
    _, start, pairs = next(t for t in templates.by_type[BLOCKS] if t[2])  # a real answer of the node
    block, commit = pairs[0]
    txs = unsigned_txs(net.target.chain_id, 50_000, rng)
    seen: Counter[str] = Counter()
    for label, payload in (
        ("one block of 50,000 txs", [BLOCKS, start, [[block_with_txs(block, txs), commit]]]),
        ("128 blocks of 900 txs", [BLOCKS, start, [[block_with_txs(block, txs[:900]), commit]] * 128]),
    ):
        attacker = Attacker(net.target)
        await attacker.send(frame(BLOCKS, payload))
        await attacker.settle(timeout=30)
        seen[label] += 1
        await attacker.close()
    return seen


async def replay_campaign(net: Net, rng: random.Random, copies: int) -> Counter[str]:
    """The node's own messages (status, round steps, votes, proposals, blocks, manifests) sent back to it many
    times over, by three peers at once."""
    templates = await templates_from(net, rng)
    attackers = [Attacker(net.target, source=f"127.0.0.{20 + i}") for i in range(3)]
    seen: Counter[str] = Counter()
    for msg_type in (STATUS, ROUND_STEP, PROPOSAL, VOTE, BLOCKS, HAVE):
        for payload in templates.by_type.get(msg_type, [])[:3]:
            data = frame(msg_type, payload)
            for _ in range(copies):
                for attacker in attackers:
                    await attacker.send(data)
                    seen[f"type {msg_type}"] += 1
            for attacker in attackers:
                await attacker.settle()
    for attacker in attackers:
        await attacker.close()
    return seen


async def flood_campaign(net: Net, rng: random.Random, writes: int) -> Counter[str]:
    """Well-formed messages far beyond the rate limit (2,000 a second, 4,000 at once)."""
    templates = await templates_from(net, rng)
    seen: Counter[str] = Counter()
    for msg_type in (STATUS, ROUND_STEP, TXS, WANT):
        attacker = Attacker(net.target)
        await attacker.connect()
        data = frame(msg_type, templates.pick(rng, msg_type)) * 500
        for _ in range(writes):
            await attacker.send(data)
            seen[f"type {msg_type}"] += 500
            if attacker.session is None or attacker.session.closed.is_set():
                break
        seen[f"ended {await attacker.wait_closed()}"] += 1
        await attacker.close()
    return seen


async def far_heights_campaign(net: Net, rng: random.Random) -> Counter[str]:
    """Votes and proposals of keys that are no validator's, for heights and rounds far off (dropped without
    penalty) and then for the next height (a bad signature: penalised)."""
    chain_id, head = net.target.chain_id, net.target.status()["head_height"]
    key = PrivateKey.from_seed(rng.randbytes(32))
    seen: Counter[str] = Counter()
    attacker = Attacker(net.target)
    await attacker.connect()
    for height in (head + 100, head + 1000, 2**32, 2**63, 2**64 - 1, 0, 1):  # the head moves: none comes near
        for round_ in (0, 1, 2**31 - 1, 2**32 - 1):
            for vote_type in (VoteType.PREVOTE, VoteType.PRECOMMIT):
                vote = Vote(vote_type, height, round_, rng.randbytes(32), key.address).signed_by(key, chain_id)
                await attacker.send(frame(VOTE, [VOTE, vote.to_wire()]))
            proposal = Proposal(height, round_, rng.choice([-1, 0, round_ - 1]), rng.randbytes(32), key.address)
            block = rng.randbytes(rng.choice([5, 1024, 1024 * 1024]))
            await attacker.send(frame(PROPOSAL, [PROPOSAL, proposal.signed_by(key, chain_id).to_wire(), block]))
            seen["far"] += 3
        await attacker.settle()
    seen["far, banned"] = int(attacker.session is None or attacker.session.closed.is_set())
    next_height = net.target.status()["head_height"] + 1
    votes = [Vote(VoteType.PREVOTE, next_height, 0, rng.randbytes(32), key.address) for _ in range(5)]
    await attacker.send(b"".join(frame(VOTE, [VOTE, vote.signed_by(key, chain_id).to_wire()]) for vote in votes))
    seen["next height"] += len(votes)
    seen[f"ended {await attacker.wait_closed()}"] += 1
    await attacker.close()
    return seen


async def requests_campaign(net: Net, rng: random.Random, rounds: int) -> Counter[str]:
    """Requests for huge block ranges and for chunks and manifests, read as fast as the node sends."""
    head = net.target.status()["head_height"]
    requests = [
        frame(GET_BLOCKS, [GET_BLOCKS, 0, 2**64 - 1]),
        frame(GET_BLOCKS, [GET_BLOCKS, 1, 128]),
        frame(GET_BLOCKS, [GET_BLOCKS, 2**64 - 1, 128]),
        frame(GET_BLOCKS, [GET_BLOCKS, head, 2**64 - 1]),
        frame(GET, [GET, net.artifact, [2, 0]]),
        frame(GET, [GET, net.artifact, [2**64 - 1] * 8]),
        frame(WANT, [WANT, net.artifact]),
        frame(WANT, [WANT, rng.randbytes(32)]),
    ]
    attacker = Attacker(net.target)
    seen: Counter[str] = Counter()
    for n in range(rounds):
        data = requests[n % len(requests)]
        await attacker.send(data)
        seen[f"type {data[4]}"] += 1
        if n % 16 == 15:
            await attacker.settle(timeout=30)
    await attacker.settle(timeout=60)
    seen["sessions"] = attacker.sessions
    await attacker.close()
    return seen


async def chunk_flood_campaign(net: Net, requests: int) -> Counter[str]:
    """Requests for every chunk of a stored artifact, eight at a time, as fast as the rate limit lets them."""
    attacker = Attacker(net.target)
    await attacker.connect()
    data = frame(GET, [GET, net.artifact, [0, 1, 2, 0, 1, 2, 0, 1]])
    seen: Counter[str] = Counter()
    for n in range(requests):
        await attacker.send(data)
        seen["requests"] += 1
        if attacker.session is None or attacker.session.closed.is_set():
            break  # banned (sending on would open new sessions, which a banned peer is refused)
        if n % 100 == 99:
            await asyncio.sleep(0.01)
    seen[f"ended {await attacker.wait_closed()}"] += 1
    seen["sessions"] = attacker.sessions
    await attacker.close()
    return seen


async def slow_reader_campaign(net: Net) -> Counter[str]:
    """A peer that asks for blocks and chunks and never reads what the node sends."""
    attacker = Attacker(net.target, reading=False)
    await attacker.connect()
    started = time.monotonic()
    data = frame(GET_BLOCKS, [GET_BLOCKS, 1, 128]) + frame(GET, [GET, net.artifact, [0, 1, 2]])
    seen: Counter[str] = Counter()
    while time.monotonic() - started < 30 and attacker.sessions == 1:
        await attacker.send(data)
        seen["requests"] += 2
        await asyncio.sleep(0.05)
    seen["seconds until dropped"] = round(time.monotonic() - started)
    await attacker.close()
    return seen


async def unfunded_flood_campaign(net: Net, rng: random.Random, seconds: float) -> Counter[str]:
    """Batches of 2,000 well-signed transactions from accounts holding nothing, again and again, from three
    peers: each is refused (balance) at no cost to its sender, so it must cost the node little too."""
    keys = [PrivateKey.from_seed(rng.randbytes(32)) for _ in range(20)]
    data = frame(TXS, [TXS, [signed_tx(keys[n % 20], net.target.chain_id, n // 20).encoded for n in range(2000)]])
    attackers = [Attacker(net.target, source=f"127.0.0.{30 + i}") for i in range(3)]
    seen: Counter[str] = Counter()
    started = time.monotonic()
    head = net.target.status()["head_height"]
    while time.monotonic() - started < seconds:
        for attacker in attackers:
            await attacker.send(data)
            seen["transactions"] += 2000
        await asyncio.sleep(0.05)
    seen["heights meanwhile"] = net.target.status()["head_height"] - head
    for attacker in attackers:
        await attacker.settle(timeout=30)
        await attacker.close()
    seen["banned"] = sum(a.ended["banned"] for a in attackers)
    return seen


async def unserved_head_campaign(net: Net) -> Counter[str]:
    """Peers announcing a head a million blocks ahead: one answers the node's requests with no blocks, one
    never answers. Each kept the node "syncing" for as long as it stayed connected (sync's target is the
    highest head announced)."""
    seen: Counter[str] = Counter()

    def syncing() -> bool:
        return bool(net.target.status()["syncing"])

    async def until(condition: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not await asyncio.to_thread(condition):
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.1)

    async def announce(attacker: Attacker) -> None:
        head = await asyncio.to_thread(lambda: net.target.status()["head_height"])
        await attacker.send(frame(STATUS, [STATUS, head + 1_000_000, bytes(32)]))

    before = penalties(net, "unserved")
    empty = Attacker(net.target)
    await empty.connect()
    await announce(empty)
    await until(syncing, 5, "the node never believed the far head")
    answered: set[int] = set()

    async def answer_empty() -> None:
        for _, start, _count in captured([empty], GET_BLOCKS):
            if start not in answered:
                answered.add(start)
                await empty.send(frame(BLOCKS, [BLOCKS, start, []]))
                seen["empty answers"] += 1

    deadline = time.monotonic() + 10
    while not (answered and penalties(net, "unserved") > before):
        assert time.monotonic() < deadline, "the node never asked, or never penalised, the empty answers"
        await answer_empty()
        await asyncio.sleep(0.05)
    # Each window asked is answered empty, also those asked after the first penalty: a node that asked
    # for two windows at once, and had the later one answered first, still waits for the earlier.
    deadline = time.monotonic() + 5
    while await asyncio.to_thread(syncing):
        assert time.monotonic() < deadline, "a peer that served nothing kept the node syncing"
        await answer_empty()
        await asyncio.sleep(0.05)
    await announce(empty)  # again: no longer believed
    await asyncio.sleep(1.0)
    assert not syncing(), "announcing the same far head again made the node sync again"
    seen["announced again"] += 1
    silent = Attacker(net.target)
    await silent.connect()
    await announce(silent)
    await until(syncing, 5, "the node never believed the second far head")
    await until(lambda: not syncing(), 10 + 6, "a peer that never answered kept the node syncing")
    seen["silent"] += 1
    for attacker in (empty, silent):
        await attacker.close()
    return seen


async def handshake_campaign(net: Net, rng: random.Random, rounds: int) -> Counter[str]:
    """Garbage, cut and flipped TLS records before TLS; garbage, bad Hellos and odd frames after it (each until
    the node closes it, at most 5 s); 60 connections left half-open meanwhile; and an honest peer still gets in."""
    seen: Counter[str] = Counter()
    target = net.target
    inputs = pre_handshake_inputs(rng, target.chain_id, target.genesis_hash, client_hello())
    idle = [
        asyncio.create_task(raw_connection(target, b"", hold_s=4, source=f"127.0.1.{1 + i % 4}")) for i in range(40)
    ]
    idle += [
        asyncio.create_task(tls_connection(target, b"", hold_s=4, source=f"127.0.2.{1 + i % 4}")) for i in range(20)
    ]
    await asyncio.sleep(0.3)
    started = time.monotonic()
    honest = Attacker(target, source="127.0.3.1")
    await honest.connect()
    seen["honest peer in, ms"] = int((time.monotonic() - started) * 1000)
    assert await honest.settle()
    for _ in range(rounds):  # all at once, from 16 addresses (a cut record waits for the handshake timeout, 3 s)
        outcomes = await asyncio.gather(
            *(
                (raw_connection if layer == "tcp" else tls_connection)(
                    target, data, hold_s=5, source=f"127.0.4.{i % 16}"
                )
                for i, (layer, _, data) in enumerate(inputs)
            )
        )
        for (layer, category, _), closed in zip(inputs, outcomes, strict=True):
            seen[f"{layer} {category}"] += 1
            seen["closed by the node" if closed else "left open"] += 1
    await honest.close()
    seen["half-open"] = len(idle)
    await asyncio.gather(*idle, return_exceptions=True)
    return seen


def record(name: str, seen: Counter[str]) -> None:
    print(f"{name}: {dict(seen)}")
    COUNTS.update({f"{name}: {k}": v for k, v in seen.items() if not k.startswith(("seconds", "honest", "heights"))})


# --- the quick run (make test) --------------------------------------------------------------------


def test_garbage_before_and_during_the_handshake(net: Net) -> None:
    seen = run(handshake_campaign(net, random.Random(SEED), 1))
    record("handshake", seen)
    assert seen["left open"] == 0 and seen["honest peer in, ms"] < 1000, seen
    check_node(net, what="handshake")


def test_mutated_frames_of_every_type(net: Net) -> None:
    seen = run(mutated_campaign(net, random.Random(SEED), 1500))
    record("mutated", seen)
    assert seen["banned"] > 0 and seen["sessions"] > seen["banned"], seen  # malformed frames lead to bans
    check_node(net, what="mutated frames")


def test_frames_at_the_limits(net: Net) -> None:
    """A frame of 16 million nils held the loop 1.8 s; it is refused now from its first 65,536 values."""
    before = penalties(net, "MalformedFrame")
    record("limits", run(limits_campaign(net, random.Random(SEED))))
    assert penalties(net, "MalformedFrame") >= before + 2
    check_node(net, what="frames at the limits")


def test_unsolicited_blocks_are_not_decoded(net: Net) -> None:
    """50,000 transactions in a block nobody asked for were decoded on the loop (413 ms) before the check."""
    before = penalties(net, "unsolicited")
    record("unsolicited blocks", run(unsolicited_blocks_campaign(net, random.Random(SEED))))
    assert penalties(net, "unsolicited") == before + 2
    check_node(net, what="unsolicited blocks")


def test_replayed_and_duplicated_messages(net: Net) -> None:
    record("replay", run(replay_campaign(net, random.Random(SEED), 20)))
    check_node(net, what="replays")


def test_floods_are_rate_limited_and_banned(net: Net) -> None:
    before = penalties(net, "rate_limited")
    seen = run(flood_campaign(net, random.Random(SEED), 40))
    record("flood", seen)
    assert seen["ended banned"] == 4, seen
    assert penalties(net, "rate_limited") >= before + 4 * 20  # 20 drops of 5 points reach -100
    check_node(net, what="floods")


def test_votes_and_proposals_for_far_heights_and_rounds(net: Net) -> None:
    seen = run(far_heights_campaign(net, random.Random(SEED)))
    record("far heights", seen)
    assert seen["far, banned"] == 0 and seen["ended banned"] == 1, seen  # other heights cost nothing; forgeries do
    check_node(net, what="far heights")


def test_huge_block_ranges_and_many_chunks(net: Net) -> None:
    seen = run(requests_campaign(net, random.Random(SEED), 400))
    record("requests", seen)
    assert seen["sessions"] == 1, seen  # asking is no offence, within the bounds
    check_node(net, what="requests")


def test_a_flood_of_chunk_requests_is_bounded(net: Net) -> None:
    """1,500 requests of 8 chunks (4 MiB each) queued 48 GB of reads for one peer, and RSS grew with them: now
    a peer has at most 32 chunks asked and not yet sent, and more costs score."""
    before, bans = penalties(net, "too_many_requests"), net.target.metric("aichain_p2p_bans_total")
    seen = run(chunk_flood_campaign(net, 1500))
    record("chunk flood", seen)
    assert penalties(net, "too_many_requests") >= before + 20, seen
    # Banned; its Disconnect may never reach it: it waits behind the 32 chunks of 4 MiB already queued, and
    # the connection is cut when closing takes longer than the close timeout.
    assert net.target.metric("aichain_p2p_bans_total") >= bans + 1 and seen["ended still open"] == 0, seen
    check_node(net, what="chunk flood")


def test_a_peer_that_never_reads_is_dropped(net: Net) -> None:
    before = net.target.metric("aichain_p2p_disconnects_total", reason="slow")
    seen = run(slow_reader_campaign(net))
    record("slow reader", seen)
    assert net.target.metric("aichain_p2p_disconnects_total", reason="slow") == before + 1, seen
    check_node(net, what="slow reader")


def test_a_peer_announcing_a_head_it_cannot_serve(net: Net) -> None:
    record("unserved heads", run(unserved_head_campaign(net)))
    check_node(net, what="unserved heads")


def test_a_flood_of_unfunded_transactions(net: Net) -> None:
    """Each refusal kept its traceback, and so a reference cycle: the collector paused the loop 285 ms every 2 s."""
    seen = run(unfunded_flood_campaign(net, random.Random(SEED), 2.5))
    record("unfunded", seen)
    assert seen["heights meanwhile"] >= 3, seen
    check_node(net, what="unfunded flood")


# --- soak (make soak) -----------------------------------------------------------------------------


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_every_campaign_again_and_again(net: Net) -> None:
    """Every campaign, bigger, ten times over with other seeds; RSS sampled after each round must level off."""
    samples: list[int] = []
    started = time.monotonic()
    for round_ in range(10):
        rng = random.Random(SEED * 1000 + round_)
        record("soak handshake", run(handshake_campaign(net, rng, 3)))
        record("soak mutated", run(mutated_campaign(net, rng, 20_000)))
        record("soak limits", run(limits_campaign(net, rng)))
        record("soak unsolicited blocks", run(unsolicited_blocks_campaign(net, rng)))
        record("soak replay", run(replay_campaign(net, rng, 200)))
        record("soak flood", run(flood_campaign(net, rng, 40)))
        record("soak far heights", run(far_heights_campaign(net, rng)))
        record("soak requests", run(requests_campaign(net, rng, 5000)))
        record("soak chunk flood", run(chunk_flood_campaign(net, 5000)))
        record("soak slow reader", run(slow_reader_campaign(net)))
        record("soak unfunded", run(unfunded_flood_campaign(net, rng, 30)))
        samples.append(net.target.health().rss_kib)
        print(f"soak round {round_}: {time.monotonic() - started:.0f} s, RSS (KiB) after each round: {samples}")
        check_node(net, what=f"soak round {round_}", rss_growth_kib=SOAK_RSS_GROWTH_KIB)
    print(f"soak: {time.monotonic() - started:.0f} s; RSS after each round (KiB): {samples}")
    third = len(samples) // 3
    assert max(samples[-third:]) - max(samples[third : 2 * third]) < 64 * 1024, samples
