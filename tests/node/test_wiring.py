"""Misbehaviour lives in tests: the node is wired as shipped unless the test harness names a wiring
file (node/wiring.py), and the misbehaving parts (tests/faults.py) wrap the node's own. Production
configuration has no switch for any of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.block import Block, Header, Vote, VoteType
from core.errors import ConfigError
from core.hashing import ZERO_HASH
from core.keys import PrivateKey
from core.proposal import Proposal
from node.config import NodeConfig, load_config
from node.consensus.messages import ConsensusMessage, SignedProposal, SignedVote
from node.consensus.signer import DoubleSignRefused, Signer
from node.wiring import ENV, Wiring, load_wiring
from tests import faults

CHAIN = 5
KEY = PrivateKey.generate()


def test_without_the_variable_the_node_is_wired_as_shipped(tmp_path: Path) -> None:
    faults.set_faults(tmp_path, equivocate=True)  # ignored: nobody named the wiring file
    assert type(load_wiring({}, NodeConfig(datadir=tmp_path))) is Wiring


def test_the_named_file_wires_the_faults_of_the_node_it_starts(tmp_path: Path) -> None:
    environ = {ENV: str(Path(faults.__file__).resolve())}
    assert type(load_wiring(environ, NodeConfig(datadir=tmp_path))) is Wiring  # no faults.json: as shipped
    faults.set_faults(tmp_path, equivocate=True, corrupt_chunks=True)
    wiring = load_wiring(environ, NodeConfig(datadir=tmp_path))
    assert type(wiring).__name__ == "Faults" and isinstance(wiring, Wiring)
    assert wiring.served_chunks(lambda chunk_id: b"\x10\x20")(b"id") == b"\x11\x20"


def test_a_wiring_variable_that_names_no_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a Python file; unset it"):
        load_wiring({ENV: str(tmp_path / "missing.py")}, NodeConfig(datadir=tmp_path))


@pytest.mark.parametrize(
    "setting",
    [
        "test_double_sign = true",
        "test_commit_delay_ms = 500",
        "[consensus]\ntest_exit_after_prevote_at = 3",
        "[artifacts]\ntest_corrupt_chunks = true",
    ],
)
def test_the_former_test_switches_are_not_settings(tmp_path: Path, setting: str) -> None:
    path = tmp_path / "node.toml"
    path.write_text(setting + "\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(path)


async def test_an_equivocating_validator_sends_a_conflicting_vote_its_signer_would_refuse(tmp_path: Path) -> None:
    sent: list[ConsensusMessage] = []

    async def network(message: ConsensusMessage) -> None:
        sent.append(message)

    signer = Signer(KEY, CHAIN, tmp_path / "sign_state.json")
    broadcast = faults.equivocating(network, signer)
    vote = signer.sign_vote(Vote(VoteType.PREVOTE, 3, 0, b"\x01" * 32, KEY.address))
    await broadcast(SignedVote(vote))
    assert sent[0] == SignedVote(vote)
    (twin,) = [m.vote for m in sent[1:] if isinstance(m, SignedVote)]
    assert (twin.height, twin.round, twin.vote_type) == (3, 0, VoteType.PREVOTE) and twin.block_hash == b""
    assert twin.verify(KEY.public_key, CHAIN), "signed with the validator's key"
    with pytest.raises(DoubleSignRefused):  # the node's own signer never equivocates
        signer.sign_vote(Vote(VoteType.PREVOTE, 3, 0, b"", KEY.address))

    header = Header(
        CHAIN,
        3,
        1,
        ZERO_HASH,
        KEY.address,
        ZERO_HASH,
        ZERO_HASH,
        ZERO_HASH,
        ZERO_HASH,
        ZERO_HASH,
        ZERO_HASH,
        ZERO_HASH,
        0,
        0,
    )
    block = Block(header, (), None, ())
    proposal = SignedProposal(Proposal(3, 0, -1, block.hash, KEY.address).signed_by(KEY, CHAIN), block)
    await broadcast(proposal)
    assert sent[-1] == proposal and len(sent) == 3, "a proposal goes out alone"
