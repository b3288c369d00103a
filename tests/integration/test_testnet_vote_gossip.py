"""A hostile peer cannot turn vote gossip into a flood: whatever it announces, a node sends it at
most `VOTES_PER_S` votes and `PROPOSALS_PER_S` proposals a second (plus what it floods anyway)."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path
from typing import Any

from consensus.events import Step
from consensus.vote_gossip import RoundStep
from node.consensus.vote_gossip import PROPOSAL_BURST, PROPOSALS_PER_S, ROUND_STEP, VOTES_PER_S, encode_round_step
from node.p2p.framing import decode_body, encode_frame, limits_for, read_frame
from tests.integration.testnet_support import Testnet, raw_peer

ATTACK_S = 3.0


def test_a_peer_that_keeps_announcing_it_lacks_everything_gets_a_bounded_share(tmp_path: Path) -> None:
    with Testnet(tmp_path, validators=4) as net:
        net.wait_height(range(4), 3, 30)
        status = net.call(0, "node_status")
        url = net.nodes[0].rpc_url
        sent_before = {kind: _gossip_sent(url, kind) for kind in ("vote", "proposal")}

        async def attack() -> dict[int, int]:
            peer = await raw_peer(
                status["p2p_port"], status["chain_id"], bytes.fromhex(status["genesis_hash"][2:]), "127.0.0.1"
            )
            counts: dict[int, int] = {}
            height = [net.height(0) + 1]

            async def read() -> None:
                while True:
                    frame = await read_frame(peer.reader, max_frame_size=1 << 26, idle_timeout=None, body_timeout=5)
                    counts[frame.msg_type] = counts.get(frame.msg_type, 0) + 1
                    if frame.msg_type == ROUND_STEP:
                        body: Any = decode_body(frame.body, limits_for(1 << 26))
                        height[0] = body[1]

            reader = asyncio.create_task(read())
            deadline = time.monotonic() + ATTACK_S
            flip = 0
            while time.monotonic() < deadline:  # "I hold nothing", at its height and the one before, by turns
                flip ^= 1
                step = RoundStep(height[0] - flip, 0, int(Step.PROPOSE))
                await peer.send_raw(encode_frame(ROUND_STEP, encode_round_step(step)))
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.5)
            reader.cancel()
            peer.close()
            return counts

        counts = asyncio.run(attack())
        votes = _gossip_sent(url, "vote") - sent_before["vote"]
        proposals = _gossip_sent(url, "proposal") - sent_before["proposal"]
        print(
            f"in {ATTACK_S:.0f} s of announcements: {votes:.0f} votes and {proposals:.0f} proposals sent by gossip; "
            f"frames to the attacker by type: {counts}"
        )
        # Other peers are caught up: nearly all of this went to the attacker.
        assert votes <= VOTES_PER_S * (ATTACK_S + 1), votes
        assert proposals <= PROPOSALS_PER_S * (ATTACK_S + 1) + PROPOSAL_BURST + 3, proposals
        assert counts.get(18, 0) > 0, "it was sent votes it lacked (the gossip works for it too)"
        # The network kept finalizing meanwhile.
        head = net.height(0)
        net.wait_height(range(4), head + 3, 20)
        net.assert_same_chain(range(4))


def _gossip_sent(url: str, kind: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = f'aichain_consensus_gossip_sent_total{{kind="{kind}"}}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))
