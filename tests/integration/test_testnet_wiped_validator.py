"""A validator that lost its signing record does not double-sign; one that does is caught.

An operator wipes a validator's data directory but keeps its keys and node.toml (a common
recovery step), or runs a second instance of a validator key. Without its sign state the
validator could sign different bytes where its key already signed. It must sync and wait until
`double_sign_check_height` heights pass without its key signing (node/consensus/double_sign_guard.py),
and a precommit that contradicts a stored commit must become evidence that lands in a block.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from core.block import Vote, VoteType
from core.evidence import DuplicateVote
from core.keys import address_hex, read_key_file
from node import testnet
from node.p2p.framing import encode_frame
from tests.integration.testnet_support import Testnet, raw_peer, wait_for

CHECK_HEIGHT = 12
KEPT = {"validator.pem", "node_key.pem", "node.toml", "node.log"}


def _add_consensus_setting(net: Testnet, i: int, line: str) -> None:
    path = net.nodes[i].dir / "node.toml"
    path.write_text(path.read_text() + f"\n[consensus]\n{line}\n")


def _signed(net: Testnet, observers: list[int], address: str, first: int, last: int) -> list[int]:
    """Heights in first..last whose commit, as any observer stored it, carries `address`."""
    return [h for h in range(first, last + 1) if any(address in net.commit_signers(i, h) for i in observers)]


def _signed_in_chain(net: Testnet, observer: int, address: str, first: int, last: int) -> list[int]:
    """Heights in first..last whose commit, as the next block carries it (`last_commit`), holds `address`.

    That is the commit every node agrees on, and what a node syncing the chain sees. The commit a
    node stored when it decided a height holds the first 2f+1 precommits that reached it, so
    another node's may carry a signature the chain's does not."""
    blocks = net.blocks(observer, first + 1, last + 1)
    return [
        block["height"] - 1
        for block in blocks
        if address in {s["validator"].lower() for s in block["last_commit"]["signatures"]}
    ]


def _evidence_against(net: Testnet, i: int, first: int, last: int) -> set[str]:
    found = set()
    for block in net.blocks(i, first, last):
        for raw in block["evidence"]:
            found.add(address_hex(DuplicateVote.decode(bytes.fromhex(raw[2:])).validator).lower())
    return found


def test_a_validator_whose_data_was_wiped_waits_then_signs_again_and_the_chain_goes_on(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=4, start=False) as net:
        _add_consensus_setting(net, 3, f"double_sign_check_height = {CHECK_HEIGHT}")
        net.start(0, 1, 2, 3)
        net.wait_height(range(4), 3, 30)
        me = net.validator_address(3)
        node = net.nodes[3]
        assert testnet.stop_node(node)  # SIGTERM, as an operator would
        for path in node.dir.iterdir():  # everything but the keys and the config
            if path.name not in KEPT:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        others = [0, 1, 2]
        stopped_at = max(net.heights(others).values())
        net.start(3)
        assert "head 0," in net.log(3).rsplit("node started:", 1)[1].split("\n")[0], "it starts from nothing"
        net.wait_height(others, stopped_at + 2, 30)
        # The guard counts from the last height whose commit, as the chain carries it, holds its key's
        # signature: a node's own stored commit of a later height may hold one the chain's does not
        # (it took the first 2f+1 precommits that reached it), which a wiped node cannot know of.
        last_before = max(_signed_in_chain(net, 0, me, max(1, stopped_at - 10), stopped_at + 1), default=0)

        # It catches up and follows, but its key signs nothing for CHECK_HEIGHT heights; then it does again.
        deadline = time.monotonic() + 90
        signed_again: list[int] = []
        while not signed_again:
            assert time.monotonic() < deadline, f"node3 signs nothing after the wipe:\n{net.log_tail(node)}"
            top = min(net.heights(others).values())
            # As the chain carries its commits, like last_before: an observer's stored commit of the height
            # at the wipe may hold a precommit node3 made before it, which the chain's does not.
            signed_again = _signed_in_chain(net, 0, me, last_before + 1, top - 1)
            time.sleep(0.3)
        assert signed_again[0] > last_before + CHECK_HEIGHT, (
            f"node3 signed height {signed_again[0]}, less than {CHECK_HEIGHT} heights after its key last signed "
            f"({last_before}) before the wipe"
        )
        log = net.log(3)
        assert "not signing at height" in log and "signing again from height" in log
        # The chain went on meanwhile, nobody equivocated, and all four hold the same chain.
        net.wait_height(range(4), signed_again[0] + 1, 30)
        top = net.assert_same_chain(range(4))
        assert not _evidence_against(net, 0, 1, top)
        assert net.call(3, "consensus_status")["signing"] == "yes"


def test_a_second_instance_of_a_validator_key_refuses_to_sign_and_says_why(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=4, full_nodes=1, start=False) as net:
        twin = net.nodes[4]
        toml = twin.dir / "node.toml"  # the full node gets node3's validator key: a second instance of it
        second = 'node_key = "node_key.pem"\nvalidator_key = "../node3/validator.pem"'
        toml.write_text(toml.read_text().replace('node_key = "node_key.pem"', second))
        net.start(0, 1, 2, 3)
        net.wait_height(range(4), 3, 30)
        me = net.validator_address(3)
        net.start(4)
        assert net.call(4, "node_status")["validator"].lower() == me
        wait_for(
            lambda: "another instance with this key may be running" in net.log(4),
            30,
            "the second instance to say another instance of its key runs",
        )
        started = net.height(0)
        net.wait_height(range(5), started + 15, 60)
        status = net.call(4, "consensus_status")
        assert status["signing"].startswith("held:"), status["signing"]
        top = net.assert_same_chain(range(5))
        assert not _evidence_against(net, 0, 1, top), "the key equivocated"
        assert me in net.validator_addresses(0)
        assert _signed(net, [0, 1, 2], me, top - 5, top), "node3 itself signs on"


def test_a_precommit_contradicting_a_stored_commit_is_evidence_and_the_signer_leaves_the_set(tmp_path: Path) -> None:
    """What a wiped validator (or a second instance of its key) does at a height long decided: a peer
    that committed that height no longer drops the vote, it turns it into evidence."""
    with Testnet(tmp_path, validators=4) as net:
        net.wait_height(range(4), 4, 30)
        me = net.validator_address(3)
        # A commit holds the first 2f+1 precommits that arrived: on a loaded machine node3's may miss a few.
        height = wait_for(
            lambda: next((h for h in range(2, net.height(0) + 1) if me in net.commit_signers(0, h)), None),
            30,
            "a stored commit that node3 signed",
        )
        commit = net.call(0, "chain_getCommit", height)
        key = read_key_file(net.validator_key(3), None)
        conflicting = Vote(VoteType.PRECOMMIT, height, int(commit["round"]), b"", key.address).signed_by(
            key, net.chain_id
        )
        status = net.call(0, "node_status")

        async def send() -> None:
            peer = await raw_peer(
                status["p2p_port"], status["chain_id"], bytes.fromhex(status["genesis_hash"][2:]), "127.0.0.1"
            )
            await peer.send_raw(encode_frame(18, [18, conflicting.to_wire()]))
            await asyncio.sleep(0.5)
            peer.close()

        asyncio.run(send())
        found: list[int] = []
        checked = height

        def evidence_landed() -> bool:
            nonlocal checked
            top = net.height(0)
            if top > checked:
                found.extend(b["height"] for b in net.blocks(0, checked + 1, top) if b["evidence"])
                checked = top
            return bool(found)

        wait_for(evidence_landed, 30, "the evidence in a block")
        assert _evidence_against(net, 0, found[0], found[0]) == {me}
        net.wait_height([0, 1, 2], found[0] + 2, 30)
        assert me not in net.validator_addresses(0)
        assert "equivocated at height" in net.log(0)
