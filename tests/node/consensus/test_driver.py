"""The consensus driver on its own: a real `Tendermint` machine, real signers (with their signing
records), a real WAL on LevelDB and a real evidence pool; fakes only of its ports: the chain it
builds, executes and commits blocks on, the mempool, and the broadcast. No `Node`, no P2P.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest

from consensus.events import TimeoutConfig
from consensus.proposer import proposer_for
from consensus.tendermint import Tendermint
from core.block import Block, Commit, Header, Vote, VoteType
from core.errors import InvalidBlock
from core.genesis import ChainParams
from core.hashing import ZERO_HASH
from core.keys import PrivateKey
from core.proposal import Proposal
from core.transaction import Transaction
from core.validators import Validator, ValidatorSet
from node.block_thread import BlockThread
from node.chain import PendingBlock
from node.consensus.driver import ConsensusDriver
from node.consensus.evidence import EvidencePool
from node.consensus.inbox import Inbox
from node.consensus.messages import ConsensusMessage, SignedProposal, SignedVote, UnknownConsensusMessage
from node.consensus.prebuild import Prebuilder
from node.consensus.signer import Signer
from node.consensus.wal import ConsensusWal
from node.metrics import NodeMetrics
from storage.kv import KeyValueStore

CHAIN_ID = 31
T0 = 1_767_225_600_000
PARAMS = ChainParams(block_time_ms=20, empty_block_interval_ms=20)
FAST = TimeoutConfig(propose_s=1.0, prevote_s=0.5, precommit_s=0.5, cap_s=2.0)


class FakeChain:
    """The `Ledger` port: blocks are headers without state; one is valid if it extends the head."""

    def __init__(self, validators: ValidatorSet) -> None:
        self.validators = validators
        vhash = validators.hash()
        self.head = Header(
            CHAIN_ID,
            0,
            T0,
            ZERO_HASH,
            bytes(20),
            ZERO_HASH,
            ZERO_HASH,
            ZERO_HASH,
            vhash,
            vhash,
            ZERO_HASH,
            ZERO_HASH,
            0,
            0,
        )
        self.committed: list[tuple[Block, Commit]] = []
        self.executed: list[int] = []
        self.refused: list[bytes] = []

    def build(
        self, txs: list[Transaction], proposer: bytes, now_ms: int, evidence: tuple[bytes, ...] = ()
    ) -> PendingBlock:
        head, vhash = self.head, self.validators.hash()
        header = Header(
            CHAIN_ID,
            head.height + 1,
            max(now_ms, head.timestamp_ms + 1),
            head.hash,
            proposer,
            ZERO_HASH,
            ZERO_HASH,
            ZERO_HASH,
            vhash,
            vhash,
            ZERO_HASH,
            ZERO_HASH,
            0,
            len(txs),
        )
        return PendingBlock(Block(header, tuple(txs), None, evidence), [], {}, None, [])  # type: ignore[arg-type]

    def execute(self, block: Block, now_ms: int | None = None, verified: object = None) -> PendingBlock:
        if block.header.parent_hash != self.head.hash or block.height != self.head.height + 1:
            self.refused.append(block.hash)
            raise InvalidBlock(f"block {block.height} does not extend the head {self.head.height}")
        self.executed.append(block.height)
        return PendingBlock(block, [], {}, None, [])  # type: ignore[arg-type]

    def commit(self, pending: PendingBlock, commit: Commit) -> None:
        assert pending.block.header.parent_hash == self.head.hash, "a commit that does not extend the head"
        self.head = pending.block.header
        self.committed.append((pending.block, commit))


class EmptyMempool:
    """The `Pool` port: no transactions."""

    def __len__(self) -> int:
        return 0

    def select(self, max_txs: int, max_gas: int, max_bytes: int | None = None) -> list[Transaction]:
        return []

    def evict_invalid(self, dropped: Iterable[tuple[Transaction, Exception]], height: int) -> None:
        assert not list(dropped)

    def verified_hashes(self) -> frozenset[bytes]:
        return frozenset()


class Validating:
    """One validator's driver with its fakes; `sent` is what it broadcast."""

    def __init__(self, root: Path, key: PrivateKey, validators: ValidatorSet, timeouts: TimeoutConfig) -> None:
        root.mkdir(parents=True)
        self.key = key
        self.chain = FakeChain(validators)
        self.kv = KeyValueStore(root / "wal")
        self.blocks = BlockThread()
        self.inbox = Inbox()
        self.sent: list[ConsensusMessage] = []
        self.peers: list[Validating] = []
        self.signer = Signer(key, CHAIN_ID, root / "sign_state.json")
        self.driver = ConsensusDriver(
            machine=Tendermint(CHAIN_ID, key.address, timeouts),
            signer=self.signer,
            inbox=self.inbox,
            ledger=self.chain,
            params=PARAMS,
            mempool=EmptyMempool(),
            evidence=EvidencePool(lambda items: items),
            blocks=self.blocks,
            prebuilder=Prebuilder(self.chain, EmptyMempool(), self.blocks, PARAMS),  # type: ignore[arg-type]
            wal=ConsensusWal(self.kv),
            metrics=NodeMetrics(),
            on_committed=self.committed,
            tx_arrived=asyncio.Event(),
            broadcast=self.broadcast,
        )

    async def broadcast(self, message: ConsensusMessage) -> None:
        """The network, faked: every other validator's driver receives it as a peer's checked message."""
        self.sent.append(message)
        for peer in self.peers:
            peer.driver.receive(message)

    async def committed(self, pending: PendingBlock) -> None:
        self.inbox.wake()  # as the node does after each block

    async def close(self) -> None:
        await self.driver.stop()
        self.blocks.shutdown()
        self.kv.close()


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Callable[..., list[Validating]]]:
    made: list[Validating] = []

    def make(n: int, timeouts: TimeoutConfig = FAST) -> list[Validating]:
        keys = [PrivateKey.generate() for _ in range(n)]
        validators = ValidatorSet(tuple(Validator(k.public_key, 10) for k in keys))
        group = [Validating(tmp_path / f"v{len(made) + i}", key, validators, timeouts) for i, key in enumerate(keys)]
        for member in group:
            member.peers = [other for other in group if other is not member]
        made.extend(group)
        return group

    try:
        yield make
    finally:
        for member in made:
            await member.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


async def test_a_lone_validator_decides_heights_through_its_ports(network: Callable[..., list[Validating]]) -> None:
    (alone,) = network(1)
    alone.driver.start()
    await until(lambda: len(alone.chain.committed) >= 3, "three heights decided")
    for height, (block, commit) in enumerate(alone.chain.committed[:3], start=1):
        assert block.height == height and block.header.proposer == alone.key.address
        assert commit.block_hash == block.hash and commit.height == height
        (sig,) = commit.signatures  # its own precommit, made by its signer and checked against its key
        assert sig.validator == alone.key.address
        assert commit.precommit_of(sig).verify(alone.key.public_key, CHAIN_ID)
    kinds = [type(m) for m in alone.sent]
    assert SignedProposal in kinds and SignedVote in kinds, "what it signed went to the broadcast port"
    last = alone.signer.last_signed()
    assert last is not None and last[0] >= 3, "every signature went through the signer's record"


async def test_four_validators_decide_the_same_blocks_through_typed_messages(
    network: Callable[..., list[Validating]],
) -> None:
    group = network(4)
    for member in group:
        member.driver.start()
    await until(lambda: all(len(m.chain.committed) >= 3 for m in group), "every validator at height 3")
    reference = [block.hash for block, _ in group[0].chain.committed[:3]]
    for member in group[1:]:
        assert [block.hash for block, _ in member.chain.committed[:3]] == reference
    validators = group[0].chain.validators
    for block, commit in group[0].chain.committed[:3]:
        assert block.header.proposer == proposer_for(validators, block.height, commit.round).address
    for member in group:
        assert member.chain.executed, "blocks proposed by others were executed on the chain port before the vote"
    for _, commit in group[0].chain.committed[:3]:
        assert len(commit.signatures) >= 3, "a commit holds the precommits of more than 2/3 of the power"


@pytest.mark.parametrize(
    "message",
    [
        ("vote", Vote(VoteType.PREVOTE, 1, 0, b"\x01" * 32, b"\x02" * 20)),  # the old tuple form
        Vote(VoteType.PREVOTE, 1, 0, b"\x01" * 32, b"\x02" * 20),  # a bare vote
        None,
        b"\x12",
    ],
)
async def test_an_unknown_message_is_refused_and_deciding_goes_on(
    network: Callable[..., list[Validating]], message: object
) -> None:
    (alone,) = network(1)
    alone.driver.start()
    await until(lambda: len(alone.chain.committed) >= 1, "height 1 decided")
    with pytest.raises(UnknownConsensusMessage, match="not a consensus message"):
        alone.driver.receive(message)  # type: ignore[arg-type]
    before = len(alone.chain.committed)
    await until(lambda: len(alone.chain.committed) >= before + 2, "two more heights decided after the refusal")


async def test_a_proposal_the_chain_refuses_gets_a_nil_prevote(network: Callable[..., list[Validating]]) -> None:
    """A proposal whose block the chain port refuses (it does not extend the head) is handed to the
    machine as invalid: the validator prevotes nil at once, long before its propose timeout."""
    group = network(4, TimeoutConfig(propose_s=60.0, cap_s=60.0))  # a nil prevote soon is the refusal's
    validators = group[0].chain.validators
    proposer = next(m for m in group if m.key.address == proposer_for(validators, 1, 0).address)
    alone = next(m for m in group if m is not proposer)
    alone.peers = []  # what it signs stays with it
    alone.driver.start()
    vhash = validators.hash()
    orphan = Block(
        Header(
            CHAIN_ID,
            1,
            T0 + 5,
            b"\x09" * 32,
            proposer.key.address,
            ZERO_HASH,
            ZERO_HASH,
            ZERO_HASH,
            vhash,
            vhash,
            ZERO_HASH,
            ZERO_HASH,
            0,
            0,
        ),
        (),
        None,
        (),
    )
    proposal = Proposal(1, 0, -1, orphan.hash, proposer.key.address).signed_by(proposer.key, CHAIN_ID)
    alone.driver.receive(SignedProposal(proposal, orphan))

    def prevotes() -> list[Vote]:
        return [m.vote for m in alone.sent if isinstance(m, SignedVote) and m.vote.vote_type == VoteType.PREVOTE]

    await until(lambda: bool(prevotes()), "a prevote at height 1")
    assert prevotes()[0].block_hash == b"", "nil, not the refused block"
    assert alone.chain.refused == [orphan.hash]
    assert not alone.chain.committed


async def test_a_restarted_validator_sends_again_every_vote_of_the_height(
    network: Callable[..., list[Validating]],
) -> None:
    """It prevoted and precommitted nil in round 0, then restarted: it resumes in round 1 and sends
    both votes again, and counts them. Its prevote may never have left, and validators still in
    round 0 can wait for exactly it."""
    restarted = network(4, TimeoutConfig(propose_s=60.0, cap_s=60.0))[0]
    restarted.peers = []
    kinds = (VoteType.PREVOTE, VoteType.PRECOMMIT)
    signed = [restarted.signer.sign_vote(Vote(kind, 1, 0, b"", restarted.key.address)) for kind in kinds]
    restarted.driver.start()
    machine = restarted.driver.machine

    def counted() -> bool:
        return all(restarted.key.address in machine.held_votes(0, kind) for kind in kinds)

    await until(counted, "both votes of round 0 handed to its machine")
    assert [m.vote for m in restarted.sent if isinstance(m, SignedVote) and m.vote.round == 0] == signed
    assert (machine.height, machine.round) == (1, 1)


async def test_a_restarted_validator_locked_on_a_block_proposes_it_again(
    network: Callable[..., list[Validating]],
) -> None:
    """It precommitted block v in round 0 (locked), then restarted; it proposes round 1. The block it
    voted for comes back from the WAL with the polka behind its precommit, so it proposes v with POL
    round 0 (a fresh block would get its own nil prevote, as it is locked on v) and holds that
    polka, which the others may lack (its signer may have withheld it from them)."""
    group = network(4, TimeoutConfig(propose_s=60.0, cap_s=60.0))
    validators = group[0].chain.validators
    first = next(m for m in group if m.key.address == proposer_for(validators, 1, 0).address)
    restarted = next(m for m in group if m.key.address == proposer_for(validators, 1, 1).address)
    restarted.peers = []
    v = restarted.chain.build([], first.key.address, T0 + 20).block
    proposal = Proposal(1, 0, -1, v.hash, first.key.address).signed_by(first.key, CHAIN_ID)
    polka = tuple(Vote(VoteType.PREVOTE, 1, 0, v.hash, m.key.address).signed_by(m.key, CHAIN_ID) for m in group[:3])
    ConsensusWal(restarted.kv).save(proposal, v, polka)
    for kind in (VoteType.PREVOTE, VoteType.PRECOMMIT):
        restarted.signer.sign_vote(Vote(kind, 1, 0, v.hash, restarted.key.address))
    restarted.driver.start()

    def proposed() -> list[Proposal]:
        return [m.proposal for m in restarted.sent if isinstance(m, SignedProposal) and m.proposal.round == 1]

    await until(lambda: bool(proposed()), "a proposal for round 1")
    assert [(p.pol_round, p.block_hash) for p in proposed()] == [(0, v.hash)]
    held = restarted.driver.machine.held_votes(0, VoteType.PREVOTE)
    assert {m.key.address for m in group[:3]} <= set(held)
