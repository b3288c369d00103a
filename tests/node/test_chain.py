"""Chain over a real LevelDB: genesis, build/execute/commit, persistence, and rejection of tampered blocks."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.single import single_validator_commit
from core.block import Block, Commit, CommitSig, Header, commit_hash, transactions_root
from core.errors import ConfigError, InvalidBlock, InvalidCommit, InvalidHeader, StateRootMismatch
from core.genesis import ChainParams, Genesis
from core.keys import PrivateKey
from core.receipt import STATUS_SUCCESS
from core.transaction import Transaction, TxKind
from core.units import U64_MAX
from core.validators import Validator, ValidatorSet
from node.chain import Chain, PendingBlock
from storage import keys
from storage.kv import KeyValueStore
from storage.state_tree import verify_proof
from vm.account import Account, account_key

CHAIN = 4242
T0 = 1_767_225_600_000
REWARD = 1_000


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


VALIDATOR = key(100)
USERS = [key(i) for i in range(1, 5)]
START = [10**12, 5 * 10**11, 3, 0]


def make_genesis(chain_id: int = CHAIN, reward: int = REWARD, balances: list[int] | None = None) -> Genesis:
    amounts = START if balances is None else balances
    return Genesis(
        chain_id=chain_id,
        chain_name="test",
        timestamp_ms=T0,
        validators=ValidatorSet((Validator(VALIDATOR.public_key, 1),)),
        allocations=tuple(sorted((k.address, a) for k, a in zip(USERS, amounts, strict=True))),
        params=ChainParams(min_gas_price=1, block_gas_limit=10_000_000, max_block_txs=100, block_reward=reward),
    )


GENESIS = make_genesis()


def commit_of(header: Header, genesis: Genesis = GENESIS) -> Commit:
    return single_validator_commit(VALIDATOR, genesis.validators, genesis.chain_id, header)


@contextmanager
def open_chain(path: Path, genesis: Genesis = GENESIS) -> Iterator[Chain]:
    kv = KeyValueStore(path)
    try:
        yield Chain(kv, genesis)
    finally:
        kv.close()


def transfer(sender: PrivateKey, nonce: int, to: PrivateKey, value: int, price: int = 1) -> Transaction:
    return Transaction(CHAIN, b"", nonce, 21_000, price, int(TxKind.TRANSFER), to.address, value, b"").signed_by(sender)


def produce(chain: Chain, txs: list[Transaction], now_ms: int | None = None) -> tuple[PendingBlock, Commit]:
    """Build, sign and commit the next block, as the single validator does."""
    when = chain.head.timestamp_ms + 1_000 if now_ms is None else now_ms
    pending = chain.build(txs, VALIDATOR.address, when)
    commit = commit_of(pending.block.header, chain.genesis)
    chain.commit(pending, commit)
    return pending, commit


def supply(chain: Chain) -> int:
    total = 0
    for _, value in chain.kv.iterate(keys.STATE + b"a"):
        balance = Account.decode(value).balance
        assert 0 <= balance <= U64_MAX
        total += balance
    return total


def rebuilt(block: Block, **header_changes: Any) -> Block:
    return dataclasses.replace(block, header=dataclasses.replace(block.header, **header_changes))


# --- genesis --------------------------------------------------------------------------------------


def test_genesis_is_written_once(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with open_chain(db) as chain:
        head = chain.head
        assert head.height == 0 and head.chain_id == CHAIN and head.timestamp_ms == T0
        assert head.state_root == chain.tree.root
        assert chain.kv.get(keys.GENESIS) == GENESIS.hash()
        for k, amount in zip(USERS, START, strict=True):
            assert chain.account(k.address).balance == amount
        assert supply(chain) == GENESIS.total_supply()
        assert chain.blocks.block(0) is not None
    with open_chain(db) as chain:
        assert chain.head == head and chain.head.hash == head.hash
        assert chain.tree.root == head.state_root
        assert chain.account(USERS[0].address).balance == START[0]


def test_reopening_with_another_genesis_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with open_chain(db):
        pass
    for other in (
        make_genesis(chain_id=CHAIN + 1),
        make_genesis(reward=REWARD + 1),
        make_genesis(balances=[1, 2, 3, 4]),
    ):
        kv = KeyValueStore(db)
        try:
            with pytest.raises(ConfigError, match="genesis"):
                Chain(kv, other)
        finally:
            kv.close()
    with open_chain(db) as chain:  # the right one still opens
        assert chain.head.height == 0


def test_genesis_state_proofs(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db") as chain:
        header, value, proof = chain.prove_account(USERS[0].address)
        assert value is not None and Account.decode(value).balance == START[0]
        assert verify_proof(header.state_root, account_key(USERS[0].address), value, proof)
        header, value, proof = chain.prove_account(USERS[3].address)  # zero balance: not stored
        assert value is None
        assert verify_proof(header.state_root, account_key(USERS[3].address), None, proof)


# --- build and commit -----------------------------------------------------------------------------


def test_build_and_commit_advance_the_head_and_persist(tmp_path: Path) -> None:
    db = tmp_path / "db"
    alice, bob, carol = USERS[0], USERS[1], USERS[2]
    txs = [transfer(alice, 0, bob, 1_000, price=2), transfer(alice, 1, carol, 7), transfer(bob, 0, carol, 5)]
    with open_chain(db) as chain:
        genesis_head = chain.head
        pending, commit = produce(chain, txs, now_ms=T0 + 5_000)
        block = pending.block
        assert chain.head == block.header
        assert block.height == 1 and block.header.parent_hash == genesis_head.hash
        assert block.header.timestamp_ms == T0 + 5_000
        assert block.header.proposer == VALIDATOR.address
        assert list(block.transactions) == txs and pending.dropped == []
        assert all(r.status == STATUS_SUCCESS for r in pending.receipts)
        assert block.header.state_root == chain.tree.root
        assert chain.last_commit == commit
        fees = 21_000 * 2 + 21_000 + 21_000
        assert chain.account(VALIDATOR.address).balance == fees + REWARD
        assert chain.account(alice.address).balance == START[0] - 1_000 - 7 - 21_000 * 2 - 21_000
        assert chain.account(alice.address).nonce == 2
        assert chain.account(carol.address).balance == START[2] + 12
        assert supply(chain) == GENESIS.total_supply() + REWARD
        # the block store has it all
        assert chain.blocks.block(1) == block
        assert chain.blocks.commit(1) == commit
        assert chain.blocks.height_of(block.hash) == 1
        assert chain.blocks.tx_location(txs[2].hash) == (1, 2)
        assert chain.blocks.receipt(1, 2) == pending.receipts[2]
        head, root = chain.head, chain.tree.root
    with open_chain(db) as chain:
        assert chain.head == head and chain.head.hash == head.hash
        assert chain.tree.root == root == chain.head.state_root
        assert chain.last_commit == commit
        assert chain.account(alice.address).nonce == 2
        # and it keeps going after the restart
        pending2, _ = produce(chain, [transfer(alice, 2, bob, 1)])
        assert chain.head.height == 2
        assert pending2.block.last_commit == commit
        assert pending2.block.header.last_commit_hash == commit.hash()
        assert supply(chain) == GENESIS.total_supply() + 2 * REWARD


def test_build_drops_invalid_transactions_and_skips_gaps(tmp_path: Path) -> None:
    alice, bob = USERS[0], USERS[1]
    good = transfer(alice, 0, bob, 1)
    gap = transfer(alice, 5, bob, 1)  # waits on nonces not in this block: skipped, not invalid
    poor = transfer(USERS[2], 0, bob, 1)  # 3 units cannot pay the fee
    with open_chain(tmp_path / "db") as chain:
        pending = chain.build([good, gap, poor], VALIDATOR.address, T0 + 1)
        assert list(pending.block.transactions) == [good]
        assert [t for t, _ in pending.dropped] == [poor]
        assert chain.head.height == 0  # build touches nothing
        assert chain.account(alice.address).nonce == 0


def test_empty_blocks_pay_the_reward(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db") as chain:
        for _ in range(3):
            produce(chain, [])
        assert chain.head.height == 3
        assert chain.account(VALIDATOR.address).balance == 3 * REWARD
        assert supply(chain) == GENESIS.total_supply() + 3 * REWARD


def test_block_time_is_always_after_the_parent(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db") as chain:
        pending, _ = produce(chain, [], now_ms=T0 - 50_000)  # a clock behind genesis
        assert pending.block.header.timestamp_ms == T0 + 1


def test_commit_refuses_a_block_that_no_longer_builds_on_the_head(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db") as chain:
        stale = chain.build([], VALIDATOR.address, T0 + 1)
        produce(chain, [])
        with pytest.raises(InvalidBlock):
            chain.commit(stale, commit_of(stale.block.header))
        assert chain.head.height == 1


def test_a_block_built_in_steps_equals_one_built_at_once(tmp_path: Path) -> None:
    """The next proposer executes transactions as they arrive (node/consensus/prebuild.py): the block it
    proposes must be exactly the one a single build of the same transactions gives."""
    alice, bob, carol = USERS[0], USERS[1], USERS[2]
    first = [transfer(alice, 0, bob, 10), transfer(bob, 0, carol, 4)]
    later = [transfer(alice, 1, carol, 3), transfer(alice, 2, bob, 1)]
    with open_chain(tmp_path / "a") as a, open_chain(tmp_path / "b") as b:
        builder = a.start_block(VALIDATOR.address, T0 + 1_000)
        assert builder.add(first) == []
        assert builder.add(first + later) == []  # candidates already included are skipped
        stepped = builder.finish()
        whole = b.build(first + later, VALIDATOR.address, T0 + 1_000)
        assert stepped.block == whole.block
        assert stepped.changes == whole.changes and stepped.receipts == whole.receipts
        a.commit(stepped, commit_of(stepped.block.header))
        assert a.head.state_root == whole.block.header.state_root


def test_a_builder_keeps_a_senders_nonce_and_drops_what_became_invalid(tmp_path: Path) -> None:
    alice, bob = USERS[0], USERS[1]
    original = transfer(alice, 0, bob, 10, price=1)
    replacement = transfer(alice, 0, bob, 99, price=5)  # same nonce, arrived after the original was executed
    poor = transfer(USERS[2], 0, bob, 1)  # 3 units cannot pay the fee
    with open_chain(tmp_path / "db") as chain:
        builder = chain.start_block(VALIDATOR.address, T0 + 1_000)
        builder.add([original])
        dropped = builder.add([replacement, poor])
        assert [tx for tx, _ in dropped] == [poor]  # the replacement is skipped, not dropped
        pending = builder.finish()
        assert list(pending.block.transactions) == [original]
        assert pending.block.header.timestamp_ms == T0 + 1_000


def test_a_builder_on_a_replaced_head_refuses_to_finish(tmp_path: Path) -> None:
    with open_chain(tmp_path / "db") as chain:
        builder = chain.start_block(VALIDATOR.address, T0 + 1_000)
        builder.add([transfer(USERS[0], 0, USERS[1], 1)])
        produce(chain, [])  # sync imported a block meanwhile
        assert builder.stale
        with pytest.raises(InvalidBlock, match="no longer the head"):
            builder.finish()


# --- execute: blocks from another node ------------------------------------------------------------


def test_execute_a_block_built_elsewhere(tmp_path: Path) -> None:
    alice, bob = USERS[0], USERS[1]
    with open_chain(tmp_path / "a") as proposer, open_chain(tmp_path / "b") as follower:
        for height in range(1, 4):
            txs = [transfer(alice, height - 1, bob, 10 * height), transfer(bob, height - 1, alice, height)]
            pending, commit = produce(proposer, txs)
            executed = follower.execute(Block.decode(pending.block.encode()), now_ms=pending.block.header.timestamp_ms)
            assert executed.tree_update.root == pending.block.header.state_root == proposer.tree.root
            assert executed.receipts == pending.receipts
            assert executed.changes == pending.changes
            follower.commit(executed, commit)
            assert follower.head == proposer.head
            assert follower.tree.root == proposer.tree.root
        assert follower.account(alice.address).balance == proposer.account(alice.address).balance


def test_execute_skips_signatures_already_verified(tmp_path: Path) -> None:
    with open_chain(tmp_path / "a") as proposer, open_chain(tmp_path / "b") as follower:
        t = transfer(USERS[0], 0, USERS[1], 1)
        pending, _ = produce(proposer, [t])
        assert follower.execute(pending.block, verified={t.hash}).tree_update.root == pending.block.header.state_root


@pytest.fixture
def two_chains(tmp_path: Path) -> Iterator[tuple[Chain, Chain, PendingBlock, Commit]]:
    """A proposer one block ahead of a follower, and that block with its commit."""
    with open_chain(tmp_path / "a") as proposer, open_chain(tmp_path / "b") as follower:
        txs = [transfer(USERS[0], 0, USERS[1], 100), transfer(USERS[1], 0, USERS[2], 50)]
        pending, commit = produce(proposer, txs)
        yield proposer, follower, pending, commit


def test_tampered_state_root(two_chains: tuple[Chain, Chain, PendingBlock, Commit]) -> None:
    _, follower, pending, _ = two_chains
    with pytest.raises(StateRootMismatch):
        follower.execute(rebuilt(pending.block, state_root=b"\x00" * 32))
    assert follower.head.height == 0


def test_tampered_transaction(two_chains: tuple[Chain, Chain, PendingBlock, Commit]) -> None:
    _, follower, pending, _ = two_chains
    block = pending.block
    other = transfer(USERS[0], 0, USERS[1], 101)  # validly signed, but not what the header commits to
    swapped = dataclasses.replace(block, transactions=(other, block.transactions[1]))
    with pytest.raises(InvalidBlock) as info:
        follower.execute(swapped)
    assert type(info.value) is InvalidBlock
    with pytest.raises(InvalidBlock):
        follower.execute(dataclasses.replace(block, transactions=block.transactions[:1]))
    with pytest.raises(InvalidBlock):
        follower.execute(dataclasses.replace(block, transactions=tuple(reversed(block.transactions))))


def test_forged_signature_with_a_consistent_header(two_chains: tuple[Chain, Chain, PendingBlock, Commit]) -> None:
    _, follower, pending, _ = two_chains
    block = pending.block
    forged = dataclasses.replace(block.transactions[0], value=block.transactions[0].value + 1)
    txs = (forged, block.transactions[1])
    with pytest.raises(InvalidBlock, match="InvalidSignature"):
        follower.execute(dataclasses.replace(rebuilt(block, tx_root=transactions_root(txs)), transactions=txs))


def test_invalid_transaction_with_a_consistent_header(two_chains: tuple[Chain, Chain, PendingBlock, Commit]) -> None:
    _, follower, pending, _ = two_chains
    block = pending.block
    txs = (*block.transactions, transfer(USERS[0], 7, USERS[1], 1))  # nonce gap
    tampered = dataclasses.replace(rebuilt(block, tx_root=transactions_root(txs), tx_count=len(txs)), transactions=txs)
    with pytest.raises(InvalidBlock, match="invalid"):
        follower.execute(tampered)


@pytest.mark.parametrize(
    "changes",
    [
        {"parent_hash": b"\x01" * 32},
        {"height": 2},
        {"chain_id": CHAIN + 1},
        {"timestamp_ms": T0},
        {"proposer": USERS[0].address},
        {"validators_hash": b"\x02" * 32},
    ],
)
def test_tampered_header(two_chains: tuple[Chain, Chain, PendingBlock, Commit], changes: dict[str, Any]) -> None:
    _, follower, pending, _ = two_chains
    with pytest.raises(InvalidHeader):
        follower.execute(rebuilt(pending.block, **changes))


@pytest.mark.parametrize(
    "changes", [{"gas_used": 1}, {"receipts_root": b"\x03" * 32}, {"tx_count": 3}, {"evidence_hash": b"\x04" * 32}]
)
def test_tampered_commitments(two_chains: tuple[Chain, Chain, PendingBlock, Commit], changes: dict[str, Any]) -> None:
    _, follower, pending, _ = two_chains
    with pytest.raises(InvalidBlock):
        follower.execute(rebuilt(pending.block, **changes))


def test_block_from_the_future(two_chains: tuple[Chain, Chain, PendingBlock, Commit]) -> None:
    _, follower, pending, _ = two_chains
    ts = pending.block.header.timestamp_ms
    with pytest.raises(InvalidHeader):
        follower.execute(pending.block, now_ms=ts - 60_000)
    follower.execute(pending.block, now_ms=ts)


@pytest.fixture
def at_height_two(tmp_path: Path) -> Iterator[tuple[Chain, PendingBlock]]:
    """A follower at height 1, and block 2 (with the commit of block 1 as its last_commit)."""
    with open_chain(tmp_path / "a") as proposer, open_chain(tmp_path / "b") as follower:
        pending1, commit1 = produce(proposer, [transfer(USERS[0], 0, USERS[1], 1)])
        follower.commit(follower.execute(pending1.block), commit1)
        pending2 = proposer.build(
            [transfer(USERS[0], 1, USERS[1], 1)], VALIDATOR.address, proposer.head.timestamp_ms + 1
        )
        assert pending2.block.last_commit == commit1
        assert follower.execute(pending2.block).tree_update.root == pending2.block.header.state_root
        yield follower, pending2


def with_last_commit(block: Block, commit: Commit | None) -> Block:
    return dataclasses.replace(rebuilt(block, last_commit_hash=commit_hash(commit)), last_commit=commit)


def test_bad_last_commit_signature(at_height_two: tuple[Chain, PendingBlock]) -> None:
    follower, pending = at_height_two
    good = pending.block.last_commit
    assert good is not None
    sig = good.signatures[0]
    flipped = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]
    bad = dataclasses.replace(good, signatures=(CommitSig(sig.validator, flipped),))
    with pytest.raises(InvalidCommit):
        follower.execute(with_last_commit(pending.block, bad))
    # a valid signature, but over another round: also not a precommit of this block
    with pytest.raises(InvalidCommit):
        follower.execute(with_last_commit(pending.block, dataclasses.replace(good, round=1)))


def test_last_commit_without_enough_power(at_height_two: tuple[Chain, PendingBlock]) -> None:
    follower, pending = at_height_two
    good = pending.block.last_commit
    assert good is not None
    with pytest.raises(InvalidCommit):
        follower.execute(with_last_commit(pending.block, dataclasses.replace(good, signatures=())))


def test_last_commit_from_a_non_validator(at_height_two: tuple[Chain, PendingBlock]) -> None:
    follower, pending = at_height_two
    good = pending.block.last_commit
    assert good is not None
    outsider = USERS[0]
    vote = good.precommit_of(CommitSig(outsider.address, b"")).signed_by(outsider, CHAIN)
    forged = dataclasses.replace(good, signatures=(CommitSig(outsider.address, vote.signature),))
    with pytest.raises(InvalidCommit):
        follower.execute(with_last_commit(pending.block, forged))
    doubled = dataclasses.replace(good, signatures=good.signatures * 2)
    with pytest.raises(InvalidCommit):
        follower.execute(with_last_commit(pending.block, doubled))


def test_last_commit_for_another_block(at_height_two: tuple[Chain, PendingBlock]) -> None:
    follower, pending = at_height_two
    good = pending.block.last_commit
    assert good is not None
    other_hash = b"\x05" * 32
    sig = good.precommit_of(good.signatures[0])
    resigned = dataclasses.replace(sig, block_hash=other_hash).signed_by(VALIDATOR, CHAIN)
    wrong = Commit(good.height, good.round, other_hash, (CommitSig(VALIDATOR.address, resigned.signature),))
    with pytest.raises(InvalidCommit):
        follower.execute(with_last_commit(pending.block, wrong))


def test_missing_last_commit(at_height_two: tuple[Chain, PendingBlock]) -> None:
    follower, pending = at_height_two
    with pytest.raises(InvalidBlock):
        follower.execute(with_last_commit(pending.block, None))
    # a last commit that does not match the header's hash of it
    with pytest.raises(InvalidBlock):
        follower.execute(dataclasses.replace(pending.block, last_commit=None))


# --- property: supply across blocks ---------------------------------------------------------------

block_plans = st.lists(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(USERS) - 1),
            st.integers(min_value=0, max_value=len(USERS)),  # len(USERS) = the validator
            st.one_of(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**12)),
            st.integers(min_value=0, max_value=4),  # gas price (0 is below the minimum)
            st.sampled_from([0, 0, 0, 0, 1, -1]),  # nonce offset
        ),
        max_size=8,
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block_plans, st.integers(min_value=0, max_value=10**6))
def test_supply_is_conserved_across_committed_blocks(
    plans: list[list[tuple[int, int, int, int, int]]], reward: int
) -> None:
    genesis = make_genesis(reward=reward)
    with (
        tempfile.TemporaryDirectory() as tmp,
        open_chain(Path(tmp) / "a", genesis) as chain,
        open_chain(Path(tmp) / "b", genesis) as follower,
    ):
        expected_nonce = [0] * len(USERS)
        for height, plan in enumerate(plans, start=1):
            txs = []
            for who, to, value, price, offset in plan:
                recipient = USERS[to] if to < len(USERS) else VALIDATOR
                nonce = max(0, expected_nonce[who] + offset)
                t = Transaction(
                    genesis.chain_id, b"", nonce, 21_000, price, int(TxKind.TRANSFER), recipient.address, value, b""
                ).signed_by(USERS[who])
                txs.append(t)
                if offset == 0:
                    expected_nonce[who] += 1
            pending, commit = produce(chain, txs)
            for k_index, k in enumerate(USERS):
                expected_nonce[k_index] = chain.account(k.address).nonce
            assert supply(chain) == genesis.total_supply() + height * reward
            assert chain.tree.root == chain.head.state_root
            executed = follower.execute(pending.block)
            follower.commit(executed, commit)
            assert follower.tree.root == chain.tree.root
            assert supply(follower) == supply(chain)


# --- the committed-state cache --------------------------------------------------------------------


class _CommitDuringRead(KeyValueStore):
    """A real LevelDB whose next state read lets a block commit after reading (as another thread could)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.during_read: Any = None

    def get(self, key: bytes) -> bytes | None:
        value = super().get(key)
        if self.during_read is not None and key.startswith(keys.STATE):
            action, self.during_read = self.during_read, None
            action()
        return value


def test_the_state_cache_follows_commits_and_never_keeps_a_read_a_commit_overtook(tmp_path: Path) -> None:
    kv = _CommitDuringRead(tmp_path / "db")
    try:
        chain = Chain(kv, GENESIS)
        sender, receiver = USERS[0], USERS[3]
        assert chain.account(receiver.address).balance == 0  # cached now
        produce(chain, [transfer(sender, 0, receiver, 7)])
        assert chain.account(receiver.address).balance == 7  # the commit updated the cached entry

        chain.state._cache.clear()
        kv.during_read = lambda: produce(chain, [transfer(sender, 1, receiver, 5)])
        assert chain.account(receiver.address).balance == 7  # read before the commit landed
        assert chain.account(receiver.address).balance == 12  # not the stale value remembered
        assert chain.account(sender.address).nonce == 2

        reopened_balance = Account.decode(kv.get(keys.STATE + account_key(receiver.address)) or b"").balance
        assert reopened_balance == 12
    finally:
        kv.close()
