"""A private artifact's plaintext on disk is readable by its user only: files 0600 (the part files while they are
written too), the directories made for it 0700, whatever the umask; public artifacts keep the usual modes.

StoredDownload is driven as the client drives it, with chunks encrypted as the node stores them; the same
modes through a running node (the CLI and the SDK's pull): tests/integration/test_private_access.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from aichain_node.transfer import StoredDownload, private_dir, private_file
from tests.sdk.test_transfer import KEY, make_tree, stored


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what most systems give a user: files 0644, directories 0755 unless asked otherwise
    try:
        yield
    finally:
        os.umask(old)


def test_a_decrypted_file_is_0600_while_it_is_written_and_after(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.onnx").write_bytes(os.urandom(5000))
    summary, digest, chunks = stored(tmp_path / "src" / "m.onnx", KEY)
    (tmp_path / "dl").mkdir()
    job = StoredDownload(summary, digest, KEY, tmp_path / "dl" / "m.onnx")
    job.begin()
    job.take(chunks[0])
    assert mode(job.temp) == 0o600  # the part file, half written
    for chunk in chunks[1:]:
        job.take(chunk)
    assert mode(job.finish()) == 0o600


def test_a_decrypted_directory_is_0700_with_0600_files_at_every_depth(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    summary, digest, chunks = stored(tmp_path / "src", KEY)
    (tmp_path / "dl").mkdir()
    job = StoredDownload(summary, digest, KEY, tmp_path / "dl" / "model")
    job.begin()
    for chunk in chunks:
        job.take(chunk)
    assert mode(job.temp) == 0o700
    dest = job.finish()
    directories = [dest, *(p for p in dest.rglob("*") if p.is_dir())]
    files = [p for p in dest.rglob("*") if p.is_file()]
    assert len(directories) >= 4 and len(files) == 6
    assert {mode(d) for d in directories} == {0o700} and {mode(f) for f in files} == {0o600}


def test_a_public_artifact_keeps_the_usual_modes(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.onnx").write_bytes(b"public")
    summary, digest, chunks = stored(tmp_path / "src" / "m.onnx")
    job = StoredDownload(summary, digest, None, tmp_path / "m.onnx")
    job.begin()
    for chunk in chunks:
        job.take(chunk)
    assert mode(job.finish()) == 0o644


def test_private_files_and_directories_are_narrowed_even_if_they_existed_wider(tmp_path: Path) -> None:
    wide = tmp_path / "cache" / "m" / "1"
    wide.mkdir(parents=True)
    wide.chmod(0o755)
    private_dir(wide)
    assert mode(wide) == 0o700
    fresh = tmp_path / "new" / "m" / "1"
    private_dir(fresh)
    assert mode(fresh) == mode(fresh.parent) == mode(fresh.parent.parent) == 0o700  # every level it made
    old = wide / "model.onnx"
    old.write_bytes(b"stale")
    old.chmod(0o644)
    with private_file(old) as out:
        out.write(b"secret")
    assert mode(old) == 0o600 and old.read_bytes() == b"secret"
