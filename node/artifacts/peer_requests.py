"""What this node asks peers about an artifact, and their answers: who holds it, and one chunk of it.

- `find`: WANT goes to every connected peer; the HAVE answers that come back within
  `FIND_TIMEOUT_S` are decoded and checked (id, Merkle root, chunk count). If peers disagree, the
  manifest most of them hold is used and they are its holders. A malformed manifest, or one for
  another artifact, costs its sender a penalty;
- `chunk`: a GET of one chunk, answered by its CHUNK (nil: not there) within `REQUEST_TIMEOUT_S`.
  A CHUNK nobody asked for (or one that came after we gave up on it) costs `PENALTY_UNREQUESTED`:
  chunks are exempt from the byte rate limit, so a flood of them must add up.
A peer that disconnects fails the requests it had.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from core import codec
from core.artifact import Manifest, format_id
from core.errors import ArtifactNotFound, DecodeError
from node.artifacts.serving import CHUNK, GET, HAVE, PENALTY_MALFORMED, WANT
from node.p2p.errors import P2PError
from node.p2p.manager import PeerManager
from node.p2p.peer import Peer

FIND_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
PENALTY_BAD_MANIFEST = 50.0
PENALTY_UNREQUESTED = 5.0  # a late answer to a request that timed out costs little; a flood adds up


class PeerRequests:
    def __init__(self, manager: PeerManager) -> None:
        self.manager = manager
        self._answers: dict[bytes, tuple[dict[bytes, bytes | None], asyncio.Event]] = {}
        self._waiting: dict[tuple[bytes, int, bytes], asyncio.Future[bytes | None]] = {}

    async def find(self, artifact: bytes, expected: Manifest | None = None) -> tuple[Manifest, list[Peer]]:
        """The manifest of `artifact` most peers hold (`expected` only, if given), and those peers."""
        peers = self.manager.connected_peers()
        if not peers:
            raise ArtifactNotFound(f"{format_id(artifact)} is not stored here and no peer is connected to ask")
        answers: dict[bytes, bytes | None] = {}
        event = asyncio.Event()
        self._answers[artifact] = (answers, event)
        try:
            asked = 0
            for peer in peers:
                with contextlib.suppress(P2PError):
                    await peer.send(WANT, [WANT, artifact])
                    asked += 1
            deadline = time.monotonic() + FIND_TIMEOUT_S
            while len(answers) < asked and time.monotonic() < deadline:
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), deadline - time.monotonic())
                if any(raw is not None for raw in answers.values()) and len(answers) >= asked:
                    break
        finally:
            self._answers.pop(artifact, None)
        groups: dict[bytes, list[Peer]] = {}
        manifests: dict[bytes, Manifest] = {}
        for node_key, raw in answers.items():
            holder = self.manager.peer(node_key)
            if raw is None or holder is None:
                continue
            try:
                manifest = Manifest.decode(raw)
            except DecodeError as exc:
                holder.penalize(PENALTY_MALFORMED, f"malformed: manifest: {exc}")
                continue
            if manifest.id != artifact:
                holder.penalize(PENALTY_BAD_MANIFEST, "bad manifest: for another artifact")
                continue
            if expected is not None and manifest != expected:
                continue
            groups.setdefault(raw, []).append(holder)
            manifests[raw] = manifest
        if not groups:
            raise ArtifactNotFound(f"none of the {asked} connected peers stores {format_id(artifact)}")
        best = max(groups, key=lambda raw: len(groups[raw]))
        return manifests[best], groups[best]

    async def chunk(self, peer: Peer, artifact: bytes, index: int) -> bytes | None:
        """Chunk `index` of `artifact` as `peer` sent it, None if it has not got it (raises
        TimeoutError, P2PError if there is no answer)."""
        key = (artifact, index, peer.node_key)
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await peer.send(GET, [GET, artifact, [index]])
            return await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        finally:
            self._waiting.pop(key, None)

    async def on_have(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, HAVE, 3, "have")
            artifact = codec.expect_bytes(items[1], "artifact id", 32)
            raw = None if items[2] is None else codec.expect_bytes(items[2], "manifest", max_size=64 * 1024 * 1024)
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        waiting = self._answers.get(artifact)
        if waiting is not None:
            waiting[0][peer.node_key] = raw
            waiting[1].set()

    async def on_chunk(self, peer: Peer, payload: Any) -> None:
        try:
            items = codec.expect_list(payload, CHUNK, 4, "chunk")
            artifact = codec.expect_bytes(items[1], "artifact id", 32)
            index = codec.expect_uint(items[2], "chunk index")
            data = None if items[3] is None else codec.expect_bytes(items[3], "chunk")
        except DecodeError as exc:
            peer.penalize(PENALTY_MALFORMED, f"malformed: {exc}")
            return
        future = self._waiting.pop((artifact, index, peer.node_key), None)
        if future is None:  # not asked (or asked and given up on): chunks are exempt from the byte rate limit
            peer.penalize(PENALTY_UNREQUESTED, "unrequested chunk")
        elif not future.done():
            future.set_result(data)

    def peer_gone(self, peer: Peer) -> None:
        """`peer` disconnected: what it was asked fails now."""
        for key in [k for k in self._waiting if k[2] == peer.node_key]:
            future = self._waiting.pop(key)
            if not future.done():
                future.set_exception(TimeoutError("peer disconnected"))
