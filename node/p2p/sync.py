"""Block sync: a node that is behind fetches blocks with their commits from its peers.

Protocol (application message types 20, 21 and 22):
- `[20, height, head hash]` (`STATUS`): a node's head, sent to each peer as it connects and to
  every peer after each block;
- `[21, from_height, count]` asks for up to `count` (at most 128) consecutive blocks;
- `[22, from_height, [[block bytes, commit bytes], ...]]` answers with the blocks it has,
  at most ~8 MiB per answer.

Rules: peers announce their heads (`STATUS`); while some peer is ahead, windows of blocks are
requested from different peers in parallel; an answer is decoded (on a worker thread, a block
at a time, so the first blocks import while the rest decode) only if it is for a window asked
of that peer, else it costs the peer score unread; blocks are imported strictly in order, each
only after its commit verifies against the validator set this node tracks for that height
(more than 2/3 of the power signed that very block). The transaction signatures of such a
block are not verified again unless configured (`p2p.sync_verify_tx_signatures`): an honest
validator precommitted it, and precommits only a block it has validated whole, so a forged
signature needs more than 1/3 of the power to be Byzantine, the bound finality already rests
on; the transactions themselves are bound to the committed hash by the header's tx root. A
peer that sends a block whose commit or execution fails is penalised and the window is asked
of someone else. After each imported block, consensus restarts at the new height.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Container
from typing import TYPE_CHECKING, Any, Final, Protocol

from consensus.validation import verify_commit
from core import codec
from core.block import Block, Commit, Header
from core.codec import Value
from core.errors import AichainError, DecodeError
from core.validators import ValidatorSet
from node.block_thread import BlockThread
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer

if TYPE_CHECKING:
    from node.chain import PendingBlock
    from node.metrics import NodeMetrics

log = logging.getLogger("aichain.sync")

STATUS, GET_BLOCKS, BLOCKS = 20, 21, 22
PENALTY_MALFORMED = 20.0
WINDOW = 64
MAX_COUNT = 128
MAX_ANSWER_BYTES = 8 * 1024 * 1024
REQUEST_TIMEOUT_S = 10.0
PARALLEL_WINDOWS = 4
PENALTY_BAD_BLOCK = 50.0
PENALTY_UNSERVED = 10.0
UNSERVED_DOUBT_S = 60.0  # after an empty answer: the peer said it has no such block
SILENT_DOUBT_S = 15.0  # after no answer: perhaps only slow
ONE_BEHIND_GRACE_S = 2.0


class StoredBlocks(Protocol):
    def block_bytes(self, height: int) -> bytes | None: ...

    def commit(self, height: int) -> Commit | None: ...


class SyncedChain(Protocol):
    """The chain as sync serves and extends it (`node.chain.Chain`)."""

    @property
    def chain_id(self) -> int: ...

    @property
    def head(self) -> Header: ...

    @property
    def validators(self) -> ValidatorSet: ...

    @property
    def blocks(self) -> StoredBlocks: ...

    def execute(self, block: Block, now_ms: int | None = None, verified: Any = None) -> PendingBlock: ...

    def commit(self, pending: PendingBlock, commit: Commit) -> None: ...


class ConsensusProgress(Protocol):
    """Where consensus is (`consensus.tendermint.Tendermint`, read only)."""

    height: int

    def decided_without_block(self) -> bool: ...


class BlockSync:
    def __init__(
        self,
        manager: PeerManager,
        chain: SyncedChain,
        blocks: BlockThread,
        consensus: ConsensusProgress,
        verify_signatures: Callable[[Block], Awaitable[set[bytes]]],
        on_imported: Callable[[PendingBlock], Awaitable[None]],
        metrics: NodeMetrics,
        answer_bytes: int = MAX_ANSWER_BYTES,
        *,
        verify_tx_signatures: bool = False,
    ) -> None:
        self.manager = manager
        self.chain = chain
        self.blocks = blocks  # its `writing_height` is a block consensus decided and is writing
        self.consensus = consensus
        self.verify_signatures = verify_signatures  # a block's transaction signatures, on two threads
        self.on_imported = on_imported
        self.metrics = metrics
        self.answer_bytes = answer_bytes
        self.verify_tx_signatures = verify_tx_signatures  # of blocks whose commit verified (see the module)
        self._heads: dict[bytes, int] = {}  # peer node key -> announced height
        self._received: dict[int, tuple[Block, Commit, bytes]] = {}  # height -> (block, commit, from peer)
        self._requested: dict[int, tuple[bytes, float]] = {}  # window start -> (peer, when)
        self._decoding: set[int] = set()  # window starts whose answer is being decoded
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._one_behind_since: tuple[int, float] | None = None
        # peer node key -> (first height it announced but did not serve, until when): its claims from
        # there on are not believed for a while, or one peer announcing a head nobody has would keep
        # the node "syncing" for as long as it stayed connected; the doubt outlives this node's head
        # passing that height (the blocks came from others; the claim is still unproven)
        self._unserved: dict[bytes, tuple[int, float]] = {}

    def register(self) -> None:
        self.manager.register(STATUS, self._on_status)
        self.manager.register(GET_BLOCKS, self._on_get_blocks)
        self.manager.register(BLOCKS, self._on_blocks)
        self.manager.on_peer_connected(self._on_connected)
        self.manager.on_peer_disconnected(self._on_disconnected)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def target(self) -> int:
        return max(self._heads.values(), default=0)

    def syncing(self) -> bool:
        return self.target > self.chain.head.height + 1

    def _behind(self) -> bool:
        """Consensus catches up one block by itself; sync when further behind, one behind for long, or
        one behind with the commit's precommits in hand but not the block (a validator back from a
        crash gets the precommits from its peers' vote gossip, never the proposal: waiting out the
        grace there only delays the height the others wait at). A block consensus decided and is
        writing counts as ours (fetching it too would be wasted)."""
        head = self.chain.head.height
        if self.blocks.writing_height is not None:
            head = max(head, self.blocks.writing_height)
        if self.target <= head:
            self._one_behind_since = None
            return False
        if self.target > head + 1:
            return True
        if self.consensus.height == head + 1 and self.consensus.decided_without_block():
            return True
        now = time.monotonic()
        if self._one_behind_since is None or self._one_behind_since[0] != head:
            self._one_behind_since = (head, now)
        return now - self._one_behind_since[1] >= ONE_BEHIND_GRACE_S

    def head_of(self, peer: Peer) -> int | None:
        """The head `peer` announced, if it did."""
        return self._heads.get(peer.node_key)

    def peer_heads(self) -> list[int] | None:
        """The heads the connected peers announced; None while one of them has not yet."""
        heads = []
        for peer in self.manager.connected_peers():
            height = self.head_of(peer)
            if height is None:
                return None
            heads.append(height)
        return heads

    def show_head(self) -> None:
        """Put our head in the Hello of later connections."""
        head = self.chain.head
        self.manager.set_head(head.height, head.hash)

    async def announce_head(self) -> None:
        """Tell every peer our new head (after each block)."""
        self.show_head()
        head = self.chain.head
        await self.manager.broadcast(STATUS, [STATUS, head.height, head.hash])

    async def _on_connected(self, peer: Peer) -> None:
        head = self.chain.head
        await peer.send(STATUS, [STATUS, head.height, head.hash])

    async def _on_status(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, STATUS, 3, "status")
            height = codec.expect_uint(items[1], "status height")
            head_hash = codec.expect_bytes(items[2], "status head hash", 32)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        self.peer_head(peer, height, head_hash)

    def peer_head(self, peer: Peer, height: int, head_hash: bytes) -> None:
        doubted = self._unserved.get(peer.node_key)
        if doubted is not None:
            if time.monotonic() > doubted[1]:
                del self._unserved[peer.node_key]
            else:
                height = min(height, doubted[0] - 1)
        self._heads[peer.node_key] = height
        peer.set_head(height, head_hash)
        if height > self.chain.head.height:
            self._wake.set()

    def _on_disconnected(self, peer: Peer) -> None:
        current = self.manager.peer(peer.node_key)
        if current is None or current is peer:  # not a duplicate connection replaced by a newer one
            self._heads.pop(peer.node_key, None)

    # --- serving --------------------------------------------------------------------------

    async def _on_get_blocks(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, GET_BLOCKS, 3, "get blocks")
            start = codec.expect_uint(items[1], "from height")
            count = min(codec.expect_uint(items[2], "count"), MAX_COUNT)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        store = self.chain.blocks
        out: list[Value] = []
        size = 0
        for height in range(max(start, 1), start + count):
            raw = store.block_bytes(height)
            commit = store.commit(height)
            if raw is None or commit is None:
                break
            encoded_commit = commit.encode()
            if out and size + len(raw) > self.answer_bytes:
                break
            out.append([raw, encoded_commit])
            size += len(raw) + len(encoded_commit)
        await peer.send(BLOCKS, [BLOCKS, start, out])

    # --- fetching -------------------------------------------------------------------------

    async def _on_blocks(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, BLOCKS, 3, "blocks")
            start = codec.expect_uint(items[1], "from height")
            if not isinstance(items[2], list) or len(items[2]) > MAX_COUNT:
                raise DecodeError(f"blocks: expected an array of at most {MAX_COUNT}")
        except DecodeError as exc:
            peer.penalize(25.0, f"malformed: {exc}")
            return
        # Whether we asked this peer is checked before anything is decoded: decoding is the costly part.
        window = start - (start - 1) % WINDOW if start else start
        asked = self._requested.get(window)
        if asked is None or asked[0] != peer.node_key:
            peer.penalize(10.0, "unsolicited: blocks nobody asked this peer for")
            return
        del self._requested[window]
        self._decoding.add(window)  # not asked again while its blocks decode and import
        try:
            await self._take_blocks(peer, start, items[2])
        finally:
            self._decoding.discard(window)
            self._wake.set()

    async def _take_blocks(self, peer: Peer, start: int, pairs: list[Any]) -> None:
        if not pairs and start <= self._heads.get(peer.node_key, -1):
            # A node serves at least one block of any range that begins at or below its head.
            claimed = self._heads[peer.node_key]
            peer.penalize(PENALTY_UNSERVED, f"unserved: announced head {claimed} but has no block {start}")
            self._doubt(peer.node_key, start, UNSERVED_DOUBT_S)
        for offset, pair in enumerate(pairs):
            if self.manager.peer(peer.node_key) is not peer:
                return  # banned meanwhile (a bad block of this answer, say): the rest is not worth decoding
            try:
                # Off the event loop (8 MiB of blocks can hold 60,000 transactions, ~0.5 s to decode),
                # one block at a time: the importer runs each block while the next ones decode.
                block, commit = await asyncio.to_thread(_decode_block, start + offset, pair)
            except DecodeError as exc:
                peer.penalize(25.0, f"malformed: {exc}")
                return
            if block.height > self.chain.head.height:
                self._received.setdefault(block.height, (block, commit, peer.node_key))
                self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync step failed")
                await asyncio.sleep(1)
                self._wake.set()

    async def _step(self) -> None:
        chain = self.chain
        head = chain.head.height
        if self.target <= head:
            self._received.clear()
            return
        if not self._behind():
            asyncio.get_running_loop().call_later(0.5, self._wake.set)
            return
        await self._import_ready()
        head = chain.head.height
        now = time.monotonic()
        for window, (key, asked_at) in list(self._requested.items()):
            if window + WINDOW <= head:
                del self._requested[window]
            elif now - asked_at > REQUEST_TIMEOUT_S:
                del self._requested[window]
                self._doubt(key, max(window, head + 1), SILENT_DOUBT_S)  # ask the others for a while
        first = (head // WINDOW) * WINDOW + 1
        windows = [first + i * WINDOW for i in range(PARALLEL_WINDOWS) if first + i * WINDOW <= self.target]
        for i, window in enumerate(windows):
            # only peers that announced the window's first missing block
            need = max(window, head + 1)
            candidates = [key for key, height in self._heads.items() if height >= need and self.manager.peer(key)]
            if window in self._requested or window in self._decoding or not candidates:
                continue
            key = candidates[(window // WINDOW + i) % len(candidates)]
            peer = self.manager.peer(key)
            if peer is None:
                continue
            self._requested[window] = (key, now)
            start = max(window, chain.head.height + 1)  # an answer may have covered part of the window
            while start in self._received and start < window + WINDOW - 1:
                start += 1
            await peer.send(GET_BLOCKS, [GET_BLOCKS, start, window + WINDOW - start])
        if self.target > chain.head.height:
            asyncio.get_running_loop().call_later(0.5, self._wake.set)

    def _doubt(self, key: bytes, height: int, seconds: float) -> None:
        """`key` did not serve `height` although it announced it: count its announcements only below it
        for `seconds`."""
        self._unserved[key] = (height, time.monotonic() + seconds)
        if self._heads.get(key, -1) >= height:
            self._heads[key] = height - 1
        if len(self._unserved) > 1024:  # keys of peers long gone
            now = time.monotonic()
            self._unserved = {k: v for k, v in self._unserved.items() if now <= v[1]}
        self._wake.set()

    async def _import_ready(self) -> None:
        chain = self.chain
        while True:
            height = chain.head.height + 1
            entry = self._received.pop(height, None)
            if entry is None:
                return
            block, commit, source = entry
            try:
                await self._import(block, commit)
            except AichainError as exc:
                log.warning("block %d from peer %s is refused: %s", height, source.hex()[:12], exc)
                peer = self.manager.peer(source)
                if peer is not None:
                    peer.penalize(PENALTY_BAD_BLOCK, f"bad block {height}: {exc}")
                self._received = {h: e for h, e in self._received.items() if e[2] != source}
                return

    async def _import(self, block: Block, commit: Commit) -> None:
        chain = self.chain
        verify_commit(commit, chain.validators, chain.chain_id, block.height, block.hash)  # always, strictly
        verified = await self.verify_signatures(block) if self.verify_tx_signatures else COMMITTED
        async with self.blocks.commit_lock:
            if chain.head.height + 1 != block.height:
                return  # consensus committed it meanwhile
            pending = await self.blocks.run(chain.execute, block, None, verified)
            await self.blocks.run(chain.commit, pending, commit)
        self.metrics.sync_imported.inc()
        await self.on_imported(pending)


class _Committed(Container[bytes]):
    """The transactions of a block whose commit verified: all count as verified (see the module)."""

    def __contains__(self, tx_hash: object) -> bool:
        return True


COMMITTED: Final = _Committed()


def _decode_block(height: int, pair: Any) -> tuple[Block, Commit]:
    """One `[block, commit]` pair of an answer, which must be the block at `height` (run on a worker
    thread: the transactions are decoded without the mempool, which only the event loop touches)."""
    if not isinstance(pair, list) or len(pair) != 2:
        raise DecodeError("blocks: expected [block, commit] pairs")
    block = Block.decode(codec.expect_bytes(pair[0], "block"))
    commit = Commit.decode(codec.expect_bytes(pair[1], "commit"))
    if block.height != height:
        raise DecodeError(f"blocks: expected height {height}, got {block.height}")
    return block, commit
