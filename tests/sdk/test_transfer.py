"""Moving artifact bytes: local ids, the directory tar stream, and a stored download checked against a trusted id.

StoredDownload is driven here as the client drives it (begin, take each stored chunk, finish or abort)
with chunks made locally, plain or encrypted as the node stores them; no node is involved. The node's
HTTP side (`AsyncClient.download_stored`) is not exercised.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from aichain_node.transfer import DigestMismatch, StoredDownload, describe_mismatch, local_id, remove, tar_stream
from core.artifact import KIND_DIRECTORY, FileEntry, Manifest, directory_id, format_id
from core.artifact_listing import plaintext_listing
from core.errors import ArtifactError, DecodeError
from core.sealing import AEAD_TAG_SIZE, ChunkDecryptionFailed, encrypt_chunk
from node.artifacts.manifest_json import manifest_summary
from storage.artifact_io import plaintext_blocks

CHUNK = 1024
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def make_tree(root: Path) -> dict[str, bytes]:
    """A small directory artifact: nested files, an empty one, one of several chunks; {path: bytes}."""
    files = {
        "model.onnx": b"graph" * 700,  # 3500 bytes: spans chunks
        "a.txt": b"alpha",
        "a/b.txt": b"nested",
        "B.md": b"upper case sorts first",
        "empty.bin": b"",
        "deep/er/weights.bin": bytes(range(256)) * 5,
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def stored(path: Path, key: bytes | None = None) -> tuple[dict[str, Any], bytes, list[bytes]]:
    """(the node's manifest summary, the artifact id, the chunks as stored) for a local file or directory."""
    digest, kind, size, files = plaintext_listing(path)
    chunks = list(plaintext_blocks(path, CHUNK))
    if key is not None:
        chunks = [encrypt_chunk(key, digest, i, c) for i, c in enumerate(chunks)]
    manifest = Manifest(digest, kind, size, CHUNK, tuple(sha(c) for c in chunks), files, encrypted=key is not None)
    return manifest_summary(manifest), digest, chunks


def download(
    summary: dict[str, Any], expected: bytes, chunks: list[bytes], dest: Path, key: bytes | None = None
) -> Path:
    job = StoredDownload(summary, expected, key, dest)
    job.begin()
    for chunk in chunks:
        job.take(chunk)
    return job.finish()


def tree_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- local_id -------------------------------------------------------------------------------------


def test_local_id_of_a_file_is_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) // 2)  # more than one read block
    (tmp_path / "f.bin").write_bytes(data)
    assert local_id(tmp_path / "f.bin") == hashlib.sha256(data).digest()
    (tmp_path / "empty").write_bytes(b"")
    assert local_id(tmp_path / "empty") == hashlib.sha256(b"").digest()


def test_local_id_of_a_directory_is_the_id_of_its_sorted_file_list(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "d")
    (tmp_path / "d" / "only-a-dir").mkdir()  # directories themselves are not listed
    order = ["B.md", "a.txt", "a/b.txt", "deep/er/weights.bin", "empty.bin", "model.onnx"]  # by '/'-path string
    expected = directory_id(tuple(FileEntry(p, len(files[p]), sha(files[p])) for p in order))
    assert local_id(tmp_path / "d") == expected
    assert local_id(tmp_path / "d") == plaintext_listing(tmp_path / "d")[0]
    assert plaintext_listing(tmp_path / "d")[1] == KIND_DIRECTORY
    assert local_id(tmp_path / "d") != sha(b"".join(files[p] for p in order))


def test_local_id_of_a_directory_changes_with_a_name_or_a_byte(tmp_path: Path) -> None:
    make_tree(tmp_path / "d")
    before = local_id(tmp_path / "d")
    (tmp_path / "d" / "a.txt").write_bytes(b"alphA")
    changed = local_id(tmp_path / "d")
    assert changed != before
    (tmp_path / "d" / "a.txt").rename(tmp_path / "d" / "c.txt")
    assert local_id(tmp_path / "d") not in (before, changed)


def test_local_id_of_an_empty_directory_is_the_id_of_the_empty_list(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert local_id(tmp_path / "empty") == directory_id(())


def test_local_id_refuses_a_directory_with_a_symlink(tmp_path: Path) -> None:
    make_tree(tmp_path / "d")
    (tmp_path / "d" / "link").symlink_to(tmp_path / "d" / "a.txt")
    with pytest.raises(ArtifactError, match="symbolic link"):
        local_id(tmp_path / "d")


# --- tar_stream -----------------------------------------------------------------------------------


async def tar_bytes(root: Path) -> tuple[bytes, list[int]]:
    seen: list[int] = []
    data = b"".join([block async for block in tar_stream(root, seen.append)])
    return data, seen


async def test_tar_stream_holds_the_directory_files_in_path_order(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "d")
    long_name = "x" * 60 + "/" + "y" * 80 + ".bin"  # past ustar's 100-character name field
    files[long_name] = b"long"
    files["ünï.txt"] = b"non-ascii name"
    files["exact.bin"] = b"e" * 512  # a whole tar block: no padding
    files["big.bin"] = os.urandom((1 << 20) + 1000)  # more than one read block
    for name in (long_name, "ünï.txt", "exact.bin", "big.bin"):
        (tmp_path / "d" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / name).write_bytes(files[name])

    data, seen = await tar_bytes(tmp_path / "d")

    assert len(data) % 512 == 0
    assert data.endswith(bytes(1024))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == sorted(files)
        for member in members:
            assert member.isfile()
            assert member.mode == 0o644
            assert member.size == len(files[member.name])
            extracted = archive.extractfile(member)
            assert extracted is not None
            assert extracted.read() == files[member.name]
    assert sum(seen) == sum(len(v) for v in files.values())


async def test_tar_stream_extracted_has_the_same_local_id(tmp_path: Path) -> None:
    make_tree(tmp_path / "d")
    data, _ = await tar_bytes(tmp_path / "d")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        archive.extractall(tmp_path / "out", filter="data")
    assert local_id(tmp_path / "out") == local_id(tmp_path / "d")


async def test_tar_stream_of_an_empty_directory_is_the_end_of_archive_marker(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    data, seen = await tar_bytes(tmp_path / "empty")
    assert data == bytes(1024)
    assert seen == []


async def test_tar_stream_refuses_a_symlink(tmp_path: Path) -> None:
    make_tree(tmp_path / "d")
    (tmp_path / "d" / "zz-link").symlink_to(tmp_path / "d" / "a.txt")
    with pytest.raises(ArtifactError, match="symbolic link"):
        await tar_bytes(tmp_path / "d")


# --- StoredDownload: sizes ------------------------------------------------------------------------


def test_stored_sizes_and_chunk_count_follow_the_summary(tmp_path: Path) -> None:
    summary = {"kind": "file", "size": 2 * CHUNK + 10, "chunk_size": CHUNK, "encrypted": False, "files": []}
    plain = StoredDownload(summary, sha(b""), None, tmp_path / "f")
    assert plain.chunks == 3
    assert [plain.stored_size(i) for i in range(3)] == [CHUNK, CHUNK, 10]
    sealed = StoredDownload({**summary, "encrypted": True}, sha(b""), KEY, tmp_path / "f")
    tag = AEAD_TAG_SIZE
    assert [sealed.stored_size(i) for i in range(3)] == [CHUNK + tag, CHUNK + tag, 10 + tag]
    assert StoredDownload({**summary, "size": 2 * CHUNK}, sha(b""), None, tmp_path / "f").chunks == 2
    assert StoredDownload({**summary, "size": 0}, sha(b""), None, tmp_path / "f").chunks == 0


def test_stored_chunks_made_here_match_the_sizes_the_download_expects(tmp_path: Path) -> None:
    make_tree(tmp_path / "d")
    for key in (None, KEY):
        summary, digest, chunks = stored(tmp_path / "d", key)
        job = StoredDownload(summary, digest, key, tmp_path / "out")
        assert job.chunks == len(chunks)
        assert [job.stored_size(i) for i in range(job.chunks)] == [len(c) for c in chunks]


# --- StoredDownload: success ----------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_download_of_a_file_appears_under_the_destination_name_only_at_finish(
    tmp_path: Path, key: bytes | None
) -> None:
    data = os.urandom(3 * CHUNK + 17)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.bin").write_bytes(data)
    summary, digest, chunks = stored(tmp_path / "src" / "f.bin", key)
    assert digest == sha(data) and summary["kind"] == "file"
    (tmp_path / "dl").mkdir()
    dest = tmp_path / "dl" / "f.bin"

    job = StoredDownload(summary, digest, key, dest)
    job.begin()
    for chunk in chunks:
        job.take(chunk)
    assert job.temp == tmp_path / "dl" / f".f.bin.part-{os.getpid()}"
    assert job.temp.exists() and not dest.exists()  # nothing under the real name before the digests are checked
    assert job.finish() == dest

    assert dest.read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["f.bin"]


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_download_of_a_directory_recreates_every_file(tmp_path: Path, key: bytes | None) -> None:
    files = make_tree(tmp_path / "src")
    summary, digest, chunks = stored(tmp_path / "src", key)
    assert summary["kind"] == "directory" and len(chunks) > 1
    (tmp_path / "dl").mkdir()
    dest = download(summary, digest, chunks, tmp_path / "dl" / "model", key)
    assert dest == tmp_path / "dl" / "model"
    assert tree_of(dest) == files
    assert local_id(dest) == digest
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["model"]


def test_download_of_an_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    summary, digest, chunks = stored(tmp_path / "empty")
    assert chunks == []
    assert download(summary, digest, chunks, tmp_path / "copy").read_bytes() == b""


def test_download_replaces_an_existing_destination(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"new bytes" * 300)
    summary, digest, chunks = stored(tmp_path / "src")
    (tmp_path / "dest").mkdir()  # even a directory of the same name
    (tmp_path / "dest" / "old.txt").write_bytes(b"old")
    download(summary, digest, chunks, tmp_path / "dest")
    assert (tmp_path / "dest").read_bytes() == b"new bytes" * 300


def test_begin_clears_a_part_file_left_by_an_earlier_attempt(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"payload" * 200)
    summary, digest, chunks = stored(tmp_path / "src")
    stale = tmp_path / f".dest.part-{os.getpid()}"
    stale.mkdir()
    (stale / "junk").write_bytes(b"left over")
    assert download(summary, digest, chunks, tmp_path / "dest").read_bytes() == b"payload" * 200
    assert not stale.exists()


# --- StoredDownload: what does not match leaves nothing -------------------------------------------


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_file_bytes_that_do_not_hash_to_the_expected_id_leave_nothing(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 5)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(data)
    summary, digest, chunks = stored(tmp_path / "src" / "f")
    forged = [chunks[0], bytes(len(chunks[1])), chunks[2]]  # same sizes, other bytes
    (tmp_path / "dl").mkdir()
    with pytest.raises(DigestMismatch) as info:
        download(summary, digest, forged, tmp_path / "dl" / "f")
    assert info.value.expected == digest
    assert info.value.got == sha(b"".join(forged))
    assert info.value.what == "the bytes"
    assert leftovers(tmp_path / "dl") == []


def test_mismatch_keeps_an_existing_destination_untouched(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"real" * 400)
    summary, _, chunks = stored(tmp_path / "src")
    (tmp_path / "dest").write_bytes(b"what was there")
    with pytest.raises(DigestMismatch):
        download(summary, sha(b"some other artifact"), chunks, tmp_path / "dest")
    assert (tmp_path / "dest").read_bytes() == b"what was there"
    assert leftovers(tmp_path) == ["dest", "src"]


def test_more_bytes_than_the_artifact_holds_are_refused(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"z" * (CHUNK + 1))
    summary, digest, chunks = stored(tmp_path / "src")
    job = StoredDownload(summary, digest, None, tmp_path / "dest")
    job.begin()
    for chunk in chunks:
        job.take(chunk)
    with pytest.raises(DigestMismatch, match="more bytes than the artifact holds") as info:
        job.take(b"extra")
    assert info.value.got == b""
    job.abort()
    assert leftovers(tmp_path) == ["src"]


def test_a_stream_that_ends_early_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    summary, digest, chunks = stored(tmp_path / "src")
    (tmp_path / "dl").mkdir()
    with pytest.raises(DigestMismatch, match="ended before the artifact did") as info:
        download(summary, digest, chunks[:-1], tmp_path / "dl" / "model")
    assert info.value.got == b""
    assert leftovers(tmp_path / "dl") == []


def test_a_directory_listing_other_than_the_trusted_id_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    summary, digest, chunks = stored(tmp_path / "src")
    summary["files"][0]["path"] = "renamed.md"  # the node lies about a name; the bytes are right
    (tmp_path / "dl").mkdir()
    with pytest.raises(DigestMismatch) as info:
        download(summary, digest, chunks, tmp_path / "dl" / "model")
    assert info.value.what == "the directory's file list"
    assert info.value.expected == digest and info.value.got not in (b"", digest)
    assert leftovers(tmp_path / "dl") == []


def test_a_directory_file_whose_bytes_do_not_match_its_listing_is_refused(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    summary, digest, chunks = stored(tmp_path / "src")
    assert summary["files"][0]["path"] == "B.md"  # the first file, inside the first chunk
    forged = [b"b" + chunks[0][1:], *chunks[1:]]
    (tmp_path / "dl").mkdir()
    with pytest.raises(DigestMismatch) as info:
        download(summary, digest, forged, tmp_path / "dl" / "model")
    assert info.value.what == "file B.md"
    assert info.value.expected == sha(files["B.md"])
    assert info.value.got == sha(b"b" + files["B.md"][1:])
    assert leftovers(tmp_path / "dl") == []


def test_an_encrypted_chunk_under_another_key_does_not_decrypt(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(os.urandom(2 * CHUNK))
    summary, digest, chunks = stored(tmp_path / "src", KEY)
    job = StoredDownload(summary, digest, OTHER_KEY, tmp_path / "dest")
    job.begin()
    with pytest.raises(ChunkDecryptionFailed):
        job.take(chunks[0])
    job.abort()
    assert leftovers(tmp_path) == ["src"]


def test_encrypted_chunks_out_of_order_do_not_decrypt(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(os.urandom(2 * CHUNK))
    summary, digest, chunks = stored(tmp_path / "src", KEY)
    job = StoredDownload(summary, digest, KEY, tmp_path / "dest")
    job.begin()
    with pytest.raises(ChunkDecryptionFailed):
        job.take(chunks[1])
    job.abort()
    assert leftovers(tmp_path) == ["src"]


def test_encrypted_chunks_of_another_artifact_do_not_decrypt_under_the_trusted_id(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(os.urandom(CHUNK))
    summary, _, chunks = stored(tmp_path / "src", KEY)
    job = StoredDownload(summary, sha(b"the id the chain names"), KEY, tmp_path / "dest")
    job.begin()
    with pytest.raises(ChunkDecryptionFailed):
        job.take(chunks[0])
    job.abort()
    assert leftovers(tmp_path) == ["src"]


@pytest.mark.parametrize("path", ["../escape.txt", "/abs.txt", "a/../../b", "a\\b"])
def test_a_listing_with_a_path_outside_the_artifact_is_refused_before_writing(tmp_path: Path, path: str) -> None:
    summary = {
        "kind": "directory",
        "size": 3,
        "chunk_size": CHUNK,
        "encrypted": False,
        "files": [{"path": path, "size": 3, "sha256": sha(b"abc").hex()}],
    }
    (tmp_path / "dl").mkdir()
    job = StoredDownload(summary, directory_id((FileEntry(path, 3, sha(b"abc")),)), None, tmp_path / "dl" / "model")
    with pytest.raises(DecodeError):
        job.begin()
    assert leftovers(tmp_path / "dl") == []
    assert leftovers(tmp_path) == ["dl"]


# --- describe_mismatch and remove -----------------------------------------------------------------


def test_describe_mismatch_names_both_ids_or_what_went_wrong() -> None:
    artifact, got = sha(b"trusted"), sha(b"served")
    text = describe_mismatch(DigestMismatch(artifact, got, "the bytes"), artifact)
    assert text.startswith(f"the bytes of {format_id(artifact)} hash to {format_id(got)}, not {format_id(artifact)}")
    assert text.endswith("nothing was kept")
    ended = "the node's stream ended before the artifact did"
    short = describe_mismatch(DigestMismatch(artifact, b"", ended), artifact)
    assert short == f"{format_id(artifact)}: {ended}; nothing was kept"


def test_remove_deletes_files_and_directories_and_ignores_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "g").write_bytes(b"y")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep").write_bytes(b"z")
    (tmp_path / "link").symlink_to(tmp_path / "target", target_is_directory=True)
    for name in ("f", "d", "link", "missing"):
        remove(tmp_path / name)
    assert leftovers(tmp_path) == ["target"]
    assert (tmp_path / "target" / "keep").read_bytes() == b"z"  # a link is removed, not what it points to
