"""The mempool journal: admitted transactions outlive a crash of the node that accepted them.

Rule: a transaction `tx_send` acknowledged is committed, or evicted for a reason `tx_get`
reports; never forgotten. The mempool lives in memory, so a node killed (kill -9, OOM, power
cut of the process) between admitting a transaction and gossiping it would forget it. So every
admitted transaction is appended to the journal before admission returns (before `tx_send`
answers), and a restarted node admits what its journal holds again.

- Records are written with `os.write` and no fsync: a process that dies keeps what it wrote
  in the kernel's page cache, which is what a crash of the node needs; a crash of the whole
  machine may lose the last records (their senders get no receipt and send again).
- A record is `[u32 length][u64 arrival ms][transaction bytes]`; a torn record at the end of
  a file (a write cut short) and anything that does not decode are skipped on load.
- An eviction is journaled too, as a record `[32][2^64 - 1][transaction hash]` (a tombstone):
  on load it removes what came before it with that hash, and the same transaction sent again
  after it counts again. Without it a restart admitted again what the node had evicted (and
  told `tx_get` so), and that one then took its nonce from the transaction the sender had sent
  in its place, which had been acknowledged.
- The journal is a numbered series of files, appended to only in the newest. Compaction
  starts a new file for appends, then writes what is pending at that moment over the file
  before it and deletes the older ones (in a thread: the event loop only takes the snapshot).
  A crash in the middle leaves duplicates, never a gap: loading de-duplicates by hash.
- On load, transactions come back in arrival order, each sender's in nonce order; those
  older than the mempool's time-to-live are left out (they would have expired).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.clock import now_ms
from core.hashing import sha256

if TYPE_CHECKING:
    from core.transaction import Transaction
    from node.txpool.evictions import Eviction

log = logging.getLogger("aichain.mempool")

_HEADER = struct.Struct(">IQ")
MAX_RECORD = 1 << 20  # larger than any transaction the mempool admits
SUFFIX = ".journal"
SLACK_BYTES = 8 << 20  # compact once the journal holds this much more than twice what is pending
TOMBSTONE = (1 << 64) - 1  # the arrival field of a record whose bytes are the hash of an evicted transaction


@dataclass(frozen=True, slots=True)
class JournalRecord:
    arrival_ms: int
    raw: bytes


class Readmission(Protocol):
    """Admission as a restart uses it (`node.txpool.admission.TxAdmission`)."""

    async def readmit(self, records: list[JournalRecord], ttl_ms: int) -> list[Transaction]: ...

    def subscribe(self, listener: Callable[[list[Transaction]], None], *, relay_only: bool = False) -> None: ...


def encode_records(records: Iterable[tuple[int, bytes]]) -> bytes:
    # Headers and encodings joined once (a header + raw per record would copy each encoding twice).
    pack = _HEADER.pack
    parts: list[bytes] = []
    for arrival, raw in records:
        parts += (pack(len(raw), arrival), raw)
    return b"".join(parts)


def decode_records(data: bytes) -> list[JournalRecord]:
    """The whole records in `data`; a torn or oversized tail ends the list."""
    out: list[JournalRecord] = []
    at = 0
    while at + _HEADER.size <= len(data):
        length, arrival = _HEADER.unpack_from(data, at)
        start = at + _HEADER.size
        if length > MAX_RECORD or start + length > len(data):
            break
        out.append(JournalRecord(arrival, data[start : start + length]))
        at = start + length
    return out


class TxJournal:
    """`append` on admission, `load` at start; to compact: `rotate` (event loop), `write_snapshot`
    (any thread), then `refresh_size` (event loop). One compaction at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._files = sorted(self._indexes())
        self._index = (self._files[-1] + 1) if self._files else 0
        self._fd = self._open(self._index)
        self.bytes_written = sum(self._path(i).stat().st_size for i in self._files)

    def _indexes(self) -> list[int]:
        out = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            stem = path.name[: -len(SUFFIX)]
            if stem.isdigit():
                out.append(int(stem))
        return out

    def _path(self, index: int) -> Path:
        return self.directory / f"{index:010d}{SUFFIX}"

    def _open(self, index: int) -> int:
        self._files = sorted({*self._files, index})
        return os.open(self._path(index), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def load(self) -> list[JournalRecord]:
        """Every transaction the journal holds (oldest file first), each once, less those a later
        tombstone removed (an eviction)."""
        kept: dict[bytes, JournalRecord] = {}  # transaction hash -> its first record since it was last removed
        for index in self._files:
            try:
                data = self._path(index).read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:  # an unreadable file costs what it held, not the node's start
                log.error(
                    "cannot read the mempool journal file %s (%s): its transactions are not admitted again",
                    self._path(index),
                    exc.strerror or exc,
                )
                continue
            for record in decode_records(data):
                if record.arrival_ms == TOMBSTONE:
                    kept.pop(record.raw, None)
                else:
                    kept.setdefault(sha256(record.raw), record)
        return list(kept.values())

    def append(self, records: Iterable[tuple[int, bytes]]) -> None:
        """Write admitted transactions (arrival ms, encoded bytes); returns once the kernel has them."""
        data = encode_records(records)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.bytes_written += len(data)

    def rotate(self) -> int:
        """Start a new file for appends; returns the index the next snapshot replaces (the one before)."""
        os.close(self._fd)
        covered = self._index
        self._index += 1
        self._fd = self._open(self._index)
        return covered

    def write_snapshot(self, covered: int, records: list[tuple[int, bytes]]) -> None:
        """Replace files up to `covered` by `records` (what was pending at the rotation). Any thread."""
        data = encode_records(records)
        target = self._path(covered)
        tmp = target.with_name(target.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
        for index in [i for i in self._files if i < covered]:
            self._path(index).unlink(missing_ok=True)

    def refresh_size(self) -> None:
        """After a compaction (on the thread that appends): forget deleted files, re-count the bytes."""
        self._files = [i for i in self._files if self._path(i).exists()]
        self.bytes_written = sum(self._path(i).stat().st_size for i in self._files)

    def close(self) -> None:
        os.close(self._fd)


class JournalKeeper:
    """Keeps the journal in step with a mempool: every admission appended before it is answered,
    a compaction after a block once the journal holds much more than what is pending."""

    def __init__(
        self, journal: TxJournal, records: Callable[[], list[tuple[int, bytes]]], pending_bytes: Callable[[], int]
    ) -> None:
        self.journal = journal
        self._records = records
        self._pending_bytes = pending_bytes
        self._task: asyncio.Task[None] | None = None
        self.write_errors = 0
        self.compactions = 0

    def load(self) -> list[JournalRecord]:
        return self.journal.load()

    async def restore(self, admission: Readmission, ttl_ms: int) -> list[Transaction]:
        """Admit again what the journal kept, and journal every admission from now on; what was admitted again."""
        records = self.load()
        restored = await admission.readmit(records, ttl_ms) if records else []
        admission.subscribe(self.admitted)
        if records:
            log.info("mempool: %d of %d journaled transactions admitted again", len(restored), len(records))
            self.compact()  # what was not admitted again leaves the journal
        return restored

    def admitted(self, txs: list[Transaction]) -> None:
        """A mempool listener: called with each batch the mempool admitted, before admission answers."""
        now = now_ms()
        self._append([(now, tx.encoded) for tx in txs])

    def evicted(self, eviction: Eviction) -> None:
        """A mempool eviction listener: a restart must not admit the transaction again (a tombstone)."""
        self._append([(TOMBSTONE, eviction.tx_hash)])

    def counts(self) -> dict[str, int]:
        """What /metrics shows of the journal."""
        return {"write_errors": self.write_errors, "compactions": self.compactions, "bytes": self.journal.bytes_written}

    def _append(self, records: list[tuple[int, bytes]]) -> None:
        try:
            self.journal.append(records)
        except OSError as exc:  # a full disk must not stop admission; these are lost to a crash only
            self.write_errors += 1
            if self.write_errors == 1 or self.write_errors % 1000 == 0:
                log.error(
                    "cannot write the mempool journal (%s); admitted transactions would not survive a "
                    "crash of this node: free space in %s",
                    exc,
                    self.journal.directory,
                )

    def block_committed(self) -> None:
        """Compact (in the background) when the journal has grown well past what is pending."""
        if self._task is None and self.journal.bytes_written > 2 * self._pending_bytes() + SLACK_BYTES:
            self.compact()

    def compact(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._compact(), name="mempool-journal")

    async def _compact(self) -> None:
        try:
            covered = self.journal.rotate()
            snapshot = self._records()
            await asyncio.to_thread(self.journal.write_snapshot, covered, snapshot)
            self.journal.refresh_size()
            self.compactions += 1
        except OSError as exc:
            log.error("cannot compact the mempool journal in %s: %s", self.journal.directory, exc)
        finally:
            self._task = None

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.journal.close()


__all__ = ["TOMBSTONE", "JournalKeeper", "JournalRecord", "TxJournal", "decode_records", "encode_records"]
