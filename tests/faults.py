"""Misbehaving validators for tests of real `aichain-node` processes, put in at wiring time.

A test calls `enable(monkeypatch)`: the nodes it starts then load this file as their wiring
(`node.wiring`, through the environment variable AICHAIN_TEST_WIRING). Each node reads what
it does wrong from `<datadir>/faults.json`, which the test writes with `set_faults` before it
starts the node (and may change between restarts); a node without the file is wired as shipped.

- `equivocate`: after each of its votes the validator also signs and sends a conflicting one
  (a Byzantine validator, to test evidence); its double-sign guard is off.
- `commit_delay_ms`: blocks it decides at even heights are written that much later (a
  validator a height behind the others at every other height).
- `exit_after_prevote_at`: at the first height from this one on whose round 0 it proposes, it
  dies as kill -9 would, right after its round-0 prevote went out (the others can lock on its
  block; its precommit never comes).
- `corrupt_chunks`: it serves every artifact chunk with a flipped bit.

This file is loaded by path in the node process: it imports the node's modules only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from consensus.proposer import proposer_for
from core.block import Vote, VoteType
from node.chain import PendingBlock
from node.config import NodeConfig
from node.consensus.double_sign_guard import DoubleSignGuard
from node.consensus.messages import ConsensusMessage, SignedVote
from node.consensus.ports import Broadcast, Ledger
from node.consensus.signer import Signer
from node.wiring import ENV, ChunkReader, Wiring

FAULTS_FILE = "faults.json"
KNOWN = {"equivocate", "commit_delay_ms", "exit_after_prevote_at", "corrupt_chunks"}
log = logging.getLogger("aichain.consensus")


def enable(monkeypatch: Any) -> None:
    """Nodes started from now on in this test load this file as their wiring."""
    monkeypatch.setenv(ENV, str(Path(__file__).resolve()))


def set_faults(datadir: Path, **faults: Any) -> None:
    """What the node of `datadir` does wrong from its next start (nothing: remove the file)."""
    unknown = set(faults) - KNOWN
    assert not unknown, f"unknown faults {unknown}; known: {sorted(KNOWN)}"
    path = datadir / FAULTS_FILE
    if faults:
        datadir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(faults))
    else:
        path.unlink(missing_ok=True)


def equivocating(broadcast: Broadcast, signer: Signer) -> Broadcast:
    """After each vote of ours, also a conflicting one (another block, or nil), signed past the signer's record."""

    async def send(message: ConsensusMessage) -> None:
        await broadcast(message)
        if isinstance(message, SignedVote) and message.vote.validator == signer.address:
            vote = message.vote
            other = b"" if vote.block_hash else b"\xee" * 32
            conflicting = Vote(vote.vote_type, vote.height, vote.round, other, vote.validator)
            await broadcast(SignedVote(conflicting.signed_by(signer.key, signer.chain_id)))

    return send


def exiting_after_prevote(broadcast: Broadcast, signer: Signer, ledger: Ledger, from_height: int) -> Broadcast:
    """Exit (as kill -9 would) once our round-0 prevote at a height from `from_height` on whose round 0
    we propose went out; the frames queued go out first."""

    async def send(message: ConsensusMessage) -> None:
        await broadcast(message)
        if not isinstance(message, SignedVote):
            return
        vote = message.vote
        if vote.validator != signer.address or vote.vote_type != VoteType.PREVOTE or vote.round != 0:
            return
        if vote.height < from_height or proposer_for(ledger.validators, vote.height, 0).address != signer.address:
            return
        log.warning("fault exit_after_prevote_at: exiting after the round-0 prevote at height %d", vote.height)
        await asyncio.sleep(0.5)  # the frames go out meanwhile; the consensus task handles nothing more
        os._exit(137)

    return send


class SlowWrites:
    """The driver's chain, writing the blocks of even heights `delay_s` late (on the block thread)."""

    def __init__(self, ledger: Ledger, delay_s: float) -> None:
        self._ledger = ledger
        self._delay_s = delay_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    def commit(self, pending: PendingBlock, commit: Any) -> None:
        if pending.block.height % 2 == 0:
            time.sleep(self._delay_s)
        self._ledger.commit(pending, commit)


def flipping(read: ChunkReader) -> ChunkReader:
    def corrupt(chunk_id: bytes) -> bytes:
        data = read(chunk_id)
        return bytes([data[0] ^ 1]) + data[1:]

    return corrupt


class Faults(Wiring):
    def __init__(self, faults: dict[str, Any]) -> None:
        self.faults = faults

    def consensus_broadcast(self, broadcast: Broadcast, signer: Signer | None, ledger: Ledger) -> Broadcast:
        if signer is not None and self.faults.get("exit_after_prevote_at"):
            broadcast = exiting_after_prevote(broadcast, signer, ledger, int(self.faults["exit_after_prevote_at"]))
        if signer is not None and self.faults.get("equivocate"):
            broadcast = equivocating(broadcast, signer)
        return broadcast

    def consensus_ledger(self, ledger: Ledger) -> Ledger:
        delay_ms = self.faults.get("commit_delay_ms", 0)
        return SlowWrites(ledger, delay_ms / 1000) if delay_ms else ledger  # type: ignore[return-value]

    def double_sign_guard(self, guard: DoubleSignGuard) -> DoubleSignGuard | None:
        return None if self.faults.get("equivocate") else guard  # it would hold back a validator meant to equivocate

    def served_chunks(self, read: ChunkReader) -> ChunkReader:
        return flipping(read) if self.faults.get("corrupt_chunks") else read


def wiring(config: NodeConfig) -> Wiring:
    """Called by the node (node.wiring.load_wiring) with its configuration."""
    path = config.datadir / FAULTS_FILE
    return Faults(json.loads(path.read_text())) if path.exists() else Wiring()
