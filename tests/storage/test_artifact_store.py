"""The artifact store on a real disk and LevelDB: round trips, corruption, dedup, pins, gc, erase, crashes."""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core import codec
from core.artifact import KIND_DIRECTORY, Manifest, parse_id
from core.clock import now_ms
from core.errors import ArtifactErased, ArtifactNotFound, CorruptChunk, DecodeError
from core.hashing import merkle_proof, verify_merkle_proof
from storage.artifact_store import TOMBSTONE, ArtifactStore

CHUNK = 1024
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArtifactStore]:
    with ArtifactStore(tmp_path / "artifacts", chunk_size=CHUNK) as opened:
        yield opened


def sized(n: int) -> bytes:
    """`n` pseudo-random bytes (the same for the same n): no two chunks alike."""
    return random.Random(n).randbytes(n)


def add_bytes(store: ArtifactStore, data: bytes, *, pin: bool = True) -> Manifest:
    """Ingest `data` as the node ingests an upload: as a stream."""
    return store.add_stream(io.BytesIO(data), pin=pin)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArtifactStore]:
    with ArtifactStore(tmp_path_factory.mktemp("shared") / "artifacts", chunk_size=CHUNK) as opened:
        yield opened


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=4 * CHUNK),
        st.sampled_from([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 1, 5 * CHUNK]).map(
            sized
        ),
    )
)
@example(b"")
@example(b"\x00")
def test_any_bytes_round_trip_and_the_id_is_their_sha256(shared_store: ArtifactStore, data: bytes) -> None:
    manifest = add_bytes(shared_store, data)
    assert manifest.id == hashlib.sha256(data).digest()
    assert manifest.artifact_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert len(manifest.chunks) == -(-len(data) // CHUNK)
    assert shared_store.read_bytes(manifest.id) == data
    assert Manifest.decode(manifest.encode()) == manifest
    assert shared_store.verify(manifest.id).ok


def test_a_flipped_bit_is_caught_on_read_and_by_verify(store: ArtifactStore) -> None:
    data = sized(3 * CHUNK + 10)
    manifest = add_bytes(store, data)
    path = store.chunks.path(manifest.chunks[1])
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x04
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptChunk, match=manifest.chunks[1].hex()):
        store.read_bytes(manifest.id)
    assert b"".join(store.read(manifest.id, 0, CHUNK)) == data[:CHUNK]  # other chunks still read
    report = store.verify(manifest.id)
    assert report.bad_chunks == [1] and not report.digest_ok and not report.ok
    path.unlink()
    assert store.verify(manifest.id).bad_chunks == [1]


def test_ranges_read_exactly_the_bytes_asked(store: ArtifactStore) -> None:
    data = sized(4 * CHUNK + 7)
    artifact = add_bytes(store, data).id
    for start, stop in [
        (0, 0),
        (0, 1),
        (5, CHUNK),
        (CHUNK - 1, CHUNK + 1),
        (CHUNK, 3 * CHUNK),
        (100, len(data)),
        (len(data) - 1, len(data) + 50),
    ]:
        assert b"".join(store.read(artifact, start, stop)) == data[start:stop]


def test_identical_chunks_are_stored_once_and_outlive_one_of_their_artifacts(store: ArtifactStore) -> None:
    common = sized(2 * CHUNK)
    first = add_bytes(store, common + b"first")
    second = add_bytes(store, common + b"second!")
    assert first.chunks[:2] == second.chunks[:2]
    assert len(list(store.chunks.ids())) == 4
    add_bytes(store, common + b"first")  # the same artifact again: nothing new
    assert len(store.artifacts()) == 2 and len(list(store.chunks.ids())) == 4
    before = now_ms()
    freed = store.erase(first.id)
    erased_at = store.index.get(TOMBSTONE + first.id)
    assert erased_at is not None and before <= int.from_bytes(erased_at, "big") <= now_ms()  # ms, core.clock
    assert freed == 5  # only its own last chunk: the shared ones are still listed by the other
    assert store.read_bytes(second.id) == common + b"second!"
    with pytest.raises(ArtifactErased, match="erased"):
        store.manifest(first.id)
    assert store.is_erased(first.id)
    assert add_bytes(store, common + b"first").id == first.id  # adding the bytes again is asking for them
    assert not store.is_erased(first.id)


def test_gc_drops_unpinned_artifacts_and_stray_chunks_only(store: ArtifactStore) -> None:
    kept = add_bytes(store, sized(3 * CHUNK))
    cached = add_bytes(store, sized(2 * CHUNK + 1), pin=False)
    stray = hashlib.sha256(b"stray").digest()
    store.chunks.put(stray, b"stray")
    report = store.gc()
    assert report.artifacts_removed == 1 and report.chunks_removed == 3 + 1  # its 3 chunks and the stray
    assert store.read_bytes(kept.id) == sized(3 * CHUNK)
    with pytest.raises(ArtifactNotFound):
        store.manifest(cached.id)
    assert not store.chunks.has(stray)
    store.unpin(kept.id)
    assert store.gc().artifacts_removed == 1 and list(store.chunks.ids()) == []


def test_a_directory_is_one_artifact_listing_its_files(store: ArtifactStore, tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    files = {
        "model.onnx": sized(2500),
        "weights/shard-0.bin": sized(3000),
        "weights/shard-1.bin": sized(1024),
        "README.md": b"# card\n",
        "empty.txt": b"",
    }
    for name, content in files.items():
        (model / name).write_bytes(content)
    manifest = store.add_file(model)
    assert manifest.kind == KIND_DIRECTORY
    assert [f.path for f in manifest.files] == sorted(files)
    assert all(
        f.sha256 == hashlib.sha256(files[f.path]).digest() and f.size == len(files[f.path]) for f in manifest.files
    )
    assert store.read_bytes(manifest.id) == b"".join(files[name] for name in sorted(files))
    assert Manifest.decode(manifest.encode()) == manifest and store.verify(manifest.id).ok
    (model / "extra").symlink_to(model / "README.md")
    with pytest.raises(Exception, match="symbolic link"):
        store.add_file(model)


def test_manifests_that_do_not_add_up_are_refused(store: ArtifactStore) -> None:
    manifest = add_bytes(store, sized(3 * CHUNK))
    wire = manifest.to_wire()
    for index, value, message in [
        (6, wire[6][:2], "chunk ids for"),
        (7, b"\x00" * 32, "Merkle root"),
        (5, 10, "chunk size"),
        (4, 3 * CHUNK + 5, "chunk ids for"),
    ]:
        bad = list(wire)
        bad[index] = value
        with pytest.raises(DecodeError, match=message):
            Manifest.decode(codec.encode(bad))
    for i, chunk_id in enumerate(manifest.chunks):  # one chunk checks against the root alone
        proof = merkle_proof(list(manifest.chunks), i)
        assert verify_merkle_proof(manifest.merkle_root, chunk_id, i, len(manifest.chunks), proof)
    assert parse_id(manifest.artifact_id) == manifest.id
    with pytest.raises(ValueError, match="not an artifact id"):
        parse_id("sha256:1234")


def test_ingest_memory_stays_flat(tmp_path: Path) -> None:
    size = 96 * 1024 * 1024
    block = os.urandom(1024 * 1024)

    class Stream:
        left = size

        def read(self, n: int) -> bytes:
            take = min(n, self.left, len(block))
            self.left -= take
            return block[:take]

    with ArtifactStore(tmp_path / "artifacts") as big:
        tracemalloc.start()
        manifest = big.add_stream(Stream())  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert manifest.size == size
    assert peak < 40 * 1024 * 1024, f"ingest of {size >> 20} MiB peaked at {peak >> 20} MiB of Python memory"


CRASHING_INGEST = """
import sys, time
from pathlib import Path
from storage.artifact_store import ArtifactStore

class Slow:
    sent = 0
    def read(self, n):
        if self.sent == 6:
            print("ingesting", flush=True)
            time.sleep(60)
        self.sent += 1
        return bytes([self.sent]) * n

store = ArtifactStore(Path(sys.argv[1]), chunk_size=1024)
store.add_stream(Slow())
"""


def test_kill_9_during_ingest_leaves_no_partial_artifact(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    with ArtifactStore(root, chunk_size=CHUNK) as before:
        kept = add_bytes(before, sized(5 * CHUNK))
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CRASHING_INGEST), str(root)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ingesting"
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with ArtifactStore(root, chunk_size=CHUNK) as after:
        assert [info.manifest.id for info in after.artifacts()] == [kept.id]
        on_disk = len(list(after.chunks.ids()))
        assert on_disk > 5  # the dead ingest's chunks are on disk, unreferenced
        assert after.gc().chunks_removed == on_disk - 5
        assert len(list(after.chunks.ids())) == 5
        assert after.verify(kept.id).ok and after.read_bytes(kept.id) == sized(5 * CHUNK)
        assert list(after.chunks.tmp.iterdir()) == []


def test_encrypted_artifacts_keep_the_plaintext_id_and_read_only_with_their_key(
    store: ArtifactStore, tmp_path: Path
) -> None:
    from core.errors import ArtifactError
    from core.sealing import ChunkDecryptionFailed, decrypt_chunk, new_content_key

    data = sized(3 * CHUNK + 100)
    source = tmp_path / "secret.onnx"
    source.write_bytes(data)
    key = new_content_key()
    manifest = store.add_encrypted(source, key)
    assert manifest.encrypted and manifest.id == hashlib.sha256(data).digest()
    plain = add_bytes(store, data, pin=False)  # the same bytes unencrypted: other chunks entirely
    assert not set(manifest.chunks) & set(plain.chunks)
    stored = store.chunks.read(manifest.chunks[0])
    assert len(stored) == CHUNK + 16 and data[:CHUNK] not in stored
    assert store.read_bytes(manifest.id) == data  # this node holds the content key
    assert b"".join(store.read(manifest.id, CHUNK - 5, CHUNK + 5)) == data[CHUNK - 5 : CHUNK + 5]
    assert store.verify(manifest.id).ok and Manifest.decode(manifest.encode()) == manifest
    with pytest.raises(ChunkDecryptionFailed):
        decrypt_chunk(new_content_key(), manifest.id, 0, stored)
    with pytest.raises(ChunkDecryptionFailed):
        decrypt_chunk(key, manifest.id, 1, stored)  # a chunk cannot move to another position
    (store.root / "keys" / f"{manifest.id.hex()}.key").unlink()
    with pytest.raises(ArtifactError, match="has not got its content key"):
        store.read_bytes(manifest.id)
    assert store.verify(manifest.id).ok  # chunk ids still check without the key

    model = tmp_path / "model"
    model.mkdir()
    (model / "a.bin").write_bytes(sized(CHUNK + 3))
    (model / "b.txt").write_bytes(b"tokens")
    directory = store.add_encrypted(model, key)
    assert directory.kind == KIND_DIRECTORY and directory.encrypted
    assert store.read_bytes(directory.id) == sized(CHUNK + 3) + b"tokens"


def test_an_encrypted_artifact_keeps_its_first_content_key(store: ArtifactStore, tmp_path: Path) -> None:
    from core.errors import ArtifactKeyConflict
    from core.sealing import new_content_key

    data = sized(2 * CHUNK + 7)
    source = tmp_path / "secret.onnx"
    source.write_bytes(data)
    key = new_content_key()
    first = store.add_encrypted(source, key)
    assert store.add_encrypted(source, key) == first  # the same key again: the same chunks
    with pytest.raises(ArtifactKeyConflict, match="another content key"):
        store.add_encrypted(source, new_content_key())
    with pytest.raises(ArtifactKeyConflict):
        store.add_stream(io.BytesIO(data), seal=(new_content_key(), first.id))
    assert store.content_key(first.id) == key and store.manifest(first.id) == first
    assert store.read_bytes(first.id) == data
    # Stored encrypted without its key (as fetched from peers): no upload can attach a key to it.
    (store.root / "keys" / f"{first.id.hex()}.key").unlink()
    with pytest.raises(ArtifactKeyConflict):
        store.add_encrypted(source, key)


def test_two_uploads_of_the_same_bytes_at_once_leave_one_consistent_copy(store: ArtifactStore) -> None:
    """Two ingests of the same plaintext at the same moment, under two content keys (or one in the clear): one
    wins whole, the other is refused. They used to interleave: the key of one with the chunks of the other
    (no envelope opened them), a copy in the clear with a content key (the node served as public what an
    encrypted upload had been told was private), or a crash on the shared temporary key file."""
    import threading

    from core.errors import ArtifactKeyConflict
    from core.sealing import decrypt_chunk, new_content_key

    for round_ in range(120):
        data = os.urandom(3 * CHUNK)
        artifact = hashlib.sha256(data).digest()
        clear = round_ % 2 == 1  # every other round, the second upload is in the clear
        outcomes: list[object] = [None, None]
        start = threading.Barrier(2)

        def upload(
            i: int,
            data: bytes = data,
            artifact: bytes = artifact,
            clear: bool = clear,
            outcomes: list[object] = outcomes,
            start: threading.Barrier = start,
        ) -> None:
            seal = None if clear and i == 1 else (new_content_key(), artifact)
            start.wait()
            try:
                outcomes[i] = store.add_stream(io.BytesIO(data), seal=seal)
            except ArtifactKeyConflict as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(outcome is not None for outcome in outcomes), f"round {round_}: an upload crashed"
        manifest, key = store.manifest(artifact), store.content_key(artifact)
        if manifest.encrypted:
            assert key is not None
            for index, chunk_id in enumerate(manifest.chunks):  # the kept key opens the kept chunks
                decrypt_chunk(key, artifact, index, store.chunks.read(chunk_id))
        else:
            assert key is None, f"round {round_}: a copy in the clear beside a content key"
        accepted = [o for o in outcomes if not isinstance(o, ArtifactKeyConflict)]
        if not clear:  # two keys for one artifact: exactly one is kept
            assert len(accepted) == 1, f"round {round_}: both encrypted uploads were accepted"
            assert accepted[0] == manifest
