"""Peers that do not belong: another genesis is refused at the handshake; a peer sending
malformed, oversized or unsolicited frames is disconnected and banned; the node keeps going."""

from __future__ import annotations

import asyncio
import ssl
import struct
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.p2p import MsgType
from node.p2p.errors import P2PError
from node.p2p.framing import DEFAULT_MAX_FRAME_SIZE, encode_frame, frame_from_body
from node.p2p.sync import BLOCKS
from tests.integration.testnet_support import Testnet, raw_peer, wait_for

TXS = 16  # node/network.py


def test_a_node_with_another_genesis_is_refused_at_the_handshake(tmp_path: Path) -> None:
    with Testnet(tmp_path / "ours", validators=1, full_nodes=1) as net:
        net.start(1)
        wait_for(lambda: net.call(1, "node_status")["peers"] == 1, 20, "our two nodes to connect")
        ours = net.call(0, "node_status")
        # Same chain id, another genesis (other validator keys), and our node0 as its bootnode.
        with Testnet(tmp_path / "other", validators=1, start=False) as other:
            other.start(0, extra=["--bootnodes", net.nodes[0].bootnode])
            theirs = other.call(0, "node_status")
            assert theirs["chain_id"] == ours["chain_id"] and theirs["genesis_hash"] != ours["genesis_hash"]
            # Each side refuses the other's Hello, and says why in its log.
            refused_by_us = f"genesis {theirs['genesis_hash'][:10]}.., we are on chain {ours['chain_id']} / genesis"
            refused_by_them = f"genesis {ours['genesis_hash'][:10]}.., we are on chain {ours['chain_id']} / genesis"
            wait_for(lambda: refused_by_us in net.log(0), 15, "node0 to log the refusal of the other genesis")
            wait_for(lambda: refused_by_them in other.log(0), 15, "the stranger to refuse our genesis too")
            for _ in range(10):  # it keeps dialing with backoff; it never gets in
                assert other.call(0, "node_status")["peers"] == 0
                assert net.call(0, "node_status")["peers"] == 1
                assert net.call(1, "node_status")["peers"] == 1
                asyncio.run(asyncio.sleep(0.2))
            # Both chains went on, each on its own.
            assert other.height(0) > 0
        head = net.height(0)
        net.wait_height([0, 1], head + 2, 20)
        net.assert_same_chain([0, 1])


MALFORMED = frame_from_body(TXS, b"\xc1")  # not msgpack at all
OVERSIZED = struct.pack(">I", DEFAULT_MAX_FRAME_SIZE + 1) + bytes([TXS])
UNSOLICITED = encode_frame(BLOCKS, [BLOCKS, 1, []])  # blocks nobody asked this peer for


@pytest.mark.parametrize(
    ("source", "frames"),
    [("127.0.0.2", MALFORMED * 6), ("127.0.0.3", OVERSIZED), ("127.0.0.4", UNSOLICITED * 12)],
    ids=["malformed", "oversized", "unsolicited"],
)
def test_a_misbehaving_peer_is_disconnected_and_banned_and_the_node_keeps_running(
    tmp_path: Path, source: str, frames: bytes
) -> None:
    with Testnet(tmp_path, validators=1, full_nodes=1) as net:
        net.start(1)
        wait_for(lambda: net.call(1, "node_status")["peers"] == 1, 20, "our two nodes to connect")
        status = net.call(0, "node_status")
        genesis = bytes.fromhex(status["genesis_hash"][2:])
        port = status["p2p_port"]

        async def attack() -> list[tuple[int, object]]:
            peer = await raw_peer(port, status["chain_id"], genesis, source)
            await peer.send_raw(frames)
            got = await peer.read_until_closed(timeout=10)
            peer.close()
            # The ban holds the node key: it cannot come back. (On loopback, where a local testnet's
            # honest nodes share one IP, the node bans keys rather than the address.)
            with pytest.raises((OSError, ssl.SSLError, asyncio.IncompleteReadError, ConnectionError, P2PError)):
                again = await raw_peer(port, status["chain_id"], genesis, source, peer.key)
                again.close()
            return got

        got = asyncio.run(attack())
        assert got and got[-1][0] == MsgType.DISCONNECT and got[-1][1][1] == "banned", got[-3:]  # type: ignore[index]
        wait_for(lambda: "banned" in net.log(0), 5, "node0 to log the ban")
        # The node keeps running and finalizing, with its honest peer still connected.
        head = net.height(0)
        net.wait_height([0, 1], head + 3, 20)
        assert net.call(0, "node_status")["peers"] == 1
        net.assert_same_chain([0, 1])
        # /metrics tells the operator: one peer, traffic both ways, one ban and its penalties.
        metrics = scrape(net.nodes[0].rpc_url)
        assert (
            metrics[("aichain_peers", (("direction", "inbound"),))]
            + metrics[("aichain_peers", (("direction", "outbound"),))]
            == 1
        )
        assert metrics[("aichain_p2p_bytes_total", (("direction", "in"),))] > 0
        assert metrics[("aichain_p2p_bytes_total", (("direction", "out"),))] > 0
        assert metrics[("aichain_p2p_bans_total", ())] >= 1
        assert sum(v for (name, _), v in metrics.items() if name == "aichain_p2p_penalties_total") > 0
        assert metrics[("aichain_consensus_total_power", ())] > 0
        assert metrics[("aichain_consensus_height", ())] >= head + 3


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a node's /metrics, by (name, sorted labels)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
