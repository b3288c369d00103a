"""A deterministic discrete-event network that runs `consensus.tendermint.Tendermint` machines.

The machine does no I/O (see `consensus.events`); this module plays the node around it for
several validators at once, on a simulated clock:

- a priority queue of `(time, seq, callback)`: every delivery, timeout and scripted event
  is a callback at a simulated time; `seq` breaks ties, so a run is a pure function of its
  inputs (the seed, the network configuration and the scripted events);
- per-message delays, drops, duplicates and partitions before the global stabilisation time
  (GST); after GST every message arrives within `NetworkConfig.delta` (the partially
  synchronous model of the paper);
- gossip, in one of three ways (`SimNet(gossip=...)`):
  - "relay" (idealised): every `gossip_interval` each honest node re-sends to each peer the
    messages of the peer's current height that the peer has not received (known by magic),
    so dropped messages are eventually delivered and a lagging or restarted node catches up
    from the precommits of a height it missed;
  - "peers" (what the node does, `consensus.vote_gossip`): honest nodes forward each message
    the first time they see it (flooding), and every `gossip_interval` announce their
    `RoundStep` to each peer (a message like any other: delayed, dropped, cut) and send each
    peer what `pick` says it lacks, from what they learnt of it (announcements, messages it
    sent them, messages they sent it; forgotten when either side crashes);
  - "own" (the node before vote gossip): flooding, and every `gossip_interval` each node
    re-sends what it signed at its current height to peers that lack it;
- block sync: a node two heights behind an honest peer, or stuck for `sync_after` seconds at
  a height that peer has committed, gets blocks and their commits from the peer's store
  (messages live only in memory: after crashes nobody may hold those of a height), checks
  each commit, records the blocks (`SimNode.synced`) and calls `start_height` on its machine;
- crashes and restarts: a restarted node gets a fresh machine at its last committed height
  + 1. Its `Signer` survives the crash (the persisted last-signed state): it refuses to sign a
  vote for an (h, r, type) it signed with another block hash, or a proposal for an (h, r) it
  proposed with another block. An honest node hands its machine the votes of the height its
  signer kept (the latest `KEPT_VOTES`) and sends them again, and the block it last voted for
  with its proposal and the polka behind that vote (`SimNode.kept`), as the node does. With `wal=True`
  it also replays the events its machine handled at that height (a write-ahead log, as
  CometBFT does), which restores its lock;
- Byzantine validators (`Byzantine`): double-signing (a conflicting twin of a vote or a
  proposal, sent to some of the peers) and withholding (sending only to some peers or none).

Everything the run observes is recorded on the nodes (decisions, commits, evidence, fired
timeouts) and `SimNet.violations` collects broken invariants as readable strings; `trace`
keeps the last events for reproducing a failure.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from consensus.events import (
    Action,
    BlockBuilt,
    BuildBlock,
    CommitBlock,
    Event,
    EvidenceFound,
    ProposalReceived,
    ScheduleTimeout,
    SignProposal,
    SignVote,
    Step,
    TimeoutConfig,
    TimeoutFired,
    VoteReceived,
)
from consensus.validation import verify_commit
from consensus.vote_gossip import LastCommit, PeerRoundState, RoundStep, announce, index_of, pick
from core.block import Block, Commit, Header, Vote, VoteType
from core.errors import InvalidCommit
from core.hashing import EMPTY_MERKLE_ROOT, ZERO_HASH, sha256
from core.keys import PrivateKey
from core.proposal import Proposal
from core.validators import Validator, ValidatorSet

CHAIN_ID = 4242
DEFAULT_TIMEOUTS = TimeoutConfig()
SYNC_BATCH = 20
GOSSIP_MODES = ("relay", "peers", "own")
PICK_VOTES = 64  # votes one node sends one peer per gossip round (gossip "peers")
KEPT_VOTES = 64  # a validator's own votes of a height its signer keeps (node/consensus/signer.py)
MAX_AHEAD = 256  # next-height messages a node keeps (gossip "peers" and "own"), as the node's held messages


def validator_keys(n: int) -> list[PrivateKey]:
    """The deterministic test keys: validator i has seed bytes([i + 1]) * 32."""
    return [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(n)]


def validator_set(keys: Iterable[PrivateKey], powers: Iterable[int] | None = None) -> ValidatorSet:
    keys = list(keys)
    powers = [1] * len(keys) if powers is None else list(powers)
    return ValidatorSet(tuple(Validator(k.public_key, p) for k, p in zip(keys, powers, strict=True)))


def make_block(height: int, proposer: bytes, parent_hash: bytes, validators_hash: bytes, nonce: int) -> Block:
    """An empty block; `nonce` (the timestamp) makes each built block distinct."""
    header = Header(
        chain_id=CHAIN_ID,
        height=height,
        timestamp_ms=nonce,
        parent_hash=parent_hash,
        proposer=proposer,
        tx_root=EMPTY_MERKLE_ROOT,
        state_root=ZERO_HASH,
        receipts_root=EMPTY_MERKLE_ROOT,
        validators_hash=validators_hash,
        next_validators_hash=validators_hash,
        last_commit_hash=ZERO_HASH,
        evidence_hash=EMPTY_MERKLE_ROOT,
        gas_used=0,
        tx_count=0,
    )
    return Block(header, (), None)


def vote_name(vote: Vote) -> str:
    kind = "prevote" if vote.vote_type == VoteType.PREVOTE else "precommit"
    target = vote.block_hash.hex()[:8] if vote.block_hash else "nil"
    return f"{kind}(h={vote.height} r={vote.round} {target} by {vote.validator.hex()[:6]})"


# --- messages --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposalMsg:
    """A signed proposal travelling with its block (the node checks block.hash == proposal.block_hash)."""

    proposal: Proposal
    block: Block


@dataclass(frozen=True, slots=True)
class Announce:
    """A node's `RoundStep`, sent to one peer (gossip "peers")."""

    step: RoundStep


Message = ProposalMsg | Vote


def message_key(msg: Message) -> Proposal | Vote:
    """What identifies a message (a signed proposal names its block by hash)."""
    return msg.proposal if isinstance(msg, ProposalMsg) else msg


def message_height(msg: Message) -> int:
    return msg.proposal.height if isinstance(msg, ProposalMsg) else msg.height


def event_height(event: Event) -> int:
    if isinstance(event, VoteReceived):
        return event.vote.height
    if isinstance(event, ProposalReceived):
        return event.proposal.height
    return event.height


def describe(msg: Message) -> str:
    if isinstance(msg, ProposalMsg):
        p = msg.proposal
        return (
            f"proposal(h={p.height} r={p.round} pol={p.pol_round} {p.block_hash.hex()[:8]} by {p.proposer.hex()[:6]})"
        )
    return vote_name(msg)


# --- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Message delivery. Before `gst`: delays in [min_delay, max_delay], drops, duplicates, partitions.
    From `gst` on: no drops, no partitions, delays in [min_delay, delta] (delta >= min_delay)."""

    min_delay: float = 0.01
    max_delay: float = 0.2
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    gst: float = 0.0
    delta: float = 0.2
    gossip_interval: float = 1.0
    block_interval: float = 0.0  # between CommitBlock and start_height(h + 1)
    # block sync: a node two heights behind an honest peer, or this long at a height the peer
    # has committed, fetches blocks and commits from the peer's store (None: off)
    sync_after: float | None = 5.0


@dataclass(frozen=True, slots=True)
class Byzantine:
    """How a Byzantine validator misbehaves; each probability applies to each message it signs.

    Its machine runs the honest algorithm; the misbehaviour is in what it signs and sends:
    - `double_sign`: also sign a conflicting twin (another block hash, or nil; for a proposal,
      another block) and send the original to some peers, the twin to others, both to some;
    - `withhold`: send the message to a random subset of the peers (maybe none);
    - `invalid_proposal`: build a block that honest nodes find invalid.
    A Byzantine node does not relay other nodes' messages.
    """

    double_sign: float = 0.5
    withhold: float = 0.3
    invalid_proposal: float = 0.0


# --- the persisted signer --------------------------------------------------------------------------


class Signer:
    """A validator key behind persisted double-sign protection; it survives crashes.

    It refuses to sign a vote for an (h, r, type) it already signed for another block hash,
    and a proposal for an (h, r) it already proposed with another block. A refusal by the
    same machine instance that signed the first message is a bug of the machine (an honest
    machine never equivocates); after a restart it is expected (the fresh machine forgot).
    """

    def __init__(self, key: PrivateKey) -> None:
        self.key = key
        self.votes: dict[tuple[int, int, int], tuple[bytes, int]] = {}  # (h, r, type) -> (hash, instance)
        self.proposals: dict[tuple[int, int], tuple[bytes, int]] = {}  # (h, r) -> (block hash, instance)
        self.refused: list[tuple[Vote | Proposal, bool]] = []  # (message, refused to the same instance)

    def sign_vote(self, vote: Vote, instance: int) -> Vote | None:
        slot = (vote.height, vote.round, vote.vote_type)
        signed = self.votes.get(slot)
        if signed is not None and signed[0] != vote.block_hash:
            self.refused.append((vote, signed[1] == instance))
            return None
        self.votes.setdefault(slot, (vote.block_hash, instance))
        return vote.signed_by(self.key, CHAIN_ID)

    def resume(self, height: int) -> tuple[int, tuple[int, bytes] | None]:
        """What a restarted node restores at `height` (as node/consensus/signer.py persists it): the last
        round it signed in (the next one if it precommitted there: nothing is left to sign in it),
        and its lock (its latest precommit for a block)."""
        rounds = [r for (h, r, _) in self.votes if h == height] + [r for (h, r) in self.proposals if h == height]
        first_round = max(rounds) if rounds else 0
        if (height, first_round, VoteType.PRECOMMIT) in self.votes:
            first_round += 1
        locks = [
            (r, block)
            for (h, r, t), (block, _) in self.votes.items()
            if h == height and t == VoteType.PRECOMMIT and block
        ]
        return first_round, max(locks) if locks else None

    def sign_proposal(self, proposal: Proposal, instance: int) -> Proposal | None:
        slot = (proposal.height, proposal.round)
        signed = self.proposals.get(slot)
        if signed is not None and signed[0] != proposal.block_hash:
            self.refused.append((proposal, signed[1] == instance))
            return None
        self.proposals.setdefault(slot, (proposal.block_hash, instance))
        return proposal.signed_by(self.key, CHAIN_ID)


# --- the machine under test ----------------------------------------------------------------------


class Machine(Protocol):
    """The interface of `consensus.tendermint.Tendermint` the simulator drives."""

    @property
    def height(self) -> int: ...
    @property
    def round(self) -> int: ...
    @property
    def step(self) -> Step: ...
    @property
    def decided(self) -> dict[int, bytes]: ...
    def proposal_in(self, round_: int) -> tuple[Proposal, Block] | None: ...
    def polka_behind(self, vote: Vote) -> list[Vote]: ...
    def start_height(
        self, height: int, validators: ValidatorSet, first_round: int = 0, locked: tuple[int, bytes] | None = None
    ) -> list[Action]: ...
    def handle(self, event: Event) -> list[Action]: ...


MachineFactory = Callable[[int, bytes | None, TimeoutConfig], Machine]


def default_factory(chain_id: int, me: bytes | None, timeouts: TimeoutConfig) -> Machine:
    from consensus.tendermint import Tendermint  # imported late: the module is written separately

    return Tendermint(chain_id, me, timeouts)


# --- nodes -----------------------------------------------------------------------------------------


@dataclass
class SimNode:
    """One node: its machine (None while crashed), what survives a crash (decisions, commits,
    signer, signed messages, WAL) and what the run observed; `log` and `seen` are in memory."""

    index: int
    key: PrivateKey | None  # None: a follower (non-validator)
    signer: Signer | None
    byzantine: Byzantine | None = None
    machine: Machine | None = None  # a Tendermint; None while crashed
    instance: int = 0  # bumped at each (re)start: stale timeouts and self-deliveries die with their instance
    up: bool = False
    height: int = 1  # the height the node is deciding (last committed + 1)
    height_since: float = 0.0  # when it started deciding `height`
    started: int = 0  # the height its machine was last started at
    # persisted across crashes (what a node's storage holds)
    decided: dict[int, bytes] = field(default_factory=dict)
    commits: dict[int, tuple[Block, Commit]] = field(default_factory=dict)
    decided_at: dict[int, float] = field(default_factory=dict)
    synced: set[int] = field(default_factory=set)  # heights it got by block sync, not by its machine
    wal: list[Event] = field(default_factory=list)  # events handled at `height` (used when restarting with wal)
    # the block last voted for, with the polka behind that vote (the node's node/consensus/wal.py)
    kept: tuple[ProposalMsg, tuple[Vote, ...]] | None = None
    # observations
    evidence: list[EvidenceFound] = field(default_factory=list)
    timeouts_fired: list[tuple[float, TimeoutFired, bool]] = field(default_factory=list)  # (time, event, live)
    timeouts_scheduled: list[ScheduleTimeout] = field(default_factory=list)
    signed: list[Message] = field(default_factory=list)  # persisted with the signer: re-gossiped after a restart
    # per instance (lost on crash): what it received, by height, for relaying; what it has seen
    log: dict[int, dict[Proposal | Vote, Message]] = field(default_factory=dict)
    seen: set[Proposal | Vote] = field(default_factory=set)
    # per instance: votes delivered while the machine was at their height, undecided
    live_votes: dict[tuple[bytes, int, int, int], dict[bytes, Vote]] = field(default_factory=dict)
    # per instance (gossip "peers"): what each peer holds, as far as this node knows
    peers: dict[int, PeerRoundState] = field(default_factory=dict)
    # per instance (gossip "peers" and "own"): messages of the next height, handled when it starts
    ahead: list[Message] = field(default_factory=list)

    @property
    def address(self) -> bytes | None:
        return None if self.key is None else self.key.address

    @property
    def honest(self) -> bool:
        return self.byzantine is None

    @property
    def name(self) -> str:
        return f"n{self.index}" + ("(byz)" if self.byzantine else "") + ("" if self.key else "(follower)")


# --- the simulated network -------------------------------------------------------------------------


class SimNet:
    """Validators (and optional followers) on a simulated network; see the module docstring.

    Use: build, `start()`, script events with `at()`/`crash()`/`restart()`/`partition()`,
    `run(until)`, then inspect `nodes`, `violations`, `check()`.
    Hooks (lists of callables, called in order): `on_action(node, action)` for every action a
    machine returns, `on_deliver(node, event)` before an event is handled, `on_decide(node,
    height, block, commit)` after a decision is recorded, `on_build(node, block)` when a node
    builds a block (add its hash to `invalid_blocks` to make every node reject it).
    """

    def __init__(
        self,
        n_validators: int,
        *,
        seed: int = 0,
        net: NetworkConfig = NetworkConfig(),
        timeouts: TimeoutConfig = DEFAULT_TIMEOUTS,
        byzantine: dict[int, Byzantine] | None = None,
        powers: list[int] | None = None,
        followers: int = 0,
        wal: bool = False,
        factory: MachineFactory = default_factory,
        trace_size: int = 400,
        gossip: str = "relay",
    ) -> None:
        if gossip not in GOSSIP_MODES:
            raise ValueError(f"gossip must be one of {GOSSIP_MODES}, not {gossip!r}")
        self.gossip = gossip
        self.rng = random.Random(seed)
        self.net = net
        self.timeouts = timeouts
        self.wal = wal
        self.factory = factory
        self.keys = validator_keys(n_validators)
        self.validators = validator_set(self.keys, powers)
        byzantine = byzantine or {}
        self.nodes: list[SimNode] = [
            SimNode(i, key, Signer(key), byzantine.get(i)) for i, key in enumerate(self.keys)
        ] + [SimNode(n_validators + j, None, None) for j in range(followers)]
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._partitions: list[tuple[float, float, list[frozenset[int]]]] = []
        self._blocks_built = 0
        self.invalid_blocks: set[bytes] = set()
        self.decisions: dict[int, tuple[bytes, str]] = {}  # height -> (hash, first honest decider)
        self.violations: list[str] = []
        self.trace: deque[str] = deque(maxlen=trace_size)
        self.events_handled = 0
        self.on_action: list[Callable[[SimNode, Action], None]] = []
        self.on_deliver: list[Callable[[SimNode, Event], None]] = []
        self.on_decide: list[Callable[[SimNode, int, Block, Commit], None]] = []
        self.on_build: list[Callable[[SimNode, Block], None]] = []

    # --- clock ---------------------------------------------------------------------------------

    def at(self, time: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (max(time, self.now), self._seq, callback))
        self._seq += 1

    def after(self, delay: float, callback: Callable[[], None]) -> None:
        self.at(self.now + delay, callback)

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        """Process events in time order up to `until` (or until `stop()` is true)."""
        while self._queue and self._queue[0][0] <= until:
            time, _, callback = heapq.heappop(self._queue)
            self.now = time
            callback()
            if stop is not None and stop():
                return
        self.now = max(self.now, until)

    def log(self, text: str) -> None:
        self.trace.append(f"{self.now:9.3f} {text}")

    # --- scripted faults -----------------------------------------------------------------------

    def start(self) -> None:
        """Start every node at height 1 at the current time, and the gossip loop."""
        for node in self.nodes:
            self._boot(node)
        self.after(self.net.gossip_interval, self._gossip)

    def crash(self, index: int) -> None:
        node = self.nodes[index]
        if not node.up:
            return
        self.log(f"{node.name} crashes at height {node.height}")
        node.up = False
        node.machine = None
        node.instance += 1
        node.log, node.seen, node.live_votes, node.peers, node.ahead = {}, set(), {}, {}, []
        for other in self.nodes:  # its connections are gone: the others forget what it held
            other.peers.pop(node.index, None)

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        if node.up:
            return
        self.log(f"{node.name} restarts at height {node.height}" + (" replaying its WAL" if self.wal else ""))
        self._boot(node, replay=self.wal)

    def down(self) -> list[int]:
        return [n.index for n in self.nodes if not n.up]

    def partition(self, groups: Iterable[Iterable[int]], start: float, end: float) -> None:
        """Between `start` and `end` (and before GST) messages between different groups are lost."""
        self._partitions.append((start, end, [frozenset(g) for g in groups]))

    # --- booting -------------------------------------------------------------------------------

    def _boot(self, node: SimNode, replay: bool = False) -> None:
        node.instance += 1
        node.up = True
        node.height_since = self.now
        node.machine = self.factory(CHAIN_ID, node.address, self.timeouts)
        node.log, node.seen, node.live_votes, node.peers, node.ahead = {}, set(), {}, {}, []
        for msg in node.signed:  # what it signed before a crash is gossiped again (it may never have left)
            if message_height(msg) == node.height:
                node.log.setdefault(node.height, {})[message_key(msg)] = msg
        self._start_height(node, replay)
        own = list(dict.fromkeys(m for m in node.signed if isinstance(m, Vote) and m.height == node.height))
        own = own[-KEPT_VOTES:]
        kept = node.kept
        if not replay and self.gossip != "relay" and node.honest and kept and kept[0].proposal.height == node.height:
            # As the node does (node/consensus/wal.py): the block it voted for, with its proposal and the
            # polka behind the vote, goes back to its machine (others' prevotes it may alone have had).
            for msg in (kept[0], *kept[1]):
                self._restore(node, msg)
        if self.gossip != "relay" and node.honest:
            # As the node does (node/consensus/wal.py: resume_point): its votes of the height, which its
            # signer keeps, are handed to its machine (and so to gossip) and sent again. Only the last
            # one would not do: an earlier one (the prevote before its last precommit) may never have
            # left, and peers still in that round may need exactly it.
            for vote in own:
                self._self_deliver(node, vote)
                for peer in self.nodes:
                    if peer is not node:
                        self._send(node, peer, vote)

    def _restore(self, node: SimNode, msg: Message) -> None:
        """Hand the machine a message from the node's store (not flooded: it is no news)."""
        assert node.machine is not None
        key = message_key(msg)
        node.seen.add(key)
        node.log.setdefault(message_height(msg), {})[key] = msg
        if isinstance(msg, ProposalMsg):
            self._handle(node, ProposalReceived(msg.proposal, msg.block, msg.block.hash not in self.invalid_blocks))
        else:
            self._handle(node, VoteReceived(msg))

    def _start_height(self, node: SimNode, replay: bool = False) -> None:
        assert node.machine is not None
        node.started = node.height
        wal = node.wal if replay else []
        node.wal = []
        if replay or node.signer is None:
            actions = node.machine.start_height(node.height, self.validators)
        else:  # as the node does: resume after the last signed round, with the persisted lock
            first_round, locked = node.signer.resume(node.height)
            actions = node.machine.start_height(node.height, self.validators, first_round, locked)
        if not replay:
            self._perform(node, actions)
            self._release_ahead(node)
            return
        # Replay: re-handle the logged events so the machine regains its state (lock, valid value,
        # round). A deterministic machine asks again for exactly what it had signed: nothing is sent.
        to_build = self._replay_actions(node, actions)
        for event in wal:
            node.wal.append(event)
            if isinstance(event, VoteReceived | ProposalReceived):
                msg: Message = (
                    event.vote if isinstance(event, VoteReceived) else ProposalMsg(event.proposal, event.block)
                )
                node.seen.add(message_key(msg))
                node.log.setdefault(node.height, {})[message_key(msg)] = msg  # its state: gossiped again
            if isinstance(event, BlockBuilt):
                to_build.discard(BuildBlock(event.height, event.round))
            to_build |= self._replay_actions(node, node.machine.handle(event))
        self.log(f"{node.name} replayed {len(wal)} events: round {node.machine.round}")
        self._perform(node, sorted(to_build, key=lambda b: b.round))  # asked for before the crash, never built
        self._release_ahead(node)

    def _release_ahead(self, node: SimNode) -> None:
        """Handle the kept messages of the height the machine just started (older ones are dropped)."""
        kept, node.ahead = node.ahead, []
        for msg in kept:
            if node.machine is None:
                return
            if message_height(msg) == node.machine.height:
                self._deliver(node, msg)
            elif message_height(msg) > node.machine.height:
                node.ahead.append(msg)

    def _replay_actions(self, node: SimNode, actions: list[Action]) -> set[BuildBlock]:
        """Carry out what a replay must (timeouts); check signing requests; return blocks to build."""
        to_build: set[BuildBlock] = set()
        for action in actions:
            if isinstance(action, ScheduleTimeout):
                self._perform(node, [action])
            elif isinstance(action, BuildBlock):
                to_build.add(action)
            elif isinstance(action, SignVote) and node.signer is not None and node.honest:
                v = action.vote
                signed = node.signer.votes.get((v.height, v.round, v.vote_type))
                if signed is None or signed[0] != v.block_hash:
                    self.violations.append(f"{node.name}: replaying its WAL asks for an unsigned {vote_name(v)}")
            elif isinstance(action, CommitBlock):  # cannot happen: the WAL holds one undecided height
                self.violations.append(f"{node.name}: replaying its WAL decided height {action.block.height}")
        return to_build

    # --- actions -------------------------------------------------------------------------------

    def _perform(self, node: SimNode, actions: list[Action]) -> None:
        for action in actions:
            for hook in self.on_action:
                hook(node, action)
            if isinstance(action, BuildBlock):
                self._build(node, action)
            elif isinstance(action, SignProposal):
                self._sign_proposal(node, action)
            elif isinstance(action, SignVote):
                self._sign_vote(node, action.vote)
            elif isinstance(action, ScheduleTimeout):
                node.timeouts_scheduled.append(action)
                instance = node.instance
                self.after(action.seconds, lambda n=node, a=action, i=instance: self._fire(n, a, i))
            elif isinstance(action, CommitBlock):
                self._commit(node, action)
            elif isinstance(action, EvidenceFound):
                self._evidence(node, action)
            else:  # pragma: no cover
                raise AssertionError(f"unknown action {action!r}")

    def _new_block(self, node: SimNode, height: int, invalid: bool = False) -> Block:
        self._blocks_built += 1
        parent = node.decided.get(height - 1, ZERO_HASH)
        proposer = node.address or bytes(20)
        block = make_block(height, proposer, parent, self.validators.hash(), self._blocks_built)
        if invalid:
            self.invalid_blocks.add(block.hash)
        for hook in self.on_build:
            hook(node, block)
        return block

    def _build(self, node: SimNode, action: BuildBlock) -> None:
        invalid = node.byzantine is not None and self.rng.random() < node.byzantine.invalid_proposal
        block = self._new_block(node, action.height, invalid)
        self.log(f"{node.name} builds {block.hash.hex()[:8]} for h={action.height} r={action.round}")
        self._self_deliver(node, BlockBuilt(action.height, action.round, block))

    def _sign_proposal(self, node: SimNode, action: SignProposal) -> None:
        if node.signer is None:
            self.violations.append(f"{node.name}, a follower, was asked to sign {action.proposal}")
            return
        if action.proposal.block_hash != action.block.hash:
            self.violations.append(f"{node.name} proposes a block whose hash is not the proposal's")
        if node.byzantine is not None:
            self._byzantine_proposal(node, action)
            return
        signed = node.signer.sign_proposal(action.proposal, node.instance)
        if signed is None:
            self._refused(node, action.proposal)
            return
        node.signed.append(ProposalMsg(signed, action.block))
        self._broadcast(node, ProposalMsg(signed, action.block))

    def _sign_vote(self, node: SimNode, vote: Vote) -> None:
        if node.signer is None:
            self.violations.append(f"{node.name}, a follower, was asked to sign {vote_name(vote)}")
            return
        if vote.validator != node.address:
            self.violations.append(f"{node.name} was asked to sign a vote of another validator: {vote_name(vote)}")
            return
        if node.byzantine is not None:
            self._byzantine_vote(node, vote)
            return
        signed = node.signer.sign_vote(vote, node.instance)
        if signed is None:
            self._refused(node, vote)
            return
        self._keep(node, vote)
        node.signed.append(signed)
        self._broadcast(node, signed)

    def _keep(self, node: SimNode, vote: Vote) -> None:
        """As the node stores before a vote for a block: the block, its proposal, the polka behind the vote."""
        if not vote.block_hash or node.machine is None:
            return
        held = node.machine.proposal_in(vote.round)
        msg = ProposalMsg(*held) if held is not None and held[1].hash == vote.block_hash else None
        if msg is None:
            msg = next((m for m in node.log.get(vote.height, {}).values()
                        if isinstance(m, ProposalMsg) and m.block.hash == vote.block_hash), None)  # fmt: skip
        if msg is not None:
            node.kept = (msg, tuple(node.machine.polka_behind(vote)))

    def _refused(self, node: SimNode, message: Vote | Proposal) -> None:
        assert node.signer is not None
        _, same_instance = node.signer.refused[-1]
        what = vote_name(message) if isinstance(message, Vote) else f"proposal {message}"
        self.log(f"{node.name} signer refuses {what}")
        if same_instance:
            self.violations.append(f"{node.name} equivocated: its machine asked to sign a conflicting {what}")

    def _fire(self, node: SimNode, action: ScheduleTimeout, instance: int) -> None:
        if node.instance != instance or node.machine is None:
            return
        m = node.machine
        live = (m.height, m.round) == (action.height, action.round) and action.height not in node.decided
        event = TimeoutFired(action.height, action.round, action.step)
        node.timeouts_fired.append((self.now, event, live))
        if live:
            self.log(f"{node.name} timeout {action.step.name} h={action.height} r={action.round}")
        self._handle(node, event)

    def _commit(self, node: SimNode, action: CommitBlock) -> None:
        block, commit = action.block, action.commit
        self.log(f"{node.name} commits h={block.height} {block.hash.hex()[:8]} at round {commit.round}")
        self._record(node, block, commit)

    def _synced(self, node: SimNode, batch: list[tuple[Block, Commit]]) -> None:
        """Block sync: blocks and their commits from a peer's store (the node checks each commit)."""
        for block, commit in batch:
            if node.machine is None or block.height != node.height:
                continue
            self.log(f"{node.name} syncs h={block.height} {block.hash.hex()[:8]} from a peer")
            self._record(node, block, commit)
            node.synced.add(block.height)
        if node.machine is not None and node.started < node.height:
            self._start_height(node)  # at once: the machine must not go on with a height already stored

    def _record(self, node: SimNode, block: Block, commit: Commit) -> None:
        """Check and store a decision, then start the next height after the block interval."""
        height = block.height
        if height in node.synced and node.decided.get(height) == block.hash:
            return  # decided by its machine too, after block sync stored it
        if height != node.height or height in node.decided:
            self.violations.append(f"{node.name} committed height {height} while deciding height {node.height}")
            return
        try:
            verify_commit(commit, self.validators, CHAIN_ID, height, block.hash)
        except InvalidCommit as exc:
            self.violations.append(f"{node.name}: the commit of height {height} does not verify: {exc}")
        if block.hash in self.invalid_blocks:
            self.violations.append(f"{node.name} decided invalid block {block.hash.hex()[:8]} at height {height}")
        if node.honest:
            first = self.decisions.setdefault(height, (block.hash, node.name))
            if first[0] != block.hash:
                self.violations.append(
                    f"SAFETY: at height {height} {first[1]} decided {first[0].hex()[:8]}, "
                    f"{node.name} decided {block.hash.hex()[:8]}"
                )
        node.decided[height] = block.hash
        node.commits[height] = (block, commit)
        node.decided_at[height] = self.now
        node.height = height + 1
        node.height_since = self.now
        node.wal = []
        for hook in self.on_decide:
            hook(node, height, block, commit)
        instance = node.instance

        def next_height() -> None:
            if node.instance == instance and node.machine is not None and node.started < node.height:
                self._start_height(node)

        self.after(self.net.block_interval, next_height)

    def _evidence(self, node: SimNode, action: EvidenceFound) -> None:
        a, b = action.first, action.second
        self.log(f"{node.name} found evidence: {vote_name(a)} / {vote_name(b)}")
        node.evidence.append(action)
        same_slot = (a.validator, a.height, a.round, a.vote_type) == (b.validator, b.height, b.round, b.vote_type)
        validator = self.validators.by_address.get(a.validator)
        if not same_slot or a.block_hash == b.block_hash or validator is None:
            self.violations.append(f"{node.name} reported evidence of votes that do not conflict: {a} / {b}")
            return
        if not (a.verify(validator.public_key, CHAIN_ID) and b.verify(validator.public_key, CHAIN_ID)):
            self.violations.append(f"{node.name} reported evidence whose signatures do not verify")
        if any(n.address == a.validator and n.honest for n in self.nodes):
            self.violations.append(f"{node.name} accuses honest validator {a.validator.hex()[:6]}")

    # --- Byzantine behaviour -------------------------------------------------------------------

    def _split(self, node: SimNode) -> tuple[list[int], list[int]]:
        """Peers that get the original and peers that get the twin (some get both, some neither)."""
        first, second = [], []
        for peer in self.nodes:
            if peer is node:
                continue
            choice = self.rng.randrange(4)  # 0: original, 1: twin, 2: both, 3: neither
            if choice in (0, 2):
                first.append(peer.index)
            if choice in (1, 2):
                second.append(peer.index)
        return first, second

    def _targets(self, node: SimNode) -> list[int] | None:
        assert node.byzantine is not None
        if self.rng.random() < node.byzantine.withhold:
            return [p.index for p in self.nodes if p is not node and self.rng.random() < 0.5]
        return None

    def _byzantine_vote(self, node: SimNode, vote: Vote) -> None:
        assert node.byzantine is not None and node.key is not None
        signed = vote.signed_by(node.key, CHAIN_ID)
        node.signed.append(signed)
        if self.rng.random() >= node.byzantine.double_sign:
            self._broadcast(node, signed, self._targets(node))
            return
        known = {m.block.hash for m in node.log.get(vote.height, {}).values() if isinstance(m, ProposalMsg)}
        choices = sorted((known | {b""}) - {vote.block_hash})
        other = self.rng.choice(choices) if choices else sha256(vote.signature)
        twin = Vote(vote.vote_type, vote.height, vote.round, other, vote.validator).signed_by(node.key, CHAIN_ID)
        node.signed.append(twin)
        first, second = self._split(node)
        self.log(f"{node.name} double-signs {vote_name(signed)} -> {first} and {vote_name(twin)} -> {second}")
        self._broadcast(node, signed, first)
        self._broadcast(node, twin, second, to_self=False)

    def _byzantine_proposal(self, node: SimNode, action: SignProposal) -> None:
        assert node.byzantine is not None and node.key is not None
        p = action.proposal
        signed = p.signed_by(node.key, CHAIN_ID)
        node.signed.append(ProposalMsg(signed, action.block))
        if self.rng.random() >= node.byzantine.double_sign:
            self._broadcast(node, ProposalMsg(signed, action.block), self._targets(node))
            return
        invalid = self.rng.random() < node.byzantine.invalid_proposal
        block = self._new_block(node, p.height, invalid)
        pol = self.rng.choice([-1, p.pol_round])
        twin = Proposal(p.height, p.round, pol, block.hash, p.proposer).signed_by(node.key, CHAIN_ID)
        node.signed.append(ProposalMsg(twin, block))
        first, second = self._split(node)
        self.log(f"{node.name} double-proposes h={p.height} r={p.round}: {first} get one block, {second} another")
        self._broadcast(node, ProposalMsg(signed, action.block), first)
        self._broadcast(node, ProposalMsg(twin, block), second, to_self=False)

    # --- the network ---------------------------------------------------------------------------

    def _broadcast(
        self, sender: SimNode, msg: Message, targets: Iterable[int] | None = None, to_self: bool = True
    ) -> None:
        """Send to `targets` (default: every peer) and deliver to the sender itself at once."""
        sender.log.setdefault(message_height(msg), {})[message_key(msg)] = msg
        if to_self:
            self._self_deliver(sender, msg)
        wanted = None if targets is None else set(targets)
        for peer in self.nodes:
            if peer is not sender and (wanted is None or peer.index in wanted):
                self._send(sender, peer, msg)

    def _self_deliver(self, node: SimNode, item: Message | BlockBuilt) -> None:
        instance = node.instance

        def deliver() -> None:
            if node.instance != instance or node.machine is None:
                return
            if isinstance(item, BlockBuilt):
                self._handle(node, item)
            else:
                self._deliver(node, item)

        self.after(0.0, deliver)

    def _cut(self, a: int, b: int) -> bool:
        for start, end, groups in self._partitions:
            if start <= self.now < end:
                ga = next((g for g in groups if a in g), None)
                if ga is None or b not in ga:
                    return True
        return False

    def _send(self, sender: SimNode, receiver: SimNode, msg: Message | Announce) -> None:
        net = self.net
        if self.gossip == "peers" and not isinstance(msg, Announce):
            known = sender.peers.get(receiver.index)
            if known is not None:
                self._mark(known, msg, sent=True)
        frm = sender.index
        if self.now >= net.gst:
            delay = self.rng.uniform(net.min_delay, max(net.min_delay, net.delta))
            self.after(delay, lambda: self._deliver(receiver, msg, sender=frm))
            return
        if self._cut(sender.index, receiver.index) or self.rng.random() < net.drop_rate:
            return
        copies = 2 if self.rng.random() < net.duplicate_rate else 1
        for _ in range(copies):
            delay = self.rng.uniform(net.min_delay, net.max_delay)
            self.after(delay, lambda dup=copies > 1: self._deliver(receiver, msg, dup, sender=frm))

    def _mark(self, known: PeerRoundState, msg: Message, sent: bool) -> None:
        """A peer holds `msg` (it sent it to us, or we sent it to it)."""
        if isinstance(msg, ProposalMsg):
            known.mark_proposal(msg.proposal.height, msg.proposal.round, self.now if sent else None)
        else:
            i = index_of(self.validators).get(msg.validator)
            if i is not None:
                known.mark_vote(msg, i)

    def _gossip(self) -> None:
        sync_after = self.net.sync_after
        for b in self.nodes:
            if not b.up:
                continue
            stalled = sync_after is not None and self.now - b.height_since >= sync_after
            asked = False  # one block-sync request per node per round of gossip
            for a in self.nodes:
                if a is b or not a.up or not a.honest:
                    continue
                ahead = b.height in a.commits and (stalled or a.height > b.height + 1)
                if sync_after is not None and ahead and not asked:
                    self._send_stored(a, b)
                    asked = True
                if self.gossip == "relay":
                    for key, msg in a.log.get(b.height, {}).items():
                        if key not in b.seen:
                            self._send(a, b, msg)
                elif self.gossip == "own":
                    for msg in a.signed:
                        if message_height(msg) == a.height == b.height and message_key(msg) not in b.seen:
                            self._send(a, b, msg)
                else:
                    self._gossip_to_peer(a, b)
        self.after(self.net.gossip_interval, self._gossip)

    def _gossip_to_peer(self, a: SimNode, b: SimNode) -> None:
        """Gossip "peers": `a` tells `b` where it is and sends it what `pick` says it lacks."""
        assert a.machine is not None
        self._send(a, b, Announce(announce(a.machine)))
        known = a.peers.get(b.index)
        if known is None:
            return
        last = a.commits.get(a.height - 1)
        last_commit = None if last is None else LastCommit(last[1], self.validators)
        picked = pick(a.machine, known, last_commit, self.now, PICK_VOTES)
        for proposal, block in picked.proposals:
            self._send(a, b, ProposalMsg(proposal, block))
        for vote in picked.votes:
            self._send(a, b, vote)

    def _send_stored(self, sender: SimNode, receiver: SimNode) -> None:
        """Up to `SYNC_BATCH` stored blocks with their commits, from the receiver's height on."""
        net = self.net
        if self.now < net.gst and (self._cut(sender.index, receiver.index) or self.rng.random() < net.drop_rate):
            return
        heights = range(receiver.height, min(sender.height, receiver.height + SYNC_BATCH))
        batch = [sender.commits[h] for h in heights if h in sender.commits]
        top = net.delta if self.now >= net.gst else net.max_delay
        self.after(self.rng.uniform(net.min_delay, max(net.min_delay, top)), lambda: self._synced(receiver, batch))

    def _deliver(
        self, node: SimNode, msg: Message | Announce, duplicate: bool = False, sender: int | None = None
    ) -> None:
        if node.machine is None:
            return
        if isinstance(msg, Announce):
            if sender is not None:
                node.peers.setdefault(sender, PeerRoundState()).apply(msg.step, self.now)
            return
        if self.gossip == "peers" and sender is not None and sender in node.peers:
            self._mark(node.peers[sender], msg, sent=False)
        key = message_key(msg)
        if key in node.seen and not duplicate:
            return
        if self.gossip != "relay" and message_height(msg) > node.machine.height:
            if message_height(msg) <= node.height + 1 and len(node.ahead) < MAX_AHEAD:
                node.ahead.append(msg)  # as the node keeps them (held messages, the driver's stash)
            return
        fresh = key not in node.seen
        if message_height(msg) <= node.machine.height:  # a future-height message is gossiped again later
            node.seen.add(key)
        node.log.setdefault(message_height(msg), {})[key] = msg
        if fresh and self.gossip != "relay" and node.honest and message_height(msg) == node.height:
            for peer in self.nodes:  # flooding: forwarded the first time it is seen
                if peer is not node and peer.index != sender:
                    self._send(node, peer, msg)
        if isinstance(msg, ProposalMsg):
            event: Event = ProposalReceived(msg.proposal, msg.block, msg.block.hash not in self.invalid_blocks)
        else:
            event = VoteReceived(msg)
            m = node.machine
            if m.height == msg.height and msg.height not in node.decided:
                slot = (msg.validator, msg.height, msg.round, msg.vote_type)
                node.live_votes.setdefault(slot, {}).setdefault(msg.block_hash, msg)
        self._handle(node, event)

    def _handle(self, node: SimNode, event: Event) -> None:
        assert node.machine is not None
        for hook in self.on_deliver:
            hook(node, event)
        self.events_handled += 1
        if event_height(event) == node.height == node.started:  # the WAL: what the machine saw at this height
            node.wal.append(event)
        self._perform(node, node.machine.handle(event))

    # --- checks --------------------------------------------------------------------------------

    def honest_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes if n.honest]

    def check(self) -> None:
        """Raise AssertionError on any violation: agreement, commits, evidence, equivocation."""
        problems = list(self.violations)
        for node in self.honest_nodes():
            heights = sorted(node.decided)
            if heights != list(range(1, len(heights) + 1)):
                problems.append(f"{node.name} decided heights {heights}: not consecutive from 1")
            for height, (block, commit) in node.commits.items():
                try:
                    verify_commit(commit, self.validators, CHAIN_ID, height, block.hash)
                except InvalidCommit as exc:  # pragma: no cover - reported at commit time too
                    problems.append(f"{node.name} height {height}: {exc}")
            if node.machine is not None:
                for height, block_hash in node.machine.decided.items():
                    if node.decided.get(height) != block_hash:
                        problems.append(f"{node.name}: machine.decided[{height}] is not the committed block")
            for slot, votes in node.live_votes.items():
                if len(votes) > 1 and not any(
                    (e.first.validator, e.first.height, e.first.round, e.first.vote_type) == slot for e in node.evidence
                ):
                    problems.append(
                        f"{node.name} received conflicting votes {[vote_name(v) for v in votes.values()]} "
                        "at its current height but reported no evidence"
                    )
        if problems:
            raise AssertionError("\n".join(problems) + "\n--- last events ---\n" + "\n".join(self.trace))
