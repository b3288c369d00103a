"""Fuzzing transactions against a real node, over JSON-RPC (`tx_send`, `tx_sendBatch`) and P2P gossip (type 16).

Valid transactions of funded senders are mutated (bits flipped anywhere, each field at its
boundaries or wrong, re-signed or not, cut, replayed, replaced, data at the size limit and past
it) and sent one by one, in batches, and as gossip from several peers at once. The properties:
every refusal is an error code docs/rpc.md documents (never -32603); every hash the node
acknowledged is committed or reported evicted with a reason by `tx_get` (never forgotten); the
transactions peers gossiped that are valid get committed; the node's event loop never blocks for
more than 100 ms. And a batch of 10,000 transactions never holds the loop 50 ms (it held it 86).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.keys import PrivateKey, address_hex
from core.transaction import Transaction
from tests.harness import NodeProcess
from tests.integration.p2p_attack import Attacker, Target
from tests.integration.p2p_frames import frame
from tests.integration.support import CHAIN_ID, DEV_KEY, batch, pending_nonce, post, raw
from tests.integration.testnet_support import wait_for
from tests.integration.tx_mutants import mutants, transfer
from tests.node_health import Health, stall_lines, tracebacks

SEED = 1818
SENDERS = 10
COUNTS: Counter[str] = Counter()
DOCUMENTED = {
    int(code)
    for code in re.findall(r"^\| (-32\d{3}) \|", (Path(__file__).parents[2] / "docs" / "rpc.md").read_text(), re.M)
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("txfuzz"), block_time_ms=200) as running:
        yield running
    print(f"\ntransaction fuzz inputs (seed {SEED}): {dict(sorted(COUNTS.items()))}")


@pytest.fixture(scope="module")
def senders(node: NodeProcess) -> list[PrivateKey]:
    rng = random.Random(SEED)
    keys = [PrivateKey.from_seed(rng.randbytes(32)) for _ in range(SENDERS)]
    nonce = pending_nonce(node, DEV_KEY.address)
    txs = [transfer(DEV_KEY, CHAIN_ID, nonce + i, value=10**14, to=key.address) for i, key in enumerate(keys)]
    assert all("result" in a for a in batch(node.url, [("tx_send", [raw(t)]) for t in txs]))
    assert node.rpc.call("tx_wait", "0x" + txs[-1].hash.hex(), 30) is not None
    return keys


def check_outcome(outcome: dict, category: str, seen: Counter[str]) -> str | None:
    """The hash of an admitted transaction, or None for a refusal with a documented code."""
    if "hash" in outcome or "result" in outcome:
        seen[f"{category}: admitted"] += 1
        return outcome.get("hash") or outcome["result"]["hash"]
    error = outcome["error"]
    assert error["code"] in DOCUMENTED and error["code"] != -32603, (category, error)
    assert isinstance(error["message"], str) and error["message"], (category, error)
    seen[f"{category}: {error['code']}"] += 1
    return None


def settled(node: NodeProcess, hashes: list[str]) -> dict[str, int]:
    """Each acknowledged hash committed or evicted with a reason, once the mempool has drained."""
    wait_for(lambda: node.rpc.call("node_status")["mempool_txs"] == 0, 30, "the mempool to drain")
    states: Counter[str] = Counter()
    for start in range(0, len(hashes), 500):
        answers = batch(node.url, [("tx_get", [h]) for h in hashes[start : start + 500]])
        for tx_hash, answer in zip(hashes[start : start + 500], answers, strict=True):
            view = answer["result"]
            assert view is not None, f"{tx_hash} was acknowledged and is now unknown"
            if view["status"] == "evicted":
                assert view["reason"] and view["message"], view
            states[view["status"] if view["status"] != "evicted" else f"evicted ({view['reason']})"] += 1
    return dict(states)


def check_health(node: NodeProcess, before: Health) -> Health:
    text = node.log_path.read_text()
    assert not tracebacks(text), tracebacks(text)[:5]
    assert not stall_lines(text), stall_lines(text)[:5]
    now = Health.of(node)
    assert now.stalls_since(before) == 0, now
    return now


def rpc_rounds(
    node: NodeProcess, senders: list[PrivateKey], rng: random.Random, rounds: int, seen: Counter[str]
) -> list[str]:
    """Each round: every sender's next transaction and its mutants, a third by tx_send, the rest in one
    tx_sendBatch. Returns the hashes acknowledged (each refusal checked on the way)."""
    limit = int(node.rpc.call("node_genesis")["params"]["block_gas_limit"])
    acknowledged: list[str] = []
    accepted: list[Transaction] = []
    for round_ in range(rounds):
        inputs: list[tuple[str, bytes]] = []
        for key in senders:
            tx = transfer(key, CHAIN_ID, pending_nonce(node, key.address), price=1 + round_ % 7)
            inputs += mutants(rng, tx, key, limit, accepted[-50:])
            accepted.append(tx)
        one_by_one, batched = inputs[::3], [x for i, x in enumerate(inputs) if i % 3]
        answers = batch(node.url, [("tx_send", ["0x" + data.hex()]) for _, data in one_by_one])
        for (category, _), answer in zip(one_by_one, answers, strict=True):
            if (tx_hash := check_outcome(answer, category, seen)) is not None:
                acknowledged.append(tx_hash)
        (answer,) = batch(node.url, [("tx_sendBatch", [["0x" + data.hex() for _, data in batched]])])
        for (category, _), outcome in zip(batched, answer["result"], strict=True):
            if (tx_hash := check_outcome(outcome, category, seen)) is not None:
                acknowledged.append(tx_hash)
        COUNTS["rpc transactions"] += len(inputs)
    return acknowledged


async def gossip_rounds(
    node: NodeProcess, senders: list[PrivateKey], rng: random.Random, rounds: int
) -> tuple[list[Transaction], Counter[str]]:
    """Each round: a batch of every sender's next transaction from three peers at once, and the mutants
    of each from a fourth peer that holds no key of the senders, one to a frame. Returns the valid ones."""
    target = Target.of_process(node)
    limit = int(node.rpc.call("node_genesis")["params"]["block_gas_limit"])
    honest = [Attacker(target, source=f"127.0.5.{i + 1}") for i in range(3)]
    hostile = Attacker(target, source="127.0.5.9")
    valid: list[Transaction] = []
    for _ in range(rounds):
        batch_: list[bytes] = []
        for key in senders:
            tx = transfer(key, CHAIN_ID, pending_nonce(node, key.address))
            for category, data in mutants(rng, tx, key, limit, valid[-50:]):
                if category in ("bit flip", "cut", "replay") or "not re-signed" in category:  # no key of theirs
                    await hostile.send(frame(16, [16, [data]]))
                    COUNTS["gossiped mutants"] += 1
            valid.append(tx)
            batch_.append(tx.encoded)
        for peer in honest:
            await peer.send(frame(16, [16, batch_]))
            COUNTS["gossiped transactions"] += len(batch_)
        for peer in [*honest, hostile]:
            await peer.settle()
    ended = Counter(hostile.ended)
    ended["hostile sessions"] = hostile.sessions
    ended["honest sessions"] = sum(peer.sessions for peer in honest)
    for peer in [*honest, hostile]:
        await peer.close()
    return valid, ended


def test_mutated_transactions_over_rpc(node: NodeProcess, senders: list[PrivateKey]) -> None:
    before = Health.of(node)
    seen: Counter[str] = Counter()
    states = settled(node, rpc_rounds(node, senders, random.Random(SEED), 6, seen))
    print(dict(sorted(seen.items())), states)
    assert states.get("committed", 0) >= 6 * SENDERS
    check_health(node, before)


def test_mutated_transactions_gossiped_by_several_peers(node: NodeProcess, senders: list[PrivateKey]) -> None:
    """Valid batches from three peers at once (each transaction arrives three times), and mutants from a fourth
    peer, one to a frame (a frame with one malformed transaction is refused whole), banned and back again."""
    before = Health.of(node)
    valid, ended = asyncio.run(gossip_rounds(node, senders, random.Random(SEED + 1), 4))
    print(ended)
    assert ended["honest sessions"] == 3, ended  # the peers that sent only valid batches were never dropped
    assert ended["banned"] > 0, ended
    states = settled(node, ["0x" + tx.hash.hex() for tx in valid])
    assert states == {"committed": len(valid)}, states
    check_health(node, before)


def test_a_batch_of_ten_thousand_holds_the_loop_less_than_50ms(node: NodeProcess, senders: list[PrivateKey]) -> None:
    """Decoding and prechecks of a 10,000-transaction batch ran in one stretch: 86 ms of blocked loop (22-25 ms
    now, on an idle machine). On a machine shared with other work a single batch can exceed 50 ms for reasons of
    its own, so a second batch gets the chance the first lost; a node that holds its loop 86 ms fails both."""
    before = Health.of(node)
    for attempt in range(2):
        nonces = {key.address: pending_nonce(node, key.address) for key in senders}
        txs = [transfer(key, CHAIN_ID, nonces[key.address] + n) for key in senders for n in range(1000)]
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tx_sendBatch", "params": [[raw(tx) for tx in txs]]})
        start = Health.of(node)
        results = post(node.url, body, timeout=60).json()["result"]
        after = check_health(node, before)  # never over 100 ms, whatever the machine
        assert all("hash" in r for r in results), [r for r in results if "hash" not in r][:3]
        COUNTS["batch transactions"] += len(txs)
        states = settled(node, [r["hash"] for r in results])  # tx_get of each, in blocks of thousands
        assert states == {"committed": len(txs)}, states
        if after.over_50ms_since(start) == 0:
            break
        assert attempt == 0, (start, after)
    # 10,000 more, of accounts that hold nothing: each refused (-32008, or -32006 for a nonce after a refused one).
    empty = [transfer(PrivateKey.from_seed(bytes([n % 250 + 1]) * 32), CHAIN_ID, n // 250) for n in range(10_000)]
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tx_sendBatch", "params": [[raw(tx) for tx in empty]]})
    codes = Counter(r["error"]["code"] for r in post(node.url, body, timeout=60).json()["result"])
    assert set(codes) <= {-32008, -32006} and codes.total() == len(empty), codes
    COUNTS["batch transactions"] += len(empty)
    check_health(node, before)


def test_no_sender_left_behind(node: NodeProcess, senders: list[PrivateKey]) -> None:
    """After all the fuzzing, each sender's next transaction is admitted and committed."""
    for key in senders:
        tx = transfer(key, CHAIN_ID, pending_nonce(node, key.address))
        assert node.rpc.call("tx_wait", node.rpc.send(tx), 30) is not None
        assert pending_nonce(node, key.address) == tx.nonce + 1
    assert node.rpc.call("state_getAccount", address_hex(senders[0].address))["nonce"] > 0


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_transactions(node: NodeProcess, senders: list[PrivateKey]) -> None:
    """The same for longer: 30 times 20 rounds over RPC and 10 of gossip; RSS sampled after each must level off."""
    before = Health.of(node)
    samples: list[int] = []
    seen: Counter[str] = Counter()
    for n in range(30):
        rng = random.Random(SEED * 100 + n)
        acknowledged = rpc_rounds(node, senders, rng, 20, seen)
        valid, _ = asyncio.run(gossip_rounds(node, senders, rng, 10))
        settled(node, acknowledged)
        assert settled(node, ["0x" + tx.hash.hex() for tx in valid]) == {"committed": len(valid)}
        samples.append(check_health(node, before).rss_kib)
    print(dict(sorted(seen.items())), f"RSS after each round (KiB): {samples}")
    third = len(samples) // 3
    assert max(samples[-third:]) - max(samples[third : 2 * third]) < 32 * 1024, samples
