"""`bench artifacts`: ingest beside sha256sum and hashlib on one file; the digests agree; RSS of the ingest alone."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.bench import artifacts
from node.bench.artifacts import ingest_in_child, run_artifacts_bench, write_random_file
from node.bench.report import Figure, Report


def _figure(report: Report, name: str) -> Figure:
    found = [f for f in report.figures if f.name == name]
    assert len(found) == 1, f"expected one figure {name!r}, got {[f.name for f in report.figures]}"
    return found[0]


def test_bench_artifacts_reports_ingest_beside_sha256sum_and_rss_under_150_mb(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def transfer(path: Path, size: int) -> dict:
        seen["size"], seen["file size"] = size, path.stat().st_size
        seen["digest"] = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"transfer MB/s": {"value": 12.5, "unit": "MB/s", "limit_name": "ingest", "limit": 25.0}}

    held = b"x" * 200_000_000  # a large parent: the RSS figure must be the ingest child's own, not this process's
    report = run_artifacts_bench(size_mb=32, datadir=tmp_path, transfer=transfer)
    del held

    ingest = _figure(report, "ingest MB/s")
    assert ingest.value > 0 and ingest.unit == "MB/s"
    if shutil.which("sha256sum"):
        assert ingest.limit_name == "sha256sum MB/s, same file"
        assert ingest.limit and ingest.limit > 0 and ingest.ratio and ingest.ratio > 0
    assert _figure(report, "hashlib SHA-256 MB/s").value > 0
    rss = _figure(report, "peak RSS during ingest")
    assert rss.limit == 150.0
    assert 10 < rss.value < 150, "an interpreter is over 10 MB; a streaming ingest of 32 MiB stays under 150 MB"

    # the child's ingested id was checked against the file's SHA-256, computed here independently
    assert seen["size"] == seen["file size"] == 32 * 1024 * 1024
    assert report.notes["id check"].startswith("ingest id == hashlib digest")
    assert report.notes["id check"].endswith(f"sha256:{seen['digest']}")
    assert report.notes["chunks"].startswith("8 of 4 MiB")
    assert float(report.notes["ingest / hashlib"].split()[0]) > 0
    assert _figure(report, "transfer MB/s").ratio == 0.5
    assert list(tmp_path.iterdir()) == [], "the file and the store must be dropped afterwards"
    assert '"peak RSS during ingest"' in report.render(as_json=True)


def test_bench_artifacts_raises_when_the_ingested_id_is_not_the_files_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(artifacts, "hashlib_sha256", lambda path: (b"\x00" * 32, 1.0))
    with pytest.raises(RuntimeError, match="is not the file's SHA-256"):
        run_artifacts_bench(size_mb=1, datadir=tmp_path)


def test_ingest_rss_is_the_ingest_childs_own_not_a_larger_childs_nor_the_parents(tmp_path: Path) -> None:
    # A child holding ~200 MB raises RUSAGE_CHILDREN's maximum for good; the ingest's figure must not inherit it.
    subprocess.run([sys.executable, "-c", "b = b'x' * 200_000_000"], check=True)
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 > 190_000_000
    path = tmp_path / "file.bin"
    write_random_file(path, 8)
    held = b"x" * 200_000_000  # and this process is large when it spawns the ingest child
    result = ingest_in_child(path, tmp_path / "store")
    assert result["id"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result["chunks"] == 2 and result["size"] == 8 * 1024 * 1024 and result["mb_per_s"] > 0
    if result["peak_rss_kib"] is None:
        pytest.skip("no /proc/self/status: the bench falls back to ru_maxrss")
    assert 0 < result["peak_rss_before_ingest_kib"] <= result["peak_rss_kib"] < 150_000_000 // 1024
    # why the bench does not use the child's ru_maxrss: on Linux it starts at the parent's RSS at the fork
    assert result["wait4_maxrss_kib"] * 1024 > 190_000_000
    del held


def test_node_to_node_transfer_is_measured_beside_tls(tmp_path: Path) -> None:
    from node.bench.artifact_transfer import measure_transfer

    path = tmp_path / "file.bin"
    path.write_bytes(os.urandom(6 * 1024 * 1024))
    figures = measure_transfer(path, 6 * 1024 * 1024, tls_seconds=0.3)
    figure = figures["node-to-node transfer MB/s"]
    assert figure["value"] > 0 and figure["limit"] > 0
    assert "6,291,456 bytes in 2 chunks" in figures["transfer"]
