"""`aichain-node bench models` on a small model: the figures are there, measured, and beside their limits."""

from __future__ import annotations

from node.bench.models import run_models_bench


def test_the_models_bench_pulls_from_two_peers_and_times_run_against_onnxruntime() -> None:
    report = run_models_bench(size_mb=24, runs=3, batch=2).to_dict()
    figures = {f["name"]: f for f in report["figures"]}
    pull = figures["pull + decrypt + verify, 2 peers"]
    assert pull["value"] > 0 and pull["limit"] > 0 and pull["target"] == ">= 100 MB/s"
    run = figures["model run, median"]
    assert run["value"] > 0 and run["limit"] > 0 and run["unit"] == "ms"
    assert report["notes"]["fetched from"].count("chunks") == 2  # both peers sent chunks
    assert report["notes"]["outputs"] == "equal to the plain session's"
