"""Vote gossip on the wire: tell peers where this node is, and send each one the votes it lacks.

Flooding (`node.consensus.reactor`) sends each proposal and vote once, the moment it is signed or first
seen; a peer that was down, restarting or syncing then misses it. This module repairs that
as CometBFT's consensus reactor does; the rules of what a peer lacks are in
`consensus.vote_gossip` (pure), this module carries them out:

- message type 27 `[27, height, round, step, proposal, pol_round + 1, [[round, type, bits], ...]]`
  (`ROUND_STEP`): where the sender is (step 0: waiting to start `height`), whether it holds its
  round's proposal (0/1) and that proposal's POL round (0: none), and which validators' votes it
  holds for up to four (round, type) pairs (bit i of the little-endian `bits`: validator i of
  the height's set, in address order). Sent to every peer when the height, round, step or
  proposal change, to a peer when it connects, and every `ANNOUNCE_EVERY_S` to all;
- each peer's state (`PeerRoundState`) learns from its announcements, from every vote and
  proposal it sends us (it holds them) and from every one we send it;
- every `GOSSIP_EVERY_S`, and at once (at most every `MIN_PICK_GAP_S`) when a peer announces,
  each peer is sent what it lacks: proposals with their blocks, then votes, at most
  `VOTES_PER_S` votes and `PROPOSALS_PER_S` proposals a second per peer (token buckets),
  whatever it claims (a peer that keeps changing its height would otherwise get a block each time).

A malformed announcement costs the peer score, like any malformed message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from consensus.events import Step
from consensus.tendermint import Tendermint
from consensus.vote_gossip import (
    MAX_ANNOUNCED_SETS,
    LastCommit,
    PeerRoundState,
    RoundStep,
    VoteBits,
    announce,
    index_of,
    pick,
)
from core import codec
from core.block import Commit, Header, Vote, VoteType
from core.errors import DecodeError
from core.proposal import Proposal
from core.validators import ValidatorSet
from node.consensus.messages import PROPOSAL, VOTE
from node.p2p.framing import encode_frame
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer

if TYPE_CHECKING:
    from node.metrics import NodeMetrics

log = logging.getLogger("aichain.network")

ROUND_STEP = 27
GOSSIP_EVERY_S = 0.1
ANNOUNCE_EVERY_S = 1.0
MIN_PICK_GAP_S = 0.02
VOTES_PER_S = 400.0
PROPOSALS_PER_S = 1.0
PROPOSAL_BURST = 2.0
MAX_BITS_BYTES = 1024  # a validator set of up to 8192
PENALTY_MALFORMED = 20.0


class _Peer:
    """Our view of one connected peer: its round state and its vote budget."""

    __slots__ = ("budget", "last_pick", "peer", "proposal_budget", "refilled", "state")

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.state = PeerRoundState()
        self.budget = VOTES_PER_S / 4  # a quarter of a second's worth at first
        self.proposal_budget = PROPOSAL_BURST
        self.refilled = time.monotonic()
        self.last_pick = 0.0

    def refill(self, now: float) -> tuple[int, int]:
        elapsed = now - self.refilled
        self.budget = min(VOTES_PER_S, self.budget + elapsed * VOTES_PER_S)
        self.proposal_budget = min(PROPOSAL_BURST, self.proposal_budget + elapsed * PROPOSALS_PER_S)
        self.refilled = now
        return int(self.budget), int(self.proposal_budget)


class HeadChain(Protocol):
    """The chain as vote gossip reads it (`node.chain.Chain`): the head and the commit that decided it."""

    @property
    def head(self) -> Header: ...

    @property
    def last_commit(self) -> Commit | None: ...

    @property
    def last_validators(self) -> ValidatorSet: ...


class VoteGossip:
    def __init__(self, manager: PeerManager, machine: Tendermint, chain: HeadChain, metrics: NodeMetrics) -> None:
        self.manager = manager
        self.machine = machine  # read only: the driver alone makes it move
        self.chain = chain
        self.metrics = metrics
        self._peers: dict[bytes, _Peer] = {}
        self._announced: tuple[Any, ...] | None = None  # what we last told everyone (without the bits)
        self._index: tuple[int, dict[bytes, int]] | None = None  # (height, validator -> index) of the machine
        self._last_index: tuple[int, dict[bytes, int]] | None = None  # the same for the head's signers
        self._task: asyncio.Task[None] | None = None

    def register(self) -> None:
        self.manager.register(ROUND_STEP, self._on_round_step)
        self.manager.on_peer_connected(self._on_connected)
        self.manager.on_peer_disconnected(self._on_disconnected)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="vote-gossip")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- what we announce -------------------------------------------------------------------

    def state_changed(self) -> None:
        """The driver handled something: announce at once if the height, round, step or proposal moved."""
        step = self._our_step()
        key = (step.height, step.round, step.step, step.proposal, step.pol_round)
        if key != self._announced:
            self._announced = key
            self._broadcast_step(step)

    def _broadcast_step(self, step: RoundStep) -> None:
        payload = encode_round_step(step)
        frame = encode_frame(ROUND_STEP, payload)
        for peer in self.manager.connected_peers():
            peer.offer(frame)

    def _our_step(self) -> RoundStep:
        head = self.chain.head.height
        step = announce(self.machine)
        if step.height <= head:  # the machine is behind the head (sync imported a block): about to move on
            return RoundStep(head + 1, 0, int(Step.NEW_HEIGHT))
        return step

    # --- what peers hold ----------------------------------------------------------------------

    def received_vote(self, peer: Peer, vote: Vote) -> None:
        """`peer` sent us `vote`: it holds it."""
        entry = self._peers.get(peer.node_key)
        i = self._validator_index(vote.height, vote.validator)
        if entry is not None and i is not None:
            entry.state.mark_vote(vote, i)

    def sent_vote(self, vote: Vote, exclude: Peer | None = None) -> None:
        """`vote` was flooded to every connected peer but `exclude`."""
        i = self._validator_index(vote.height, vote.validator)
        if i is None:
            return
        for key, entry in self._peers.items():
            if exclude is None or key != exclude.node_key:
                entry.state.mark_vote(vote, i)

    def received_proposal(self, peer: Peer, proposal: Proposal) -> None:
        entry = self._peers.get(peer.node_key)
        if entry is not None:
            entry.state.mark_proposal(proposal.height, proposal.round)

    def sent_proposal(self, proposal: Proposal, exclude: Peer | None = None) -> None:
        now = time.monotonic()
        for key, entry in self._peers.items():
            if exclude is None or key != exclude.node_key:
                entry.state.mark_proposal(proposal.height, proposal.round, now)

    def _validator_index(self, height: int, validator: bytes) -> int | None:
        machine, chain = self.machine, self.chain
        if machine.validators is not None and height == machine.height:
            if self._index is None or self._index[0] != height:
                self._index = (height, index_of(machine.validators))
            return self._index[1].get(validator)
        if height == chain.head.height:
            if self._last_index is None or self._last_index[0] != height:
                self._last_index = (height, index_of(chain.last_validators))
            return self._last_index[1].get(validator)
        return None

    # --- peers --------------------------------------------------------------------------------

    async def _on_connected(self, peer: Peer) -> None:
        self._peers[peer.node_key] = _Peer(peer)
        peer.offer(encode_frame(ROUND_STEP, encode_round_step(self._our_step())))

    async def _on_disconnected(self, peer: Peer) -> None:
        entry = self._peers.get(peer.node_key)
        if entry is not None and entry.peer is peer:
            del self._peers[peer.node_key]

    async def _on_round_step(self, peer: Peer, payload: Any) -> None:
        try:
            step = decode_round_step(payload)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        entry = self._peers.get(peer.node_key)
        if entry is None or entry.peer is not peer:
            return
        now = time.monotonic()
        entry.state.apply(step, now)
        if now - entry.last_pick >= MIN_PICK_GAP_S:
            self._serve(entry, now)

    # --- sending ------------------------------------------------------------------------------

    async def _run(self) -> None:
        last_announce = 0.0
        while True:
            await asyncio.sleep(GOSSIP_EVERY_S)
            now = time.monotonic()
            try:
                if now - last_announce >= ANNOUNCE_EVERY_S:
                    last_announce = now
                    self._broadcast_step(self._our_step())
                for entry in list(self._peers.values()):
                    self._serve(entry, now)
            except Exception:  # a bug must not end vote gossip for good: say so and go on
                log.exception("vote gossip failed; trying again in %.1f s", GOSSIP_EVERY_S)

    def _serve(self, entry: _Peer, now: float) -> None:
        """Send `entry` what it lacks, within its budget."""
        if entry.state.step is None or entry.peer.closing:
            return
        entry.last_pick = now
        votes, proposals = entry.refill(now)
        picked = pick(self.machine, entry.state, self._last_commit(), now, votes, proposals)
        if not picked:
            return
        for proposal, block in picked.proposals:
            if not entry.peer.offer(encode_frame(PROPOSAL, [PROPOSAL, proposal.to_wire(), block.encode()])):
                return
            entry.proposal_budget -= 1
            self.metrics.gossip_sent.labels("proposal").inc()
        for vote in picked.votes:
            if not entry.peer.offer(encode_frame(VOTE, [VOTE, vote.to_wire()])):
                return
        entry.budget -= len(picked.votes)
        self.metrics.gossip_sent.labels("vote").inc(len(picked.votes))

    def _last_commit(self) -> LastCommit | None:
        chain = self.chain
        commit = chain.last_commit
        if commit is None or chain.head.height == 0:
            return None
        return LastCommit(commit, chain.last_validators)


def encode_round_step(step: RoundStep) -> list[Any]:
    votes = [[v.round, v.vote_type, v.bits.to_bytes((v.bits.bit_length() + 7) // 8, "little")] for v in step.votes]
    return [ROUND_STEP, step.height, step.round, step.step, int(step.proposal), step.pol_round + 1, votes]


def decode_round_step(payload: Any) -> RoundStep:
    items = codec.expect_list(payload, ROUND_STEP, 7, "round step")
    height = codec.expect_uint(items[1], "round step height")
    round_ = codec.expect_uint(items[2], "round step round", bits=31)
    step = codec.expect_uint(items[3], "round step step", bits=8)
    if step > Step.PRECOMMIT:
        raise DecodeError(f"round step: step {step} is unknown")
    proposal = codec.expect_uint(items[4], "round step proposal", bits=1)
    pol_round = codec.expect_uint(items[5], "round step pol round", bits=31) - 1
    if not isinstance(items[6], list) or len(items[6]) > MAX_ANNOUNCED_SETS:
        raise DecodeError(f"round step: expected at most {MAX_ANNOUNCED_SETS} vote bit sets")
    votes = []
    for entry in items[6]:
        if not isinstance(entry, list) or len(entry) != 3:
            raise DecodeError("round step: expected [round, type, bits] vote bit sets")
        vote_type = codec.expect_uint(entry[1], "round step vote type", bits=8)
        if vote_type not in (VoteType.PREVOTE, VoteType.PRECOMMIT):
            raise DecodeError(f"round step: vote type {vote_type} is unknown")
        bits = codec.expect_bytes(entry[2], "round step bits", max_size=MAX_BITS_BYTES)
        votes.append(
            VoteBits(
                codec.expect_uint(entry[0], "round step vote round", bits=31), vote_type, int.from_bytes(bits, "little")
            )
        )
    return RoundStep(height, round_, step, bool(proposal), pol_round, tuple(votes))


__all__ = ["ROUND_STEP", "VoteGossip", "decode_round_step", "encode_round_step"]
