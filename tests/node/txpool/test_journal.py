"""The mempool journal's files: what is appended comes back, compaction keeps exactly what is pending."""

from __future__ import annotations

import struct
from pathlib import Path

from core.hashing import sha256
from node.txpool.journal import TOMBSTONE, JournalRecord, TxJournal, decode_records, encode_records


def test_appended_records_come_back_in_order_across_a_reopen(tmp_path: Path) -> None:
    journal = TxJournal(tmp_path)
    journal.append([(1, b"a"), (2, b"bb")])
    journal.append([(3, b"ccc")])
    journal.close()  # a kill -9 closes nothing, but what was written is in the file either way
    again = TxJournal(tmp_path)
    assert again.load() == [JournalRecord(1, b"a"), JournalRecord(2, b"bb"), JournalRecord(3, b"ccc")]
    again.append([(4, b"d")])  # appends go to a new file; the old one stays until compaction
    assert [r.raw for r in TxJournal(tmp_path).load()] == [b"a", b"bb", b"ccc", b"d"]


def test_a_torn_or_garbled_tail_is_skipped(tmp_path: Path) -> None:
    data = encode_records([(1, b"whole"), (2, b"torn-record")])
    assert [r.raw for r in decode_records(data[:-3])] == [b"whole"]
    assert decode_records(b"\xff" * 40) == []  # an absurd length ends the file, nothing is made up
    path = tmp_path / "0000000000.journal"
    path.write_bytes(data[:-3])
    assert [r.raw for r in TxJournal(tmp_path).load()] == [b"whole"]


def test_compaction_replaces_older_files_with_the_snapshot_and_keeps_later_appends(tmp_path: Path) -> None:
    journal = TxJournal(tmp_path)
    journal.append([(1, b"committed"), (2, b"pending")])
    covered = journal.rotate()
    journal.append([(3, b"arrived-during-compaction")])
    journal.write_snapshot(covered, [(2, b"pending")])
    journal.refresh_size()
    assert [r.raw for r in journal.load()] == [b"pending", b"arrived-during-compaction"]
    assert len(list(tmp_path.glob("*.journal"))) == 2
    assert journal.bytes_written == sum(p.stat().st_size for p in tmp_path.glob("*.journal"))
    # A second compaction folds both files into one.
    covered = journal.rotate()
    journal.write_snapshot(covered, [(3, b"arrived-during-compaction")])
    assert [r.raw for r in TxJournal(tmp_path).load()] == [b"arrived-during-compaction"]


def test_a_crash_between_snapshot_and_deletion_leaves_duplicates_not_gaps(tmp_path: Path) -> None:
    # Files 0 and 1 were covered by a snapshot written over file 1; the crash came before file 0 went.
    (tmp_path / "0000000000.journal").write_bytes(encode_records([(1, b"x")]))
    (tmp_path / "0000000001.journal").write_bytes(encode_records([(1, b"x"), (2, b"y")]))
    (tmp_path / "0000000002.journal").write_bytes(encode_records([(3, b"z")]))
    journal = TxJournal(tmp_path)
    assert [r.raw for r in journal.load()] == [b"x", b"y", b"z"]
    journal.append([(4, b"w")])
    assert (tmp_path / "0000000003.journal").exists()  # appends never go into an old file


def test_journal_files_are_for_the_node_user_only(tmp_path: Path) -> None:
    journal = TxJournal(tmp_path / "mempool")
    journal.append([(1, b"a")])
    assert (tmp_path / "mempool").stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (tmp_path / "mempool").glob("*.journal"))


def test_an_eviction_removes_what_came_before_it_and_a_transaction_sent_again_counts_again(tmp_path: Path) -> None:
    journal = TxJournal(tmp_path)
    journal.append([(1, b"evicted"), (2, b"kept"), (3, b"evicted-then-sent-again")])
    journal.append([(TOMBSTONE, sha256(b"evicted")), (TOMBSTONE, sha256(b"evicted-then-sent-again"))])
    journal.append([(4, b"evicted-then-sent-again")])
    assert journal.load() == [JournalRecord(2, b"kept"), JournalRecord(4, b"evicted-then-sent-again")]


def test_an_eviction_during_a_compaction_holds_across_a_crash_that_left_a_covered_file(tmp_path: Path) -> None:
    (tmp_path / "0000000000.journal").write_bytes(encode_records([(2, b"kept")]))  # not deleted before the crash
    (tmp_path / "0000000001.journal").write_bytes(encode_records([(2, b"kept"), (4, b"other")]))  # the snapshot
    (tmp_path / "0000000002.journal").write_bytes(encode_records([(TOMBSTONE, sha256(b"kept"))]))  # evicted after
    assert TxJournal(tmp_path).load() == [JournalRecord(4, b"other")]


def test_an_unreadable_file_costs_its_records_not_the_start(tmp_path: Path) -> None:
    (tmp_path / "0000000000.journal").write_bytes(encode_records([(1, b"kept")]))
    (tmp_path / "0000000001.journal").mkdir()  # reading it fails (IsADirectoryError)
    assert [r.raw for r in TxJournal(tmp_path).load()] == [b"kept"]


def test_a_compaction_snapshot_is_for_the_node_user_only(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        journal = TxJournal(tmp_path)
        journal.append([(1, b"a")])
        journal.write_snapshot(journal.rotate(), [(1, b"a")])
    finally:
        os.umask(old)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in tmp_path.glob("*.journal"))


def test_records_encode_as_header_then_encoding_each() -> None:
    records = [(1, b"a"), (2**63, b""), (TOMBSTONE, bytes(32)), (7, b"x" * 300)]
    expected = b"".join(struct.pack(">IQ", len(raw), arrival) + raw for arrival, raw in records)
    assert encode_records(records) == expected
    assert decode_records(expected) == [JournalRecord(arrival, raw) for arrival, raw in records]
