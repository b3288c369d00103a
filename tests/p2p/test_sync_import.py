"""Block sync against lying peers: what it imports, what it refuses, and whom it penalises.

A fresh chain syncs from an honest peer and from an attacker announcing the same head; the
attacker is asked first and answers with a block whose commit is forged or short of 2/3 of the
power, or whose transactions were tampered with. The block is refused, the attacker penalised,
and the chain syncs on from the honest peer to the same state root. A synced block's
transaction signatures are trusted to its commit unless `verify_tx_signatures` is set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from consensus.single import single_validator_commit
from core.block import Block, Commit, CommitSig, Vote, VoteType
from core.genesis import ChainParams, Genesis
from core.keys import PrivateKey
from core.transaction import Transaction, TxKind
from core.validators import Validator, ValidatorSet
from node.block_thread import BlockThread
from node.chain import Chain
from node.p2p import sync as sync_module
from node.p2p.sync import BLOCKS, GET_BLOCKS, PENALTY_BAD_BLOCK, BlockSync
from storage.kv import KeyValueStore

CHAIN = 4343
T0 = 1_767_225_600_000
VALIDATOR = PrivateKey.from_seed(b"\x64" * 32)
OUTSIDER = PrivateKey.from_seed(b"\x65" * 32)
USERS = [PrivateKey.from_seed(bytes([i]) * 32) for i in range(1, 4)]
GENESIS = Genesis(
    chain_id=CHAIN,
    chain_name="sync-test",
    timestamp_ms=T0,
    validators=ValidatorSet((Validator(VALIDATOR.public_key, 1),)),
    allocations=tuple(sorted((k.address, 10**15) for k in USERS)),
    params=ChainParams(min_gas_price=1, block_gas_limit=10_000_000, max_block_txs=100),
)
BLOCKS_BUILT = 6


def transfer(sender: PrivateKey, nonce: int, value: int) -> Transaction:
    to = USERS[(USERS.index(sender) + 1) % len(USERS)].address
    return Transaction(CHAIN, b"", nonce, 21_000, 1, int(TxKind.TRANSFER), to, value, b"").signed_by(sender)


def bad_signature(tx: Transaction) -> Transaction:
    flipped = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
    return dataclasses.replace(tx, signature=flipped)


@contextmanager
def open_chain(path: Path) -> Iterator[Chain]:
    kv = KeyValueStore(path)
    try:
        yield Chain(kv, GENESIS)
    finally:
        kv.close()


def produce(chain: Chain, blocks: int, forge_signature_at: int | None = None) -> None:
    """Commit `blocks` blocks of transfers, as the single validator would (signatures are the
    mempool's business, so a block built here may carry a bad one: at `forge_signature_at`)."""
    for height in range(chain.head.height + 1, chain.head.height + 1 + blocks):
        txs = [transfer(user, height - 1, 1_000 + height) for user in USERS]
        if height == forge_signature_at:
            txs[1] = bad_signature(txs[1])
        pending = chain.build(txs, VALIDATOR.address, chain.head.timestamp_ms + 1_000)
        assert len(pending.block.transactions) == len(txs)
        chain.commit(pending, single_validator_commit(VALIDATOR, GENESIS.validators, CHAIN, pending.block.header))


def served(chain: Chain, start: int, count: int) -> list[tuple[Block, Commit]]:
    out = []
    for height in range(max(start, 1), min(start + count, chain.head.height + 1)):
        block, commit = chain.blocks.block(height), chain.blocks.commit(height)
        assert block is not None and commit is not None
        out.append((block, commit))
    return out


class FakePeer:
    """A connected peer that answers each request for blocks with `serve(start, count)`."""

    def __init__(
        self, name: bytes, manager: FakeManager, serve: Callable[[int, int], list[tuple[Block, Commit]]]
    ) -> None:
        self.node_key = name * 32
        self.manager = manager
        self.serve = serve
        self.penalties: list[tuple[float, str]] = []
        self.asked: list[int] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def send(self, msg_type: int, payload: Any) -> None:
        if msg_type == GET_BLOCKS:
            _, start, count = payload
            self.asked.append(start)
            pairs = [[block.encode(), commit.encode()] for block, commit in self.serve(start, count)]
            task = asyncio.create_task(self.manager.sync.on_message(BLOCKS, self, [BLOCKS, start, pairs]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def penalize(self, amount: float, reason: str) -> None:
        self.penalties.append((amount, reason))
        if sum(a for a, _ in self.penalties) >= 100:  # the manager bans at -100
            self.manager.ban(self)

    def set_head(self, height: int, head_hash: bytes) -> None:
        pass


class FakeManager:
    """The part of `PeerManager` sync uses: handlers by message type, peers by key, bans."""

    def __init__(self) -> None:
        self.handlers: dict[int, Callable[..., Any]] = {}
        self.peers: dict[bytes, FakePeer] = {}
        self.disconnected: list[Callable[[Any], None]] = []
        self.sync = SimpleNamespace(on_message=self.dispatch)

    async def dispatch(self, msg_type: int, peer: FakePeer, payload: Any) -> None:
        if peer.node_key in self.peers:
            await self.handlers[msg_type](peer, payload)

    def register(self, msg_type: int, handler: Callable[..., Any]) -> None:
        self.handlers[msg_type] = handler

    def on_peer_connected(self, callback: Any) -> None:
        pass

    def on_peer_disconnected(self, callback: Callable[[Any], None]) -> None:
        self.disconnected.append(callback)

    def peer(self, key: bytes) -> FakePeer | None:
        return self.peers.get(key)

    def connected_peers(self) -> list[FakePeer]:
        return list(self.peers.values())

    def ban(self, peer: FakePeer) -> None:
        if self.peers.pop(peer.node_key, None) is not None:
            for callback in self.disconnected:
                callback(peer)


async def sync_from(
    chain: Chain,
    source: Chain,
    attacker_serves: Callable[[int, int], list[tuple[Block, Commit]]] | None,
    *,
    verify_tx_signatures: bool = False,
    timeout: float = 20.0,
) -> tuple[FakePeer | None, FakePeer]:
    """Sync `chain` to `source`'s head from an honest peer and, announced first (so asked first),
    an attacker; return (attacker, honest) once the heads match or `timeout` passed."""
    manager = FakeManager()
    blocks = BlockThread()

    async def verify(block: Block) -> set[bytes]:
        for tx in block.transactions:
            if not tx.signature_valid():
                from core.errors import InvalidBlock

                raise InvalidBlock(f"block {block.height}: a bad signature")
        return {tx.hash for tx in block.transactions}

    async def imported(pending: Any) -> None:
        pass

    metrics = SimpleNamespace(sync_imported=SimpleNamespace(inc=lambda: None))
    consensus = SimpleNamespace(height=1, decided_without_block=lambda: False)
    sync = BlockSync(
        manager,  # type: ignore[arg-type]
        chain,
        blocks,
        consensus,
        verify,
        imported,
        metrics,  # type: ignore[arg-type]
        verify_tx_signatures=verify_tx_signatures,
    )
    sync.register()
    honest = FakePeer(b"h", manager, lambda start, count: served(source, start, count))
    attacker = None if attacker_serves is None else FakePeer(b"a", manager, attacker_serves)
    for peer in [p for p in (attacker, honest) if p is not None]:
        manager.peers[peer.node_key] = peer
        sync.peer_head(peer, source.head.height, source.head.hash)  # type: ignore[arg-type]
    sync.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while chain.head.height < source.head.height and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await sync.stop()
        blocks.shutdown()
    return attacker, honest


def forged_commit(block: Block, commit: Commit) -> Commit:
    """A commit signed by a key outside the validator set."""
    vote = Vote(VoteType.PRECOMMIT, block.height, 0, block.hash, OUTSIDER.address).signed_by(OUTSIDER, CHAIN)
    return Commit(block.height, 0, block.hash, (CommitSig(OUTSIDER.address, vote.signature),))


def wrong_signature_commit(block: Block, commit: Commit) -> Commit:
    """The validator's signature, but over another block hash."""
    return dataclasses.replace(commit, signatures=(CommitSig(VALIDATOR.address, b"\x00" * 64),))


def empty_commit(block: Block, commit: Commit) -> Commit:
    """No precommit at all: none of the power."""
    return dataclasses.replace(commit, signatures=())


def tampered_transaction(block: Block) -> Block:
    """One transfer's value raised, its old signature kept."""
    txs = list(block.transactions)
    txs[0] = dataclasses.replace(txs[0], value=txs[0].value * 1000)
    return dataclasses.replace(block, transactions=tuple(txs))


def tampered_and_rehashed(block: Block) -> Block:
    """A transaction re-signed by its sender with another value, and the header's tx root fixed
    to match: the block hash changes, so the commit no longer covers it."""
    from core.block import transactions_root

    txs = list(block.transactions)
    txs[0] = dataclasses.replace(txs[0], value=txs[0].value * 1000).signed_by(USERS[0])
    header = dataclasses.replace(block.header, tx_root=transactions_root(tuple(txs)))
    return dataclasses.replace(block, header=header, transactions=tuple(txs))


LIES: dict[str, Callable[[Block, Commit], tuple[Block, Commit]]] = {
    "forged commit": lambda b, c: (b, forged_commit(b, c)),
    "commit signature that does not verify": lambda b, c: (b, wrong_signature_commit(b, c)),
    "commit without 2/3 of the power": lambda b, c: (b, empty_commit(b, c)),
    "commit of another height": lambda b, c: (b, dataclasses.replace(c, height=c.height + 1)),
    "tampered transaction": lambda b, c: (tampered_transaction(b), c),
    "tampered transaction, tx root fixed": lambda b, c: (tampered_and_rehashed(b), c),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    with open_chain(tmp_path_factory.mktemp("source") / "db") as chain:
        produce(chain, BLOCKS_BUILT)
        yield chain


@pytest.mark.parametrize("lie", sorted(LIES))
async def test_a_lying_peer_is_refused_and_penalised_and_sync_goes_on_from_the_honest_one(
    lie: str, source: Chain, tmp_path: Path
) -> None:
    lied_at = 3  # blocks 1-2 true, so the lie is caught in the middle of an answer

    def serve(start: int, count: int) -> list[tuple[Block, Commit]]:
        return [LIES[lie](b, c) if b.height == lied_at else (b, c) for b, c in served(source, start, count)]

    with open_chain(tmp_path / "db") as chain:
        attacker, honest = await sync_from(chain, source, serve)
        assert chain.head.hash == source.head.hash
        assert chain.head.state_root == source.head.state_root == chain.tree.root
    assert attacker is not None
    assert attacker.asked and attacker.asked[0] == 1, "the attacker was meant to be asked first"
    bad = [reason for amount, reason in attacker.penalties if amount == PENALTY_BAD_BLOCK]
    assert bad and all(f"bad block {lied_at}" in reason for reason in bad), attacker.penalties
    assert not honest.penalties


async def test_a_synced_node_ends_with_the_validators_state_root(source: Chain, tmp_path: Path) -> None:
    with open_chain(tmp_path / "db") as chain:
        _, honest = await sync_from(chain, source, None)
        assert chain.head.height == BLOCKS_BUILT
        assert chain.tree.root == source.tree.root == chain.head.state_root
        for height in range(1, BLOCKS_BUILT + 1):
            assert chain.blocks.block_bytes(height) == source.blocks.block_bytes(height)
    assert not honest.penalties


async def test_blocks_import_while_the_rest_of_their_answer_decodes_and_are_not_asked_again(
    source: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decode = sync_module._decode_block
    heads_seen: list[int] = []

    def slow_decode(height: int, pair: Any) -> tuple[Block, Commit]:
        time.sleep(0.1)  # decoding slower than importing: the importer waits on each block
        heads_seen.append(chain.head.height)
        return decode(height, pair)

    monkeypatch.setattr(sync_module, "_decode_block", slow_decode)
    with open_chain(tmp_path / "db") as chain:
        _, honest = await sync_from(chain, source, None)
        assert chain.head.hash == source.head.hash
    assert heads_seen[-1] >= BLOCKS_BUILT - 2, f"blocks were imported only after the answer decoded: {heads_seen}"
    assert honest.asked == [1], "the rest of a window being decoded was asked for again"


@pytest.mark.parametrize("verify", [False, True])
async def test_transaction_signatures_of_a_committed_block_are_checked_only_if_configured(
    verify: bool, tmp_path: Path
) -> None:
    """Validators that committed a block with a bad signature (more than 1/3 Byzantine, beyond what
    finality survives): trusted by default, refused with `verify_tx_signatures`."""
    with open_chain(tmp_path / "source") as source:
        produce(source, 4, forge_signature_at=2)
        with open_chain(tmp_path / "db") as chain:
            _, honest = await sync_from(chain, source, None, verify_tx_signatures=verify, timeout=3.0)
            if verify:
                assert chain.head.height == 1
                assert any("bad block 2" in reason for _, reason in honest.penalties)
            else:
                assert chain.head.hash == source.head.hash
                assert not honest.penalties


async def test_the_rest_of_an_answer_from_a_peer_banned_meanwhile_is_not_decoded(
    source: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every block the attacker serves has a forged commit: the second one refused bans it, and the
    blocks left in that answer are dropped undecoded."""
    decode = sync_module._decode_block
    from_attacker: list[int] = []

    def slow_decode(height: int, pair: Any) -> tuple[Block, Commit]:
        time.sleep(0.05)
        block, commit = decode(height, pair)
        if commit.signatures[0].validator == OUTSIDER.address:
            from_attacker.append(height)
        return block, commit

    monkeypatch.setattr(sync_module, "_decode_block", slow_decode)

    def serve(start: int, count: int) -> list[tuple[Block, Commit]]:
        return [(b, forged_commit(b, c)) for b, c in served(source, start, count)]

    with open_chain(tmp_path / "db") as chain:
        attacker, _ = await sync_from(chain, source, serve)
        assert chain.head.hash == source.head.hash
    assert attacker is not None and sum(amount for amount, _ in attacker.penalties) >= 100
    # its first answer decodes whole (one bad block only costs it score); its second stops at the ban
    # (a block or two on: the next block's decoding may begin before the importer refuses the last)
    assert len(from_attacker) <= BLOCKS_BUILT + 2, from_attacker
